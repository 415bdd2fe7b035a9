"""A model folder read and written as plain state (ids, configs, tensors, metadata), no pickle.

:class:`ModelState` is everything a saved model holds; ``save`` and ``load``
(:mod:`embrec.recommender`) convert a ``Recommender`` to and from it, so this
module never sees one.

A model directory holds::

    embrec-manifest.json   the format marker and integrity record: size and SHA-256 of
                           every other file (config.json included) and its own digest
    config.json            format version, versions, model + train configs, data facts,
                           scale, mean, tensor shapes
    weights.safetensors    the model's state_dict ("model.*") and the seen-ratings CSR ("seen.*")
    users.parquet          raw user ids, in index order
    items.parquet          raw item ids, in index order
    item_info.parquet      titles/genres, when the data has them
    metrics.json           recorded metrics
    history.csv            per-epoch history, when training recorded one
    learning-curves.png    RMSE per epoch and the final model's, with a history (embrec.curves)
    test.parquet           the rows its training run held out (embrec.evaluation.heldout)

Everything is written to a staging sibling folder and exchanged with the
target in one rename (see :mod:`embrec.modeldir`: a folder embrec did not write
is never touched). ``load`` checks the manifest, every file hash and every
config value before it allocates the model, and reads weights with
``safetensors`` only; NaN or infinite weights are refused at save and at load.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from embrec.artifact_checks import (
    check_config,
    check_finite,
    check_shapes,
    config_of,
    corrupt,
    read_json,
    read_model_config,
    read_optional_frame,
)
from embrec.config import TrainConfig
from embrec.curves import plot_learning_curves
from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings
from embrec.errors import ArtifactError, EmbrecError
from embrec.evaluation.heldout import TEST_ROWS, write_test_rows
from embrec.jsonsafe import dumps
from embrec.modeldir import (
    FORMAT,
    MANIFEST,
    RESAVE,
    read_manifest,
    remove_stale_staging,
    write_model_dir,
)
from embrec.models.base import ModelConfig, RatingModel
from embrec.writers import matches

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelState", "read", "write"]

FORMAT_VERSION = 2
CONFIG, WEIGHTS = "config.json", "weights.safetensors"
USERS, ITEMS, ITEM_INFO = "users.parquet", "items.parquet", "item_info.parquet"
METRICS, HISTORY, CURVES = "metrics.json", "history.csv", "learning-curves.png"
REQUIRED = ("model", "train_config", "n_users", "n_items", "scale", "mean", "tensors")


@dataclass(frozen=True, slots=True)
class ModelState:
    """What a model folder holds: a ``Recommender``'s attributes, with its model's
    ``state_dict`` as ``weights`` in place of the live model."""

    model_config: ModelConfig
    train_config: TrainConfig
    users: IdIndex
    items: IdIndex
    scale: tuple[float, float]
    mean: float
    seen: sp.csr_matrix
    weights: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    item_info: pd.DataFrame | None
    metadata: dict[str, Any]

    def build_model(self, device: torch.device) -> RatingModel:
        """The model these weights are for, on ``device`` in eval mode.

        Raises:
            ArtifactError: if the weights do not fit the model.
        """
        model = self.model_config.build(len(self.users), len(self.items), scale=self.scale,
                                        mean=self.mean)
        try:
            model.load_state_dict(self.weights, strict=True)
        except RuntimeError as error:
            raise ArtifactError(f"saved weights do not fit the {self.model_config.name} model "
                                f"({str(error)[-200:]})", hint="re-save the model") from None
        return model.to(device).eval()


def write(state: ModelState, path: str | Path, *, test: Ratings | None = None) -> Path:
    """Write ``state`` to the model folder ``path`` (see :func:`embrec.recommender.save`).

    Raises:
        ArtifactError: if ``path`` is refused (see :mod:`embrec.modeldir`), cannot
            be written, or the weights hold NaN or infinity.
    """
    tensors = _tensors(state)
    check_finite(tensors, f"cannot save to {path}")
    try:
        write_model_dir(path, lambda folder: _write_all(state, tensors, folder, test),
                        format_version=FORMAT_VERSION)
    except ArtifactError:
        raise
    except OSError as error:  # a read-only or full disk, a file where a folder should be
        raise ArtifactError(f"cannot save a model to {path}: {error.strerror or error}",
                            hint="pick a folder you can write to, on a disk with room") from None
    return Path(path)


def _write_all(state: ModelState, tensors: dict[str, torch.Tensor], folder: Path,
               test: Ratings | None) -> None:
    save_file(tensors, str(folder / WEIGHTS))
    if test is not None:
        write_test_rows(test, folder / TEST_ROWS)
    _ids_frame(state.users).to_parquet(folder / USERS, index=False)
    _ids_frame(state.items).to_parquet(folder / ITEMS, index=False)
    if state.item_info is not None:
        _write_item_info(state.item_info, folder / ITEM_INFO)
    (folder / METRICS).write_text(_json(state.metadata.get("metrics", {})))
    if state.history:
        history = pd.DataFrame(state.history)
        if "epoch" in history:
            history["epoch"] = history["epoch"].astype("int64")
        history.to_csv(folder / HISTORY, index=False)
        plot_learning_curves(state.history, folder / CURVES, metadata=state.metadata,
                             model_name=state.model_config.name,
                             early_stopping=state.train_config.early_stopping is not None)
    (folder / CONFIG).write_text(_json(_config(state, tensors)))


def _tensors(state: ModelState) -> dict[str, torch.Tensor]:
    tensors = {f"model.{key}": value.detach().to("cpu").contiguous().clone()
               for key, value in state.weights.items()}
    for name, dtype in (("indptr", np.int64), ("indices", np.int64), ("data", np.float32)):
        tensors[f"seen.{name}"] = torch.as_tensor(np.asarray(getattr(state.seen, name), dtype))
    return tensors


def _config(state: ModelState, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    import embrec

    meta = {k: v for k, v in state.metadata.items() if k != "metrics"}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "embrec_version": embrec.__version__,
        "torch_version": torch.__version__,
        "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {"name": state.model_config.name, "config": state.model_config.to_dict()},
        "train_config": state.train_config.to_dict(),
        "n_users": len(state.users),
        "n_items": len(state.items),
        "scale": [state.scale[0], state.scale[1]],
        "mean": state.mean,
        "data": {"source": meta.get("data"), "fingerprint": meta.get("fingerprint"),
                 "n_train": meta.get("n_train")},
        "split": meta.get("split"),
        "seed": meta.get("seed", state.train_config.seed),
        "metadata": meta,
        "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
                    for k, v in tensors.items()},
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
    return dumps(value, default=str) + "\n"  # a device or anything else: kept readable


def read(path: str | Path) -> ModelState:
    """Read and check the model folder ``path`` (see :func:`embrec.recommender.load`).

    Raises:
        ArtifactError: for a missing, changed or inconsistent file or config value.
    """
    path = Path(path)
    remove_stale_staging(path)
    config, listed = _read_config(path)
    file = path / CONFIG
    model_config = read_model_config(file, config)
    train_config = config_of(TrainConfig, config["train_config"], file, "train_config")
    tensors = _read_weights(path / WEIGHTS, model_config, config)
    check_finite(tensors, str(path / WEIGHTS))
    users, items = _read_ids(path / USERS, "user"), _read_ids(path / ITEMS, "item")
    n_users, n_items = config["n_users"], config["n_items"]
    for name, ids, n in ((USERS, users, n_users), (ITEMS, items, n_items)):
        if len(ids) != n:
            raise corrupt(path / name, f"holds {len(ids)} ids, config.json says {n}")
    metrics = read_json(path / METRICS)
    if not isinstance(metrics, dict):
        raise corrupt(path / METRICS, "must hold a JSON object")
    item_info = read_optional_frame(path / ITEM_INFO, "parquet") if ITEM_INFO in listed else None
    return ModelState(
        model_config, train_config, users, items,
        (float(config["scale"][0]), float(config["scale"][1])), float(config["mean"]),
        _seen(path, tensors, n_users, n_items),
        {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")},
        _read_history(path, listed), item_info,
        {**(config.get("metadata") or {}), "metrics": metrics})


def _read_config(path: Path) -> tuple[dict[str, Any], set[str]]:
    """config.json, checked, and the names the manifest lists (only those are ever read)."""
    hint = "pass a folder written by rec.save(path) or `embrec train --out DIR`"
    if not path.is_dir():
        raise ArtifactError(f"no model directory at {path}", hint=hint)
    file = path / CONFIG
    if not (path / MANIFEST).exists():
        if not file.is_file():
            raise ArtifactError(f"{path / MANIFEST}: missing, so {path} is not an embrec model "
                                "directory", hint=hint)
        config = read_json(file)
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ArtifactError(f"{path}: not an embrec model directory (no {MANIFEST})",
                                hint=hint)
        _check_version(file, config)  # an older embrec's folder: say so
        raise ArtifactError(f"{path / MANIFEST}: missing", hint=RESAVE)
    manifest = read_manifest(path)
    _check_version(path / MANIFEST, manifest)
    _verify_files(path, manifest["files"])
    config = read_json(file)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ArtifactError(f"{file}: not an embrec model config", hint=hint)
    _check_version(file, config)
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise corrupt(file, f"has no {missing[0]!r} field")
    check_config(file, config)
    return config, set(manifest["files"])


def _check_version(file: Path, record: Any) -> None:
    version = record.get("format_version") if isinstance(record, dict) else None
    if version != FORMAT_VERSION:
        saved = record.get("embrec_version", "unknown") if isinstance(record, dict) else "unknown"
        raise ArtifactError(
            f"{file}: format version {str(version)[:20]}, but this embrec reads version "
            f"{FORMAT_VERSION}",
            hint=f"load it with the embrec version that saved it ({str(saved)[:20]}) and re-save "
            "it, or train the model again",
        )


def _verify_files(path: Path, files: dict[str, Any]) -> None:
    for name in (CONFIG, WEIGHTS, USERS, ITEMS, METRICS):
        if name not in files:
            raise corrupt(path / MANIFEST, f"does not list {name}")
    for name, entry in files.items():
        file = path / name
        if file.is_symlink() or not file.is_file():
            raise corrupt(file, f"missing or not a regular file ({MANIFEST} lists it)")
        if not matches(file, entry["sha256"], entry["bytes"]):
            raise corrupt(file, f"size or SHA-256 does not match {MANIFEST}: the file was "
                          "changed, truncated or corrupted after saving")


def _read_weights(file: Path, model_config: ModelConfig,
                  config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights, once their header's shapes fit the model (built on ``meta``) and config.json."""
    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            header = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
            check_shapes(file, model_config, config, header)
            expected = {k: v.get("shape") if isinstance(v, dict) else v
                        for k, v in config["tensors"].items()}
            if expected != header:
                wrong = [k for k in sorted(set(expected) | set(header))
                         if expected.get(k) != header.get(k)]
                raise corrupt(file, f"tensor shapes differ from config.json for {wrong[:5]}")
            return {key: handle.get_tensor(key) for key in header}
    except ArtifactError:
        raise
    except Exception as error:  # safetensors raises its own error type for bad headers
        raise corrupt(file, f"cannot be read as safetensors ({str(error)[:200]})") from None


