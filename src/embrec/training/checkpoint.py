"""Checkpoints: atomic snapshots of a training run; resuming gives the uninterrupted result.

A checkpoint is a folder ``step-NNNNNNNNN`` (the optimiser steps taken) in the
checkpoint directory, named by the file ``LATEST``:

- ``state.safetensors``: model weights, optimiser moments, the generator's
  state now and at the start of the epoch (to redraw the epoch's permutation),
  pre-drawn dropout masks, the kept best weights (early stopping);
- ``state.json``: epoch and step within it, the schedule's position, history,
  best epoch, the seed, and what the run must match to resume it (data
  fingerprint, model config, training config, world size);
- ``rank-R.safetensors``: what rank ``R`` alone holds (its predictions so far
  in the epoch, for the epoch's train error).

Every rank writes into one staging folder, which rank 0 publishes once all have
written, then replaces ``LATEST`` and removes older ``step-*`` folders (no other
name): the atomic writer model folders use (:mod:`embrec.writers`), so a kill at
any moment leaves the previous checkpoint intact. Safetensors and JSON only. The
folder is marked as embrec's by ``embrec-checkpoints.json``; a non-empty folder
that is not embrec's is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.distributed.exchange import DataParallel, EpochOrder, Group, epoch_order
from embrec.errors import ArtifactError
from embrec.models.base import EmbeddingModel, ModelConfig
from embrec.training.batches import Columns
from embrec.training.diagnostics import error_metrics
from embrec.training.resume_checks import (
    MAX_STATE_BYTES,
    check_facts,
    check_tensors,
    field_error,
    read_pointer,
    verify_files,
)
from embrec.writers import file_above, publish, read_json, replace_text, sha256, stage

__all__ = ["Checkpoints", "RunHooks", "RunState", "Snapshot", "check_folder", "run_identity"]

FORMAT = 2
"""2: ``state.json`` records the SHA-256 of every tensor file (1: no hashes, still resumed)."""
LATEST = "LATEST"
MARKER = "embrec-checkpoints.json"
MARKER_FORMAT = "embrec-checkpoints"
_OWN = re.compile(r"LATEST|\.LATEST\.tmp|\.(LATEST|embrec-checkpoints\.json)\.embrec-tmp\.\d+"
                  r"|\.?step-\d{9}(\.tmp|\.old)?")
"""The names embrec writes in a checkpoint folder (temporary ones included)."""
_STEP = re.compile(r"step-\d{9}")
IDENTITY = ("world_size", "fingerprint", "model", "train")
"""Checked in this order: a sharded run's fingerprint depends on its world size."""
RESUMED = ("epoch", "step", "steps", "stopped", "lr", "history", "best_rmse", "best_epoch",
           "masks", "seed")
"""What a resume reads from ``state.json`` besides the run's identity."""
RUN_ONLY = ("progress", "num_threads", "device", "checkpoint_every")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A checkpoint read back from its folder ``where``: the ``tensors`` every rank shares
    (written by rank 0), this rank's ``local`` ones and the JSON ``facts``."""

    tensors: dict[str, Tensor]
    local: dict[str, Tensor]
    facts: dict[str, Any]
    where: Path = Path(".")


