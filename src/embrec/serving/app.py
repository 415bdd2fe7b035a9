"""The HTTP service: ``create_app(rec)`` wraps one ``Recommender`` in a FastAPI app.

The app is built by a factory, never held in module state, and reads no
environment. Handlers coerce ids that arrive as text (``"196"`` -> ``196``),
call one vectorised ``Recommender`` method and answer with a pydantic body.
One exception handler gives every error the body ``{"error", "detail"}``:
unknown ids are 404, bad input is 422, an oversized request is 413 and
anything else is a 500. The GET handlers (a millisecond or two each) run on the
event loop, sparing the threadpool hops; the POST handlers, whose cost grows
with the batch, run in the threadpool.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from embrec.artifact_checks import check_finite
from embrec.config import require, require_choice
from embrec.data.features import FeatureSchema
from embrec.data.ids import IdIndex
from embrec.errors import ConfigError, DataError, EmbrecError, UnknownIdError
from embrec.recommender import Recommender
from embrec.serving.docs import add_docs
from embrec.serving.limits import MAX_BODY_BYTES, MAX_ID_LENGTH, MAX_QUERY_ID_LENGTH, BodyLimit
from embrec.serving.openapi import ERRORS, public_source, state_limits
from embrec.serving.schemas import (
    FoldInRequest,
    Health,
    ModelInfo,
    Prediction,
    PredictRequest,
    PredictResponse,
    RawId,
    Recommendations,
    ScoredItem,
    SimilarItem,
    SimilarItems,
)
from embrec.topn import titles_by_index

__all__ = ["RequestTooLargeError", "create_app"]

log = logging.getLogger(__name__)
DETAIL_CHARS = 1000
"""Error details are cut to this length, so a huge id is never echoed back whole."""


class RequestTooLargeError(ValueError):
    """A request asks for more than the server allows (``n`` over ``max_n``, or a big batch)."""

    def __init__(self, field: str, value: int, limit: int) -> None:
        super().__init__(
            f"{field}={value} exceeds this server's limit of {limit}\n"
            f"  hint: ask for at most {limit}, or split the request"
        )


def create_app(rec: Recommender, *, max_n: int = 1000, max_batch: int = 10_000,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """Build the HTTP app serving ``rec``.

    Args:
        rec: the recommender to serve.
        max_n: the largest ``n`` a recommendation or similar-items request may ask for.
        max_batch: the most pairs one ``POST /predict`` (or ratings one
            ``POST /recommendations``) may carry.
        max_body_bytes: the largest request body; bigger ones are refused (413)
            while they stream in, before any parsing.

    Returns:
        A FastAPI app with OpenAPI docs at ``/docs`` and ``/redoc`` (assets served
        locally); the schema states every limit.

    Raises:
        ConfigError: if a limit is below 1.
        ArtifactError: if the model's weights hold NaN or infinity.
    """
    require(max_n >= 1, "max_n", max_n, "must be at least 1")
    require(max_batch >= 1, "max_batch", max_batch, "must be at least 1")
    require(max_body_bytes >= 1, "max_body_bytes", max_body_bytes, "must be at least 1")
    check_finite(rec.model.state_dict(), f"cannot serve the {rec.model_name} model")
    app = FastAPI(
        title="embrec",
        summary=f"Recommendations from a {rec.model_name} model "
        f"({rec.n_users} users, {rec.n_items} items)",
        responses=ERRORS,
        docs_url=None,  # served by add_docs with local assets, not a CDN's
        redoc_url=None,
    )
    add_docs(app, "embrec")
    for exc_class in (EmbrecError, RequestTooLargeError, RequestValidationError,
                      StarletteHTTPException, Exception):
        app.add_exception_handler(exc_class, _error_response)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, entries={
        "/predict": ("pairs", ord("{"), 1, max_batch),  # an object per pair, and the body's
        "/recommendations": ("ratings", ord(":"), 4, max_batch)})  # one a rating, 4 fields
    _add_info_routes(app, rec)
    _add_user_routes(app, rec, max_n)
    _add_item_routes(app, rec, max_n)
    encoder = getattr(rec.model, "feature_schema", None)  # only models with side features
    schema = None if encoder is None else encoder("user")
    _add_batch_routes(app, rec, max_n, max_batch, schema)
    state_limits(app, max_n=max_n, max_batch=max_batch, max_body_bytes=max_body_bytes,
                 scale=rec.scale, features=None if schema is None else
                 {column.name: column.kind for column in schema.columns})
    return app


# ----------------------------------------------------------------------------- errors
async def _error_response(request: Request, exc: Exception) -> JSONResponse:
    """Answer any exception with ``{"error": <class name>, "detail": <message>}``."""
    status, name, detail = _describe(exc)
    headers = getattr(exc, "headers", None) if isinstance(exc, StarletteHTTPException) else None
    return JSONResponse({"error": name, "detail": detail}, status_code=status, headers=headers)


def _describe(exc: Exception) -> tuple[int, str, str]:
    """Return the HTTP status, error name and message for ``exc``."""
    name = type(exc).__name__
    if isinstance(exc, UnknownIdError):
        return 404, name, _cut(str(exc))
    if isinstance(exc, DataError | ConfigError | RequestTooLargeError):
        return 422, name, _cut(str(exc))
    if isinstance(exc, RequestValidationError):
        return 422, name, _cut(_validation_message(exc))
    if isinstance(exc, StarletteHTTPException):
        try:
            name = "".join(HTTPStatus(exc.status_code).phrase.split())
        except ValueError:
            name = "HTTPError"
        return exc.status_code, name, _cut(str(exc.detail))
    log.error("internal error answering a request", exc_info=exc)
    return 500, "InternalServerError", "internal error; the server log has the details"


def _cut(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "... (cut)"


def _validation_message(exc: RequestValidationError) -> str:
    """Summarise pydantic's errors in one line: ``where: what; ...``."""
    errors = list(exc.errors())
    parts = [".".join(str(p) for p in e.get("loc", ())) + f": {e.get('msg', 'invalid')}"
             for e in errors[:5]]
    more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
    return "; ".join(parts) + more + "\n  hint: see /docs for the request schema"


