"""Checks a saved model's files must pass before ``load`` allocates or trusts anything.

Every value of ``config.json`` is checked for its type and bounds; the model is
built on PyTorch's ``meta`` device (no memory) and its tensor shapes compared
with the weights file's header, so an absurd ``embedding_dim`` is refused
without allocating; weights must be finite; the optional files (metrics,
history, item info, id maps) are parsed with every failure turned into an
:class:`ArtifactError` naming the file.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.overrides import TorchFunctionMode

from embrec.errors import ArtifactError, EmbrecError
from embrec.modeldir import RESAVE
from embrec.models.base import ModelConfig
from embrec.writers import read_json as read_record

__all__ = ["check_config", "check_finite", "check_shapes", "config_of", "corrupt",
           "read_json", "read_model_config", "read_optional_frame"]

MAX_IDS = 2**31 - 1
MAX_JSON_BYTES = 64 << 20


class _NoInit(TorchFunctionMode):
    """Skip the in-place random initialisers while a shape-only model is built on ``meta``.

    On the meta device they run PyTorch's Python reference kernels, which import
    ``torch._dynamo``; shapes need no values.
    """

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in ("normal_", "uniform_", "trunc_normal_"):
            return args[0] if args else kwargs.get("tensor")
        return func(*args, **kwargs)


def corrupt(file: Path, problem: str) -> ArtifactError:
    """The error for a model file that is unreadable or inconsistent."""
    return ArtifactError(f"{file}: {problem}", hint=RESAVE)


def read_json(file: Path) -> Any:
    """Parse a model folder's JSON file (size-limited; deep nesting is an error)."""
    return read_record(file, MAX_JSON_BYTES, RESAVE)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def check_config(file: Path, config: dict[str, Any]) -> None:
    """Check the types and bounds of ``config.json``'s top-level values.

    Raises:
        ArtifactError: naming the first field that is wrong.
    """
    for key in ("n_users", "n_items"):
        value = config[key]
        if type(value) is not int or not 1 <= value <= MAX_IDS:
            raise corrupt(file, f"{key}={value!r:.60} must be an integer in [1, {MAX_IDS}]")
    scale = config["scale"]
    if (not isinstance(scale, list) or len(scale) != 2 or not all(map(_is_number, scale))
            or not scale[0] <= scale[1]):
        raise corrupt(file, f"scale={scale!r:.60} must be [min, max], finite, min <= max")
    if not _is_number(config["mean"]):
        raise corrupt(file, f"mean={config['mean']!r:.60} must be a finite number")
    model = config["model"]
    if (not isinstance(model, dict) or not isinstance(model.get("name"), str)
            or not isinstance(model.get("config"), dict)):
        raise corrupt(file, "model must be {'name': str, 'config': {...}}")
    for key in ("train_config", "tensors"):
        if not isinstance(config[key], dict):
            raise corrupt(file, f"{key} must be an object")
    if not isinstance(config.get("metadata") or {}, dict):
        raise corrupt(file, "metadata must be an object")


def config_of(cls: Any, data: dict[str, Any], file: Path, what: str) -> Any:
    """Build a config dataclass from ``data`` after checking each value's JSON type."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, value in data.items():
        default = defaults.get(key, dataclasses.MISSING)
        if default is dataclasses.MISSING or default is None or value is None:
            continue
        if not _same_kind(value, default):
            raise corrupt(file, f"invalid {what}: {key}={value!r:.60} should be of "
                          f"type {type(default).__name__}")
    try:
        return cls.from_dict(data)
    except (EmbrecError, TypeError, ValueError, OverflowError) as error:
        message = error.message if isinstance(error, EmbrecError) else str(error)
        raise corrupt(file, f"invalid {what}: {message[:200]}") from None


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return type(value) in (int, float)
    if isinstance(default, int | str):
        return type(value) is type(default)
    if isinstance(default, tuple | list):
        return isinstance(value, list) and all(not isinstance(v, dict | list) for v in value)
    return True


def read_model_config(file: Path, config: dict[str, Any]) -> ModelConfig:
    """The registered model config named in ``config.json``, type-checked."""
    import difflib

    from embrec.models import MODELS

    name = config["model"]["name"]
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=1)
        known = f"did you mean {close[0]!r}?" if close else f"known models: {sorted(MODELS)}"
        raise ArtifactError(f"{file}: unknown model {name[:60]!r}",
                            hint=f"{known}; the model may come from a newer embrec")
    result: ModelConfig = config_of(MODELS[name], config["model"]["config"], file,
                                    f"{name} config")
    return result


def check_shapes(file: Path, model_config: ModelConfig, config: dict[str, Any],
                 header: dict[str, list[int]]) -> None:
    """Build the model on the meta device and compare its shapes with the weights header.

    Buffers a model lists in ``variable_buffers`` (sized by the training data, such
    as EASE's stored histories) must only have the right number of dimensions.

    Raises:
        ArtifactError: if the model would not fit the saved weights.
    """
    scale = (float(config["scale"][0]), float(config["scale"][1]))
    try:
        with torch.device("meta"), _NoInit():
            model = model_config.build(config["n_users"], config["n_items"], scale=scale,
                                       mean=float(config["mean"]))
    except (EmbrecError, TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise corrupt(file, f"cannot build the model: {str(error)[:200]}") from None
    variable = {f"model.{k}" for k in getattr(model, "variable_buffers", ())}
    expected = {f"model.{k}": list(v.shape) for k, v in model.state_dict().items()}
    saved = {k: v for k, v in header.items() if k.startswith("model.")}
    for key in variable & set(saved) & set(expected):  # sized by the data: only the rank is fixed
        if len(saved[key]) == len(expected[key]):
            expected[key] = saved[key]
    if expected != saved:
        wrong = [k for k in sorted(set(expected) | set(saved)) if expected.get(k) != saved.get(k)]
        raise corrupt(file, f"does not fit a {model_config.name} model: tensors {wrong[:5]} "
                      "differ from what its config.json describes")


def check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights holding NaN or infinity.

    Raises:
        ArtifactError: naming the first tensor that is not finite.
    """
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ArtifactError(
                f"{where}: weights {key!r} hold NaN or infinite values",
                hint="training diverged: train again with a lower learning rate")


def read_optional_frame(file: Path, kind: str) -> pd.DataFrame:
    """Read a model folder's CSV or Parquet file; any failure is an ArtifactError."""
    try:
        if kind == "csv":
            return pd.read_csv(file)
        return pd.read_parquet(file)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as error:  # pyarrow's errors subclass these
        raise corrupt(file, f"cannot be read ({str(error).splitlines()[0][:200]})") from None