class Checkpoints:
    """The checkpoints of one run in ``folder`` (created on the first save).

    ``identity`` (:func:`run_identity`) is what a checkpoint must match to be resumed;
    ``every``: also checkpoint every this many optimiser steps (``None``: at each
    epoch's end only); ``barrier`` waits for every rank (``None`` in one process).
    """

    def __init__(self, folder: str | Path, identity: dict[str, Any], every: int | None = None,
                 rank: int = 0, barrier: Callable[[], None] | None = None) -> None:
        self.folder, self.identity, self.every = Path(folder), identity, every
        self.rank, self.barrier = rank, barrier or (lambda: None)
        check_folder(self.folder)

    def due(self, steps: int) -> bool:
        """Whether a mid-epoch checkpoint is due after ``steps`` optimiser steps."""
        return self.every is not None and steps % self.every == 0

    def save(self, tensors: dict[str, Tensor], local: dict[str, Tensor],
             facts: dict[str, Any]) -> Path:
        """Write a checkpoint atomically; every rank calls this at the same step with its
        ``local`` tensors (rank 0 also writes the shared ``tensors``). ``facts["steps"]``
        names the checkpoint folder, which is returned."""
        name = f"step-{int(facts['steps']):09d}"
        staging = self.folder / f".{name}.tmp"
        if self.rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
            stage(staging)
            if not (self.folder / MARKER).is_file():
                replace_text(self.folder / MARKER, json.dumps({"format": MARKER_FORMAT}) + "\n")
        self.barrier()
        _write_tensors(local, staging / f"rank-{self.rank}.safetensors")
        if self.rank == 0:
            _write_tensors(tensors, staging / "state.safetensors")
        self.barrier()
        if self.rank == 0:  # every rank's file is written: record their hashes
            files = {p.name: sha256(p) for p in sorted(staging.glob("*.safetensors"))}
            record = {"format": FORMAT, **self.identity, **facts, "files": files}
            (staging / "state.json").write_text(json.dumps(record, indent=1))
            self._publish(staging, name)
        return self.folder / name

    def _publish(self, staging: Path, name: str) -> None:
        old = publish(staging, self.folder / name, aside=self.folder / f".{name}.old")
        if old is not None:  # this step written again (a resumed run): the earlier copy
            shutil.rmtree(old, ignore_errors=True)
        replace_text(self.folder / LATEST, name + "\n")
        for old in self.folder.iterdir():  # embrec's names only: a user's step-notes/ stays
            if _STEP.fullmatch(old.name) and old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    def load(self) -> Snapshot | None:
        """Read the latest complete checkpoint, checked against this run's identity;
        ``None`` when there is none.

        Raises:
            ArtifactError: if the checkpoint is unreadable or belongs to a
                different data set, model, training config or world size.
        """
        pointer = self.folder / LATEST
        if not pointer.exists() and not pointer.is_symlink():
            return None
        where = self.folder / read_pointer(pointer, _STEP)
        facts = read_json(where / "state.json", MAX_STATE_BYTES,
                          hint=f"remove {self.folder} and train without resume")
        self._check(facts, where)
        names = ["state.safetensors", f"rank-{self.rank}.safetensors"]
        verify_files(facts, where, names)
        if type(facts.get("seed")) is not int:  # fit reads it before RunState checks the rest
            raise field_error(where / "state.json", "seed", facts.get("seed", "missing"),
                              "an integer")
        try:
            tensors, local = (load_file(where / name) for name in names)
        except (OSError, ValueError, SafetensorError) as error:  # a corrupted file too
            raise ArtifactError(f"checkpoint {where} cannot be read: {error}",
                                hint=f"remove {self.folder} and train without resume") from error
        return Snapshot(tensors, local, facts, where)

    def _check(self, facts: Any, where: Path) -> None:
        if not isinstance(facts, dict):  # an edited or foreign state.json
            raise ArtifactError(f"checkpoint {where / 'state.json'} is not a JSON object",
                                hint=f"remove {self.folder} and train without resume")
        for key in IDENTITY:
            if facts.get(key) != self.identity[key]:
                hint = (f"run with {facts.get(key)} processes, as the checkpoint was written"
                        if key == "world_size" else
                        f"train without resume, or remove {self.folder}")
                raise ArtifactError(
                    f"checkpoint {where} was written for a different {key.replace('_', ' ')}: "
                    f"{_short(facts.get(key))} there, {_short(self.identity[key])} here",
                    hint=hint)


def check_folder(folder: Path) -> None:
    """Refuse a checkpoint folder that holds anything but embrec's checkpoints.

    A folder is embrec's when it holds the marker ``embrec-checkpoints.json``,
    or (written before the marker) only ``LATEST`` and ``step-*`` entries.

    Raises:
        ArtifactError: for a file, a path under a file, or a non-empty folder that is
            not embrec's.
    """
    if folder.is_symlink() and not folder.exists():
        raise ArtifactError(f"checkpoint folder {folder} is a link to nothing",
                            hint="pass another --out, or remove that link")
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(f"checkpoint folder {folder} is a file",
                            hint="pass another --out, or move that file away")
    latest = folder / LATEST
    if (latest.exists() or latest.is_symlink()) and (latest.is_symlink() or not latest.is_file()):
        raise ArtifactError(f"checkpoint pointer {latest} is not a regular file",
                            hint=f"remove {folder}, or pass another --out")
    above = file_above(folder)
    if above is not None:
        raise ArtifactError(f"checkpoint folder {folder} cannot be made: {above} is a file",
                            hint="pass another --out, or move that file away")
    if not folder.is_dir() or (folder / MARKER).is_file():
        return
    foreign = sorted(p.name for p in folder.iterdir() if not _OWN.fullmatch(p.name))
    if foreign:
        raise ArtifactError(
            f"checkpoint folder {folder} holds files that are not embrec's checkpoints "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}) and no {MARKER}",
            hint="pass another --out (checkpoints go to <out>.checkpoints), or move that "
                 "folder away")