def _check_limit(field: str, value: int, limit: int) -> None:
    if value > limit:
        raise RequestTooLargeError(field, value, limit)


# ----------------------------------------------------------------------------- routes
def _add_info_routes(app: FastAPI, rec: Recommender) -> None:
    """``GET /health`` and ``GET /model``."""

    @app.get("/health", tags=["service"])
    async def health() -> Health:
        """Say the service is up and which model it serves."""
        return Health(model=rec.model_name)

    meta, fingerprint = rec.metadata, rec.metadata.get("fingerprint")
    info = ModelInfo(
        model=rec.model_name, n_users=rec.n_users, n_items=rec.n_items,
        data=public_source(meta.get("data")),
        fingerprint=None if fingerprint is None else str(fingerprint),
        metrics=dict(meta.get("metrics") or {}), config=rec.model_config.to_dict(),
        scores="ranking" if rec.scores == "ranking" else "rating")

    @app.get("/model", tags=["service"])
    async def model() -> ModelInfo:
        """Describe the served model: name, size, training data and metrics."""
        return info


def _id_routes(kind: str, path: str, query: str, does: str) -> list[tuple[str, str, Any, str]]:
    """A GET route's two forms: the id as a path segment, or as a query (for any id).

    Returns:
        ``(route, name, id parameter, description)`` for each form.
    """
    return [(path, "", Path(max_length=MAX_ID_LENGTH,
                            description=f"raw {kind} id (at most {MAX_ID_LENGTH} characters)"),
             does),
            (query, "_by_query", Query(alias=kind, max_length=MAX_QUERY_ID_LENGTH,
                                       description=f"raw {kind} id (any id, up to "
                                       f"{MAX_QUERY_ID_LENGTH} characters)"),
             f"``{path.replace(f'{{{kind}_id}}', '{id}')}`` for any id: one with ``/`` or over "
             "256 characters.")]