def _read_ids(file: Path, kind: str) -> IdIndex:
    frame = read_optional_frame(file, "parquet")
    if "id" not in frame.columns:
        raise corrupt(file, "has no 'id' column")
    ids = frame["id"].to_numpy()
    try:
        if "is_int" in frame.columns:
            flags = frame["is_int"].to_numpy()
            ids = np.array([int(i) if f else str(i) for i, f in zip(ids, flags, strict=True)],
                           dtype=object)
        elif ids.dtype.kind not in "iuf":
            ids = ids.astype(object)
        return IdIndex(ids, kind=kind)
    except (EmbrecError, ValueError, TypeError) as error:
        raise corrupt(file, f"holds unusable ids ({str(error).splitlines()[0][:200]})") from None


def _seen(path: Path, tensors: dict[str, torch.Tensor], n_users: int,
          n_items: int) -> sp.csr_matrix:
    try:
        indptr, indices, data = (tensors[f"seen.{k}"].numpy() for k in ("indptr", "indices",
                                                                        "data"))
    except KeyError as error:
        raise corrupt(path / WEIGHTS, f"has no seen-ratings tensor {error}") from None
    try:
        matrix = sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))
        matrix.check_format(full_check=True)
        return matrix
    except (ValueError, TypeError) as error:
        raise corrupt(path / WEIGHTS, f"seen-ratings matrix does not fit the id files "
                      f"({str(error)[:200]})") from None


def _read_history(path: Path, listed: set[str]) -> list[dict[str, float]]:
    if HISTORY not in listed:
        return []
    frame = read_optional_frame(path / HISTORY, "csv")
    if not all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        raise corrupt(path / HISTORY, "holds values that are not numbers")
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]
