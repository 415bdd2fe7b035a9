"""Checks on a checkpoint before a run resumes from it: every field's type and range, every tensor.

A checkpoint's ``state.json`` may have been edited, truncated or copied from
another run. :func:`check_facts` checks what :class:`~embrec.training.checkpoint.RunState`
reads back (types, and the ranges the run's own settings give) and
:func:`check_tensors` the generator states and predictions, so that anything
wrong is an :class:`~embrec.errors.ArtifactError` naming the file and the field
before training starts, never a traceback mid-run or a silently different model.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from embrec.errors import ArtifactError
from embrec.writers import matches

__all__ = ["MAX_STATE_BYTES", "check_facts", "check_tensors", "field_error", "read_pointer",
           "verify_files"]

MAX_STATE_BYTES = 64 << 20
"""The largest ``state.json`` a resume parses."""


def field_error(file: Path, field: str, value: Any, expected: str) -> ArtifactError:
    """The error for a checkpoint field ``field`` holding ``value`` where ``expected`` belongs."""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ArtifactError(f"checkpoint {file}: field {field!r} is {shown}, expected {expected}",
                         hint=f"remove {file.parent.parent} and train without resume")


def _int(value: Any) -> bool:
    return type(value) is int


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def check_facts(facts: dict[str, Any], file: Path, *, epochs: int, per_epoch: int,
                masks: int) -> None:
    """Check the resumed fields of ``facts`` (parsed from ``file``) against a run of
    ``epochs`` x ``per_epoch`` optimiser steps whose model has ``masks`` dropout streams.

    Raises:
        ArtifactError: naming the first field whose type or range is wrong.
    """
    epoch, step, steps = facts["epoch"], facts["step"], facts["steps"]
    if not (_int(epoch) and 1 <= epoch <= epochs + 1):
        raise field_error(file, "epoch", epoch, f"an integer from 1 to {epochs + 1}")
    if not (_int(step) and 0 <= step < max(per_epoch, 1) and (step == 0 or epoch <= epochs)):
        raise field_error(file, "step", step, f"an integer from 0 to {max(per_epoch - 1, 0)}")
    expected = (epoch - 1) * per_epoch + step
    if not (_int(steps) and steps == expected):
        raise field_error(file, "steps", steps, f"{expected} (epoch {epoch}, step {step})")
    if type(facts["stopped"]) is not bool:
        raise field_error(file, "stopped", facts["stopped"], "true or false")
    lr = facts["lr"]
    if not (_number(lr) and math.isfinite(lr) and lr >= 0):
        raise field_error(file, "lr", lr, "a finite learning rate")
    _check_history(facts["history"], file, epoch)
    best, best_epoch = facts["best_rmse"], facts["best_epoch"]
    if not (_number(best) and not math.isnan(best) and best >= 0):
        raise field_error(file, "best_rmse", best, "a number (Infinity before any)")
    if not (_int(best_epoch) and 0 <= best_epoch < epoch):
        raise field_error(file, "best_epoch", best_epoch, f"an integer from 0 to {epoch - 1}")
    positions = facts["masks"]
    if not (isinstance(positions, list) and len(positions) == masks
            and all(isinstance(p, list) and len(p) == 3 and all(_int(v) and v >= 0 for v in p)
                    for p in positions)):
        raise field_error(file, "masks", positions, f"{masks} lists of 3 counts")


def _check_history(history: Any, file: Path, epoch: int) -> None:
    if not (isinstance(history, list) and len(history) == epoch - 1):
        raise field_error(file, "history", history, f"a list of {epoch - 1} epoch records")
    for record in history:
        if not (isinstance(record, dict) and
                all(isinstance(k, str) and _number(v) for k, v in record.items())):
            raise field_error(file, "history", record, "records of numbers by name")


def check_tensors(tensors: dict[str, Tensor], local: dict[str, Tensor], where: Path, rank: int,
                  generator_state: Tensor, predictions: Tensor) -> None:
    """Check the generator states and this rank's predictions before they are put back.

    Raises:
        ArtifactError: for a generator state or predictions of another type or size.
    """
    for name in ("generator", "epoch_generator", "objective_generator"):
        value = tensors.get(name)
        if value is None and name == "objective_generator":
            continue
        same = value is not None and value.dtype == generator_state.dtype and (
            value.dim() == 1 if name == "objective_generator" else
            value.shape == generator_state.shape)
        if not same:
            raise field_error(where / "state.safetensors", name, _describe(value),
                              f"a generator state ({_describe(generator_state)})")
    value = local.get("predictions")
    if value is None or value.shape != predictions.shape or not value.dtype.is_floating_point:
        raise field_error(where / f"rank-{rank}.safetensors", "predictions", _describe(value),
                          f"{_describe(predictions)} (one per training row)")


def read_pointer(pointer: Path, pattern: re.Pattern[str]) -> str:
    """The checkpoint name in ``LATEST``: a small regular file holding ``step-NNNNNNNNN``.

    Raises:
        ArtifactError: if ``LATEST`` is a folder, unreadable, or names something else.
    """
    hint = f"remove {pointer.parent} and train without resume"
    if pointer.is_symlink() or not pointer.is_file():
        raise ArtifactError(f"checkpoint pointer {pointer} is not a regular file", hint=hint)
    try:
        with pointer.open("rb") as handle:
            name = handle.read(64).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        name = "?"
    if not pattern.fullmatch(name) or not (pointer.parent / name).is_dir():
        raise ArtifactError(f"checkpoint pointer {pointer} does not name a checkpoint folder "
                            f"(it holds {name[:40]!r})", hint=hint)
    return name


def verify_files(facts: dict[str, Any], where: Path, names: list[str]) -> None:
    """Check the SHA-256 of each tensor file ``names`` against ``facts["files"]``.

    Raises:
        ArtifactError: for a file missing from the record, or changed since it was saved
            (a tensor file copied from another run included).
    """
    files = facts.get("files")
    if facts.get("format") == 1 and files is None:
        return  # written before checkpoints recorded their hashes
    if not isinstance(files, dict):
        raise field_error(where / "state.json", "files", files, "the hash of each tensor file")
    for name in names:
        if not matches(where / name, files.get(name)):
            raise ArtifactError(
                f"checkpoint file {where / name} is missing or does not match the hash in "
                "state.json (changed, corrupted or copied from another run)",
                hint=f"remove {where.parent} and train without resume")


def _describe(tensor: Tensor | None) -> str:
    return "missing" if tensor is None else f"{str(tensor.dtype)[6:]} {list(tensor.shape)}"