def _n_query(max_n: int) -> Any:
    return Query(10, ge=1, description=f"number of items (at most {max_n})")


def _add_user_routes(app: FastAPI, rec: Recommender, max_n: int) -> None:
    """``GET /users/{user_id}/recommendations`` and ``/recommend``: the hot path, from arrays."""
    titles = titles_by_index(rec.item_info, rec.items)

    def top_n(user_id: str, n: int, exclude_seen: bool) -> Recommendations:
        _check_limit("n", n, max_n)
        user = _coerce_text(rec.users, user_id)
        # rec.recommend() without its DataFrame: the same ranking, less time per request
        items, scores = rec.top_n_indices(rec.users.index(user), n=n, exclude_seen=exclude_seen)
        keep = items[0] >= 0
        found = items[0][keep]
        return Recommendations(user=user, items=_scored_arrays(
            rec.items.id_of(found).tolist(), scores[0][keep].tolist(),
            [None] * len(found) if titles is None else titles[found].tolist()))

    for route, suffix, raw, does in _id_routes("user", "/users/{user_id}/recommendations",
                                               "/recommend", "Recommend the top ``n`` items "
                                               "for a known user."):
        async def recommend(
            user_id: str = raw, n: int = _n_query(max_n),
            exclude_seen: bool = Query(True, description="leave out items the user rated"),
        ) -> Recommendations:
            return top_n(user_id, n, exclude_seen)

        app.get(route, tags=["recommend"], name="recommend" + suffix, description=does)(recommend)


def _add_item_routes(app: FastAPI, rec: Recommender, max_n: int) -> None:
    """``GET /items/{item_id}/similar`` and ``/similar``."""
    for route, suffix, raw, does in _id_routes("item", "/items/{item_id}/similar", "/similar",
                                               "The ``n`` items most similar to ``item_id`` "
                                               "(the item itself excluded)."):
        async def similar(item_id: str = raw, n: int = _n_query(max_n)) -> SimilarItems:
            _check_limit("n", n, max_n)
            item = _coerce_text(rec.items, item_id)
            frame = rec.similar_items(item, n=n)
            return SimilarItems(item=item, items=[
                SimilarItem(item=i, similarity=s, title=t)
                for i, s, t in zip(*_columns(frame, "similarity"), strict=True)])

        app.get(route, tags=["recommend"], name="similar" + suffix, description=does)(similar)


def _add_batch_routes(app: FastAPI, rec: Recommender, max_n: int, max_batch: int,
                      schema: FeatureSchema | None) -> None:
    """``POST /predict`` and ``POST /recommendations`` (threadpool handlers: see the module)."""

    @app.post("/predict", tags=["predict"])
    def predict(body: PredictRequest) -> PredictResponse:
        """Predict the ratings of a batch of (user, item) pairs in one vectorised call."""
        _check_limit("pairs", len(body.pairs), max_batch)
        users = [pair.user for pair in body.pairs]
        items = [pair.item for pair in body.pairs]
        ratings = rec.predict(_ids(users), _ids(items), on_unknown=body.on_unknown).tolist()
        return PredictResponse(predictions=[
            Prediction(user=u, item=i, rating=None if math.isnan(r) else r)
            for u, i, r in zip(users, items, ratings, strict=True)
        ])

    @app.post("/recommendations", tags=["recommend"])
    def fold_in(body: FoldInRequest) -> Recommendations:
        """Recommend for a new user given their ratings (without retraining) or features."""
        _check_limit("n", body.n, max_n)
        if body.features:
            _check_features(schema, body.features)
            return Recommendations(items=_scored(rec.recommend_for_features(body.features,
                                                                            n=body.n)))
        _check_limit("ratings", len(body.ratings), max_batch)
        _check_scale(body.ratings.values(), rec.scale)
        ratings = _coerce_keys(rec, body.ratings)
        frame = rec.recommend_for_ratings(ratings, n=body.n, exclude_seen=body.exclude_seen,
                                          on_unknown=body.on_unknown)
        return Recommendations(user=None, items=_scored(frame))


