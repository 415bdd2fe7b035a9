"""The service's OpenAPI schema states every limit and every status code it answers with.

The request models are shared by every app, while the limits (``max_n``,
``max_batch``, the body size, the model's rating scale) belong to one app, so
:func:`state_limits` writes them into that app's generated schema.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from fastapi import FastAPI

from embrec.serving.limits import MAX_ID_LENGTH
from embrec.serving.schemas import ErrorBody

__all__ = ["ERRORS", "public_source", "state_limits"]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not valid JSON"},
    404: {"model": ErrorBody, "description": "Unknown user or item id, or no such route"},
    405: {"model": ErrorBody, "description": "Method not allowed on this route"},
    408: {"model": ErrorBody, "description": "The body did not arrive in time"},
    413: {"model": ErrorBody, "description": "The body exceeds the server's size limit"},
    422: {"model": ErrorBody, "description": "Malformed request: types, bounds, n or a batch "
          "over the stated limit, non-finite numbers, ratings off the model's scale"},
    500: {"model": ErrorBody, "description": "A bug: the body says only that (details are "
          "in the server log)"},
}


def public_source(value: Any) -> str | None:
    """A data source as the service may show it: a file name, never a server-side path."""
    if value is None:
        return None
    text = str(value)
    return PurePath(text).name if "/" in text or "\\" in text else text


def state_limits(app: FastAPI, *, max_n: int, max_batch: int, max_body_bytes: int,
                 scale: tuple[float, float], features: dict[str, str] | None = None) -> None:
    """Make ``app.openapi()`` state this app's limits and the user feature columns it takes.

    ``features`` maps each column to its kind; ``None`` (a model without user
    features) leaves ``features`` out of the fold-in body.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _write_limits(generate(), max_n, max_batch, max_body_bytes, scale)
            _write_features(app.openapi_schema or {}, features)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _write_limits(schema: dict[str, Any], max_n: int, max_batch: int, max_body_bytes: int,
                  scale: tuple[float, float]) -> None:
    schema["info"]["description"] = (
        f"Limits: n <= {max_n}; at most {max_batch} pairs or ratings per request; request "
        f"bodies up to {max_body_bytes} bytes (refused with 413 while they stream in); ids up "
        "to 256 characters or int64; ratings finite and on the model's scale "
        f"[{scale[0]:g}, {scale[1]:g}].")
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "n":
                    parameter["schema"]["maximum"] = max_n
            if "requestBody" in operation:
                operation["requestBody"]["description"] = f"at most {max_body_bytes} bytes"
    models = schema.get("components", {}).get("schemas", {})
    if "PredictRequest" in models:
        models["PredictRequest"]["properties"]["pairs"]["maxItems"] = max_batch
    if "FoldInRequest" in models:
        fold_in = models["FoldInRequest"]["properties"]
        fold_in["n"]["maximum"] = max_n
        fold_in["ratings"]["maxProperties"] = max_batch
        fold_in["ratings"]["additionalProperties"].update(minimum=scale[0], maximum=scale[1])


def _write_features(schema: dict[str, Any], kinds: dict[str, str] | None) -> None:
    body = schema.get("components", {}).get("schemas", {}).get("FoldInRequest")
    if body is None:
        return
    if kinds is None:
        del body["properties"]["features"], body["oneOf"]
        body["required"] = ["ratings"]
        return
    numeric = {name for name, kind in kinds.items() if kind in ("numeric", "flag")}
    body["properties"]["features"].update(
        additionalProperties=False,
        properties={name: {"type": ["number", "null"]} if name in numeric else
                    {"type": ["string", "null"], "maxLength": MAX_ID_LENGTH} for name in kinds},
        examples=[{name: 0 if name in numeric else "" for name in kinds}])
