"""Save and load a Recommender as a plain directory, without pickle.

A model directory holds::

    config.json            format version, versions, model + train configs, data facts,
                           scale, mean, tensor shapes and the SHA-256 of every other file
    weights.safetensors    the model's state_dict ("model.*") and the seen-ratings CSR ("seen.*")
    users.parquet          raw user ids, in index order
    items.parquet          raw item ids, in index order
    item_info.parquet      titles/genres, when the data has them
    metrics.json           recorded metrics
    history.csv            per-epoch history, when training recorded one
    learning-curves.png    RMSE per epoch and the final model's, with a history (embrec.curves)

Everything is written to a temporary sibling folder and moved into place with
``os.replace``, so a reader never sees a half-written model. ``load`` checks
the format version and every file hash before it reads a byte of weights, and
reads weights with ``safetensors`` only.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from embrec.config import TrainConfig
from embrec.curves import plot_learning_curves
from embrec.data.ids import IdIndex
from embrec.errors import ArtifactError, EmbrecError
from embrec.models.base import ModelConfig, RatingModel
from embrec.recommender import Recommender

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save"]

FORMAT = "embrec-model"
FORMAT_VERSION = 1
CONFIG, WEIGHTS = "config.json", "weights.safetensors"
USERS, ITEMS, ITEM_INFO = "users.parquet", "items.parquet", "item_info.parquet"
METRICS, HISTORY, CURVES = "metrics.json", "history.csv", "learning-curves.png"
REQUIRED = ("model", "train_config", "n_users", "n_items", "scale", "mean", "files", "tensors")
RESAVE = "re-save the model with rec.save(path), or copy the whole directory again"


# ----------------------------------------------------------------------------- save
def save(rec: Recommender, path: str | Path) -> Path:
    """Write ``rec`` to the directory ``path``, replacing an earlier model there atomically.

    Args:
        rec: the recommender to save.
        path: the model directory; its parent folders are created.

    Returns:
        The directory's path.

    Raises:
        ArtifactError: if ``path`` is a file, or a non-empty folder that is not
            an embrec model directory (it is never overwritten).
    """
    path = Path(path)
    if path.exists() and not _replaceable(path):
        raise ArtifactError(f"refusing to replace {path}: it is not an embrec model directory",
                            hint="choose a new folder, or remove that one first")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(staging, 0o755)
        _write_all(rec, staging)
        _swap_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _replaceable(path: Path) -> bool:
    return path.is_dir() and ((path / CONFIG).is_file() or not any(path.iterdir()))


def _swap_into_place(staging: Path, path: Path) -> None:
    if not path.exists():
        os.replace(staging, path)
        return
    old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
    os.replace(path, old)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_all(rec: Recommender, folder: Path) -> None:
    tensors = _tensors(rec)
    save_file(tensors, str(folder / WEIGHTS))
    _ids_frame(rec.users).to_parquet(folder / USERS, index=False)
    _ids_frame(rec.items).to_parquet(folder / ITEMS, index=False)
    if rec.item_info is not None:
        _write_item_info(rec.item_info, folder / ITEM_INFO)
    (folder / METRICS).write_text(_json(rec.metadata.get("metrics", {})))
    if rec.history:
        pd.DataFrame(rec.history).to_csv(folder / HISTORY, index=False)
        plot_learning_curves(rec.history, folder / CURVES, metadata=rec.metadata,
                             model_name=rec.model_name,
                             early_stopping=rec.train_config.early_stopping is not None)
    files = sorted(p.name for p in folder.iterdir())
    config = _config(rec, tensors, {name: _sha256(folder / name) for name in files})
    (folder / CONFIG).write_text(_json(config))


def _tensors(rec: Recommender) -> dict[str, torch.Tensor]:
    state = {f"model.{key}": value.detach().to("cpu").contiguous().clone()
             for key, value in rec.model.state_dict().items()}
    seen = rec.seen
    state["seen.indptr"] = torch.as_tensor(np.asarray(seen.indptr, dtype=np.int64))
    state["seen.indices"] = torch.as_tensor(np.asarray(seen.indices, dtype=np.int64))
    state["seen.data"] = torch.as_tensor(np.asarray(seen.data, dtype=np.float32))
    return state


def _config(rec: Recommender, tensors: dict[str, torch.Tensor],
            hashes: dict[str, str]) -> dict[str, Any]:
    import embrec

    meta = {k: v for k, v in rec.metadata.items() if k != "metrics"}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "embrec_version": embrec.__version__,
        "torch_version": torch.__version__,
        "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {"name": rec.model_name, "config": rec.model_config.to_dict()},
        "train_config": rec.train_config.to_dict(),
        "n_users": rec.n_users,
        "n_items": rec.n_items,
        "scale": [rec.scale[0], rec.scale[1]],
        "mean": rec.mean,
        "data": {"source": meta.get("data"), "fingerprint": meta.get("fingerprint"),
                 "n_train": meta.get("n_train")},
        "split": meta.get("split"),
        "seed": meta.get("seed", rec.train_config.seed),
        "metadata": meta,
        "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
                    for k, v in tensors.items()},
        "files": hashes,
    }


def _ids_frame(index: IdIndex) -> pd.DataFrame:
    ids = index.ids
    if ids.dtype.kind in "iuf" or all(isinstance(i, str) for i in ids):
        return pd.DataFrame({"id": ids})
    if all(isinstance(i, str | int | np.integer) for i in ids):
        return pd.DataFrame({"id": [str(i) for i in ids],
                             "is_int": [not isinstance(i, str) for i in ids]})
    kinds = sorted({type(i).__name__ for i in ids})
    raise ArtifactError(f"cannot save {index.kind} ids of types {kinds}",
                        hint="use integer or string ids")


def _write_item_info(item_info: pd.DataFrame, file: Path) -> None:
    try:
        item_info.to_parquet(file)
    except (ValueError, TypeError, ImportError) as error:  # pyarrow's errors subclass these
        raise ArtifactError(f"cannot save item_info as Parquet: {error}",
                            hint="give item_info a single-type index and plain columns "
                            "(text, numbers, lists)") from error


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)  # a Path, a device, or anything else: kept readable, never lost


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- load
def load(path: str | Path, *, device: str | torch.device = "cpu") -> Recommender:
    """Load a model directory written by :func:`save`.

    Args:
        path: the model directory.
        device: where to put the model: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.

    Returns:
        The recommender, its model in eval mode on ``device``.

    Raises:
        ArtifactError: for a missing directory or file, a file that changed
            since it was saved (hash mismatch, truncation), another format
            version, an unknown model or weights that do not fit the model.
    """
    path = Path(path)
    config = _read_config(path)
    _verify_files(path, config)
    tensors = _read_weights(path / WEIGHTS, config)
    users, items = _read_ids(path / USERS, "user"), _read_ids(path / ITEMS, "item")
    n_users, n_items = int(config["n_users"]), int(config["n_items"])
    for name, ids, n in ((USERS, users, n_users), (ITEMS, items, n_items)):
        if len(ids) != n:
            raise _corrupt(path / name, f"holds {len(ids)} ids, config.json says {n}")
    scale = (float(config["scale"][0]), float(config["scale"][1]))
    model_config, model = _build_model(path, config, tensors, scale)
    model.to(_device(device)).eval()
    try:
        train_config = TrainConfig.from_dict(config["train_config"])
    except EmbrecError as error:
        raise _corrupt(path / CONFIG, f"invalid train_config: {error.message}") from None
    metadata = dict(config.get("metadata") or {})
    metadata["metrics"] = json.loads((path / METRICS).read_text())
    return Recommender(
        model, model_config, train_config, users, items,
        scale, float(config["mean"]), _seen(path, tensors, n_users, n_items),
        _read_history(path), _read_item_info(path), metadata,
    )


def _build_model(path: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                 scale: tuple[float, float]) -> tuple[ModelConfig, RatingModel]:
    """Rebuild the model from its registry config and load its weights strictly."""
    model_config = _model_config(path, config)
    model = model_config.build(int(config["n_users"]), int(config["n_items"]), scale=scale,
                               mean=float(config["mean"]))
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise _corrupt(path / WEIGHTS,
                       f"does not fit a {model_config.name} model: {first}") from None
    return model_config, model


def _corrupt(file: Path, problem: str) -> ArtifactError:
    return ArtifactError(f"{file}: {problem}", hint=RESAVE)


def _read_config(path: Path) -> dict[str, Any]:
    hint = "pass a folder written by rec.save(path) or `embrec train --out DIR`"
    if not path.is_dir():
        raise ArtifactError(f"no model directory at {path}", hint=hint)
    file = path / CONFIG
    if not file.is_file():
        raise ArtifactError(f"{file}: missing, so {path} is not an embrec model directory",
                            hint=hint)
    try:
        config = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _corrupt(file, f"is not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ArtifactError(f"{file}: not an embrec model config", hint=hint)
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        saved = config.get("embrec_version", "unknown")
        raise ArtifactError(
            f"{file}: format version {version!r}, but this embrec reads version {FORMAT_VERSION}",
            hint=f"load it with the embrec version that saved it ({saved}) and re-save it, "
            "or train the model again",
        )
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise _corrupt(file, f"has no {missing[0]!r} field")
    return config


def _verify_files(path: Path, config: dict[str, Any]) -> None:
    files = config.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files:
        raise _corrupt(path / CONFIG, "lists no file hashes")
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise _corrupt(file, "missing (config.json lists it)")
        if _sha256(file) != expected:
            raise _corrupt(file, "SHA-256 does not match config.json: the file was changed, "
                           "truncated or corrupted after saving")


def _read_weights(file: Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    try:
        tensors: dict[str, torch.Tensor] = load_file(str(file), device="cpu")
    except Exception as error:  # safetensors raises its own error type for bad headers
        raise _corrupt(file, f"cannot be read as safetensors ({error})") from None
    expected = {k: v["shape"] for k, v in config.get("tensors", {}).items()}
    actual = {k: list(v.shape) for k, v in tensors.items()}
    if expected != actual:
        wrong = [k for k in sorted(set(expected) | set(actual)) if expected.get(k) != actual.get(k)]
        raise _corrupt(file, f"tensor shapes differ from config.json for {wrong[:5]}")
    return tensors


def _read_ids(file: Path, kind: str) -> IdIndex:
    frame = pd.read_parquet(file)
    if "id" not in frame.columns:
        raise _corrupt(file, "has no 'id' column")
    ids = frame["id"].to_numpy()
    if "is_int" in frame.columns:
        flags = frame["is_int"].to_numpy()
        ids = np.array([int(i) if f else str(i) for i, f in zip(ids, flags, strict=True)],
                       dtype=object)
    elif ids.dtype.kind not in "iuf":
        ids = ids.astype(object)
    return IdIndex(ids, kind=kind)


def _model_config(path: Path, config: dict[str, Any]) -> ModelConfig:
    from embrec.models import MODELS

    name = str(config["model"]["name"])
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=1)
        known = f"did you mean {close[0]!r}?" if close else f"known models: {sorted(MODELS)}"
        raise ArtifactError(f"{path / CONFIG}: unknown model {name!r}",
                            hint=f"{known}; the model may come from a newer embrec")
    try:
        model_config: ModelConfig = MODELS[name].from_dict(config["model"]["config"])
    except EmbrecError as error:
        raise _corrupt(path / CONFIG, f"invalid {name} config: {error.message}") from None
    return model_config


def _seen(path: Path, tensors: dict[str, torch.Tensor], n_users: int,
          n_items: int) -> sp.csr_matrix:
    try:
        indptr, indices, data = (tensors[f"seen.{k}"].numpy() for k in ("indptr", "indices",
                                                                        "data"))
    except KeyError as error:
        raise _corrupt(path / WEIGHTS, f"has no seen-ratings tensor {error}") from None
    if len(indptr) != n_users + 1 or (len(indices) and int(indices.max()) >= n_items):
        raise _corrupt(path / WEIGHTS, "seen-ratings matrix does not fit the id files")
    return sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))


def _read_history(path: Path) -> list[dict[str, float]]:
    if not (path / HISTORY).is_file():
        return []
    frame = pd.read_csv(path / HISTORY)
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _read_item_info(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path / ITEM_INFO) if (path / ITEM_INFO).is_file() else None


def _device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