def _check_scale(values: Any, scale: tuple[float, float]) -> None:
    outside = [v for v in values if not scale[0] <= v <= scale[1]]
    if outside:
        raise DataError(f"{len(outside)} rating(s) outside the model's scale "
                        f"[{scale[0]:g}, {scale[1]:g}], e.g. {outside[0]:.6g}",
                        column="ratings", value=outside[0],
                        hint=f"send ratings between {scale[0]:g} and {scale[1]:g}")


def _check_features(schema: FeatureSchema | None, values: Mapping[str, Any]) -> None:
    """Refuse a column the model does not know, or text for a number (and the reverse)."""
    if schema is None:
        return  # recommend_for_features says the model learnt no user features
    kinds = {column.name: column.kind for column in schema.columns}
    for name, value in values.items():
        require_choice("features", name, list(kinds))
        numeric = kinds[name] in ("numeric", "flag")
        if value is not None and isinstance(value, str) == numeric:
            wanted = "a number" if numeric else "text"
            raise DataError(f"feature {name!r} is {kinds[name]} and takes {wanted}, got "
                            f"{value!r}", column=name, value=value,
                            hint=f"send {wanted} or null for {name!r}")


# ----------------------------------------------------------------------------- conversions
def _coerce_text(index: IdIndex, raw: str) -> Any:
    """An id from a URL path as the index's id type (a fast path for plain digits)."""
    if index.is_integer and raw.isascii() and raw.isdigit() and (raw[0] != "0" or raw == "0"):
        return int(raw)  # canonical digits only: "0196" is not the id 196
    return _plain(index.coerce(raw))


def _ids(values: list[RawId]) -> np.ndarray:
    """Raw ids as an array: int64 when all are ints, else object (never numpy's str)."""
    if all(type(v) is int for v in values):
        try:
            return np.asarray(values, dtype=np.int64)
        except OverflowError:
            pass
    return np.asarray(values, dtype=object)


def _coerce_keys(rec: Recommender, ratings: Mapping[str, float]) -> dict[Any, float]:
    """Convert the text keys of a JSON object to the item id type, all at once if possible."""
    keys = list(ratings)
    converted = rec.items.coerce(np.asarray(keys, dtype=object))
    if rec.items.is_integer and np.asarray(converted).dtype.kind not in "iu":
        converted = [rec.items.coerce(key) for key in keys]  # some keys are not numbers
    plain = [_plain(v) for v in converted] if isinstance(converted, list) else converted.tolist()
    return dict(zip(plain, ratings.values(), strict=True))


def _plain(value: Any) -> Any:
    """A numpy scalar as a plain Python value (pydantic wants int/str)."""
    return value.item() if isinstance(value, np.generic) else value


def _columns(frame: pd.DataFrame, value: str) -> tuple[list[Any], list[Any], list[Any]]:
    """The item, value and title columns of a result frame as plain lists."""
    items = frame["item"].tolist()
    values = [None if math.isnan(v) else v for v in frame[value].tolist()]
    titles = ([t if isinstance(t, str) else None for t in frame["title"].tolist()]
              if "title" in frame.columns else [None] * len(items))
    return items, values, titles


def _scored(frame: pd.DataFrame) -> list[ScoredItem]:
    return _scored_arrays(*_columns(frame, "score"))


def _scored_arrays(items: list[Any], scores: list[Any], titles: list[Any]) -> list[ScoredItem]:
    return [ScoredItem(item=i, score=s, title=t)
            for i, s, t in zip(items, scores, titles, strict=True)]