@dataclass
class RunHooks:
    """What data-parallel training and checkpoints add to the loop (nothing in a plain run)."""

    parallel: DataParallel | None = None
    checkpoints: Checkpoints | None = None
    snapshot: Snapshot | None = None
    seed: int = 0

    @classmethod
    def open(cls, checkpoint: tuple[Path, bool] | None, model_config: ModelConfig,
             train: Ratings, config: TrainConfig, group: Group | None) -> RunHooks:
        """Open the run's checkpoints (and read the latest to resume from)."""
        if checkpoint is None:
            return cls()
        world_size = 1 if group is None else group.world_size
        identity = run_identity(model_config, train, config, world_size)
        checkpoints = Checkpoints(checkpoint[0], identity, config.checkpoint_every,
                                  0 if group is None else group.rank,
                                  None if group is None else group.barrier)
        return cls(None, checkpoints, checkpoints.load() if checkpoint[1] else None)


class RunState:
    """The loop's position and state: what a checkpoint saves and a resume puts back.

    ``engine`` holds the optimisers (``tables``, ``keras``, ``dense_optimizer``),
    ``schedule`` the learning-rate position (``done``, ``last``, ``total``), ``best``
    the best epoch so far (``rmse``, ``epoch``, ``params``); ``data`` is this rank's.
    """

    def __init__(self, model: EmbeddingModel, engine: Any, config: TrainConfig,
                 generator: torch.Generator, data: Columns, hooks: RunHooks, schedule: Any,
                 best: Any, objective: Any = None) -> None:
        self.model, self.engine, self.config, self.hooks = model, engine, config, hooks
        self.generator, self.predictions = generator, torch.empty_like(data.rating)
        # an objective's own generator (a ranking loss's negative sampler), saved beside ours
        self.sampler: torch.Generator | None = None if objective is None else objective.generator
        self.schedule, self.best = schedule, best
        self.masks = model.dropout_masks()
        self.history: list[dict[str, float]] = []
        self.epoch, self.step, self.stopped = 1, 0, False
        self.epoch_state = generator.get_state()
        self.pending: Tensor | None = None
        if hooks.snapshot is not None:
            self._restore(hooks.snapshot)

    def order(self, data: Columns) -> EpochOrder:
        """Draw this epoch's order (a resumed epoch redraws the one it was in)."""
        self.epoch_state, parallel = self.generator.get_state(), self.hooks.parallel
        size = self.config.batch_size
        order = epoch_order(data, self.generator, size) if parallel is None else \
            parallel.epoch(data, self.generator, size)
        if self.pending is not None:
            self.generator.set_state(self.pending)
            self.pending = None
        return order

    def errors(self, order: EpochOrder) -> dict[str, float]:
        """The epoch's train RMSE and MAE (over every rank's rows)."""
        if self.hooks.parallel is None:
            return error_metrics(self.predictions, order.batch.rating, "train")
        return self.hooks.parallel.errors(self.predictions, order.batch.rating, "train")

    def after_step(self, k: int, steps: int) -> None:
        """Write a mid-epoch checkpoint when one is due after step ``k`` of ``steps``."""
        checkpoints = self.hooks.checkpoints
        if checkpoints is not None and k + 1 < steps and checkpoints.due(self.schedule.done):
            self.save(self.epoch, k + 1, False)

    def save(self, epoch: int, step: int, stopped: bool) -> None:
        """Checkpoint: ``step`` steps of ``epoch`` done (0 at an epoch's end)."""
        self.epoch = epoch
        if self.hooks.checkpoints is None:
            return
        start = self.epoch_state if step else self.generator.get_state()
        masks = {f"masks.{k}": m.block for k, m in enumerate(self.masks) if m.block is not None}
        tensors = {**self._live(), **masks, "generator": self.generator.get_state(),
                   "epoch_generator": start}
        if self.sampler is not None:
            tensors["objective_generator"] = self.sampler.get_state()
        facts = {"epoch": epoch, "step": step, "steps": self.schedule.done, "stopped": stopped,
                 "lr": self.schedule.last, "history": self.history, "best_rmse": self.best.rmse,
                 "best_epoch": self.best.epoch, "seed": self.hooks.seed,
                 "masks": [[m.used, m.rows, m.width] for m in self.masks]}
        self.hooks.checkpoints.save(tensors, {"predictions": self.predictions}, facts)

    def _live(self) -> dict[str, Tensor]:
        """The state tensors a resume copies saved values into."""
        live = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.engine.keras is not None:  # Keras-dense tables: one set of moments for both
            live.update({f"tables.{k}": v for k, v in self.engine.keras.state_dict().items()})
        else:
            for side, table in zip(("user", "item"), self.engine.tables, strict=True):
                live.update({f"{side}.{k}": v for k, v in table.state_dict().items()})
        live.update({f"dense.{k}": v for k, v in self.engine.dense_optimizer.state_dict().items()})
        live.update({f"best.{i}": p for i, p in enumerate(self.best.params or [])})
        return live

    def _restore(self, snapshot: Snapshot) -> None:
        facts = snapshot.facts
        missing = [key for key in RESUMED if key not in facts]
        if missing:  # an edited state.json: say so, not KeyError
            folder = self.hooks.checkpoints.folder if self.hooks.checkpoints else "the checkpoint"
            raise ArtifactError(f"checkpoint in {folder} lacks {missing[0]!r}",
                                hint=f"remove {folder} and train without resume")
        file = snapshot.where / "state.json"
        check_facts(facts, file, epochs=self.config.epochs, masks=len(self.masks),
                    per_epoch=self.schedule.total // self.config.epochs)
        rank = self.hooks.checkpoints.rank if self.hooks.checkpoints else 0
        check_tensors(snapshot.tensors, snapshot.local, snapshot.where, rank,
                      self.generator.get_state(), self.predictions)
        _copy_into(self._live(), snapshot.tensors)
        for k, m in enumerate(self.masks):  # the pre-drawn blocks and their positions
            block = snapshot.tensors.get(f"masks.{k}")
            m.block = None if block is None else block.to(self.predictions)
            m.used, m.rows, m.width = facts["masks"][k]
        self.epoch, self.step, self.stopped = facts["epoch"], facts["step"], facts["stopped"]
        self.schedule.done, self.schedule.last = facts["steps"], facts["lr"]
        self.history, self.best.rmse = facts["history"], facts["best_rmse"]
        self.best.epoch = facts["best_epoch"]
        self.generator.set_state(snapshot.tensors["epoch_generator"])
        self.pending = snapshot.tensors["generator"] if self.step else None
        if self.sampler is not None and "objective_generator" in snapshot.tensors:
            self.sampler.set_state(snapshot.tensors["objective_generator"])
        self.predictions.copy_(snapshot.local["predictions"])


def run_identity(model_config: ModelConfig, train: Ratings, config: TrainConfig,
                 world_size: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: data, model, training settings, world size.

    Settings that do not change the result (progress bar, threads, device,
    checkpoint interval) are left out.
    """
    train_facts = {k: v for k, v in config.to_dict().items() if k not in RUN_ONLY}
    return {"fingerprint": train.fingerprint(), "train": train_facts,
            "model": {"name": model_config.name, **model_config.to_dict()},
            "world_size": world_size}


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _write_tensors(tensors: dict[str, Tensor], path: Path) -> None:
    """Save copies (safetensors refuses views sharing storage) and flush them to disk."""
    save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()},
              str(path))
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _copy_into(live: dict[str, Tensor], saved: dict[str, Tensor]) -> None:
    """Copy every saved tensor into the live tensor of the same name (refusing a missing one
    or one of another shape)."""
    with torch.no_grad():
        for name, tensor in live.items():
            value = saved.get(name)
            if value is None or value.shape != tensor.shape:
                raise ArtifactError(f"checkpoint tensor {name!r} is missing or has another shape",
                                    hint="train without resume, or remove the checkpoints")
            tensor.copy_(value)
