"""fit(): the one training loop. Seed, shuffle, step, update the rows used, validate, stop early.

Read :func:`_epochs` top to bottom: each epoch shuffles the device-resident
ratings once, walks them in slices, and for each slice takes one step
(:mod:`embrec.training.step`: predictions, the gradient of every embedding row
the slice read, dense gradients in ``.grad``), then updates only those rows
(:mod:`embrec.training.sparse`) and the dense layers (:mod:`embrec.training.optim`).
A step's cost therefore grows with the batch, not with the number of users and
items. Nothing in the loop waits for the device: predictions are gathered into
one buffer and turned into train RMSE/MAE once the epoch is over, which is also
when non-finite values are checked. The MovieLens notebook's network under Keras'
dense Adam takes the same steps through :mod:`embrec.training.fused`, which
skips the plumbing between step and optimiser (bitwise the same weights).

``fit`` leaves no process-wide state changed: torch's thread count and the
flush-to-zero mode are set once (never inside the loop) and restored as they
were found, the global random generator's state is restored after the model is
initialised, and shuffling and dropout draw from ``fit``'s own seeded generator.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError, TrainingError, TrainingWarning
from embrec.models.base import EmbeddingModel, ModelConfig
from embrec.models.mlp import Tower
from embrec.recommender import Recommender
from embrec.training import collector
from embrec.training.batches import Columns, columns, known_rows, validation_rows
from embrec.training.checkpoint import RunHooks, RunState
from embrec.training.diagnostics import diagnose, error_metrics
from embrec.training.distributed import DataParallel, Group, join, shard_columns
from embrec.training.engine import Engine
from embrec.training.losses import objective_for
from embrec.training.optim import Schedule
from embrec.training.progress import close_bar, progress_bar
from embrec.training.step import Objective
from embrec.training.trainers import pick_trainer

__all__ = ["fit", "resolve_device", "threads_for"]

log = logging.getLogger(__name__)

SMALL_BATCH = 32_768
"""Below this batch size ``num_threads=None`` trains on one thread (see TrainConfig)."""


def fit(model_config: ModelConfig, train: Ratings, train_config: TrainConfig | None = None, *,
        validation: Ratings | None = None, metadata: dict[str, Any] | None = None,
        objective: Objective | None = None, checkpoint_dir: str | Path | None = None,
        resume: bool = False) -> Recommender:
    """Train the model ``model_config`` describes on ``train``.

    Under ``torchrun`` (several processes) this is data-parallel by itself:
    each rank trains on its shard of the rows, ``batch_size`` is the global
    batch, and the result equals one process's (see
    :mod:`embrec.training.distributed`).

    Args:
        model_config: the model to build (``embrec.models.MODELS`` lists them).
        train: the training ratings.
        train_config: how to train; when omitted, the model's default training
            (``embrec.presets.DEFAULT_TRAINING``, what ``embrec train --model``
            uses too).
        validation: held-out ratings to watch (raw ids are mapped through
            ``train``'s indexes; pairs with unseen ids are left out and counted).
            Overrides ``train_config.validation``.
        metadata: extra facts to record in the recommender's ``metadata``.
        objective: the training loss (:mod:`embrec.training.step`); when omitted,
            the one ``train_config.loss`` names (:mod:`embrec.training.losses`).
            An objective with ``prepare(data, n_items, seed) -> data`` is bound to
            the training rows first (popularity counts, its own seeded generator);
            its ``scores`` attribute (``"rating"`` or ``"ranking"``) is recorded
            as ``metadata["scores"]``.
        checkpoint_dir: write a checkpoint here at the end of every epoch (and
            every ``train_config.checkpoint_every`` steps); see
            :mod:`embrec.training.checkpoint`.
        resume: continue from the latest checkpoint in ``checkpoint_dir``
            (from the start when there is none).

    Returns:
        The trained recommender, with per-epoch ``history`` and ``metadata``
        holding the seed, device, threads, step path, fit seconds, world size,
        rows per rank and ``diagnostics``.

    Raises:
        ConfigError: if ``train`` is empty.
        ArtifactError: if the checkpoint to resume is unreadable or from another
            data set, model, training config or world size.
        DataError: if the ranks of a distributed run were given different data.
        TrainingError: if the loss became non-finite and no earlier weights were
            kept to return (early stopping keeps them).
    """
    if getattr(model_config, "closed_form", False):
        from embrec.training.closed_form import fit_closed_form
        return fit_closed_form(model_config, train, train_config, metadata=metadata)
    config = train_config or _default_training(model_config)
    group = join(resolve_device(config.device))
    try:
        return _fit(model_config, train, config, group, validation, metadata or {}, objective,
                    None if checkpoint_dir is None else (Path(checkpoint_dir), resume))
    finally:
        if group is not None:
            group.leave()


def _fit(model_config: ModelConfig, train: Ratings, config: TrainConfig, group: Group | None,
         validation: Ratings | None, metadata: dict[str, Any], objective: Objective | None,
         checkpoint: tuple[Path, bool] | None) -> Recommender:
    device = group.device if group is not None else resolve_device(config.device)
    hooks = RunHooks.open(checkpoint, model_config, train, config, group)
    seed = hooks.seed = _seed(config, hooks, group)
    facts: dict[str, Any] = {"seed": seed, "device": str(device), **metadata}
    started = time.perf_counter()
    with _process_state(config, device) as threads:
        if device.type == "cpu":
            facts["threads"] = threads
        fit_rows, held, facts["validation_unknown"] = _validation(train, validation, config, seed)
        data, shard = shard_columns(train, fit_rows, device, group)
        mean = float(data.rating.mean()) if len(data) else float(np.mean(train.scale))
        model = _build(model_config, train, mean if group is None else group.mean(data.rating),
                       seed, device)
        if group is not None and shard is not None:
            hooks.parallel = DataParallel(group, shard, model)
            facts["rows_per_rank"] = [r[0] for r in group.gather_ints([len(shard)])]
        facts["world_size"] = 1 if group is None else group.world_size
        facts.setdefault("rows_per_rank", [len(data)])
        objective = objective or objective_for(config)
        data = _prepare(objective, data, train.n_items, seed, group)
        facts["scores"] = getattr(objective, "scores", "rating")
        generator = torch.Generator(device=device).manual_seed(seed)
        history, facts["step_path"] = _epochs(model, data, held, config, generator, train.scale,
                                              objective, hooks)
        facts["fit_seconds"] = time.perf_counter() - started
        facts["diagnostics"] = diagnose(model, data, held, history, train.scale,
                                        ratings=facts["scores"] == "rating") \
            if group is None or group.rank == 0 else []
    return Recommender.from_training(model, model_config, config, train, history=history,
                                     metadata=facts)


def _seed(config: TrainConfig, hooks: RunHooks, group: Group | None) -> int:
    """The run's seed: the checkpoint's, the config's, or a random one (rank 0's for all)."""
    if hooks.snapshot is not None:
        return int(hooks.snapshot.facts["seed"])
    seed = config.seed if config.seed is not None else int(np.random.default_rng().integers(2**62))
    return seed if group is None else group.broadcast_int(seed)


def _default_training(model_config: ModelConfig) -> TrainConfig:
    from embrec.presets import default_training  # presets import fit lazily too

    return default_training(model_config)


def _prepare(objective: Objective, data: Columns, n_items: int, seed: int,
             group: Group | None) -> Columns:
    """Bind ``objective`` to the training rows when it asks to be; return the rows to train on."""
    prepare = getattr(objective, "prepare", None)
    if prepare is not None and group is not None:
        raise ConfigError("loss", "ranking", "trains in one process for now",
                          hint="train ranking losses without torchrun, or use loss='rating'")
    rows: Columns = data if prepare is None else prepare(data, n_items, seed)
    return rows


def _build(model_config: ModelConfig, train: Ratings, mean: float, seed: int,
           device: torch.device) -> EmbeddingModel:
    """Initialise the model from ``seed`` without leaving torch's global generator changed."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = model_config.build(train.n_users, train.n_items, scale=train.scale, mean=mean)
    if not isinstance(model, EmbeddingModel):
        raise TypeError(f"fit trains embedding models; {type(model).__name__} is not one")
    return model.to(device)


def resolve_device(name: str) -> torch.device:
    """Return the device for ``name``; ``auto`` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def threads_for(config: TrainConfig) -> int:
    """Return the CPU threads ``fit`` uses for ``config`` (see ``TrainConfig.num_threads``)."""
    return config.num_threads or (1 if config.batch_size < SMALL_BATCH else torch.get_num_threads())


@contextlib.contextmanager
def _process_state(config: TrainConfig, device: torch.device) -> Iterator[int]:
    """Set torch's CPU threads, flush-to-zero and Python's cycle collector for ``fit``; restore all.

    Yields the thread count. Adam's moments of rarely used embedding rows decay
    geometrically into denormal floats, which x86 CPUs process ~100x slower;
    Keras flushes them too (TensorFlow sets flush-to-zero in its CPU threads).
    The cycle collector is paused (:mod:`embrec.training.collector`).
    """
    before, flushing = torch.get_num_threads(), _flushes_denormals()
    threads = threads_for(config) if device.type == "cpu" else before
    try:
        if threads != before:
            torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        with collector.paused():
            yield threads
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
        torch.set_flush_denormal(flushing)


def _flushes_denormals() -> bool:
    """Whether the CPU currently flushes denormal floats to zero (torch has no getter)."""
    return float(torch.tensor([1e-39], dtype=torch.float32).mul(1.0)) == 0.0


def _validation(train: Ratings, validation: Ratings | None, config: TrainConfig,
                seed: int) -> tuple[np.ndarray | None, Columns | None, int]:
    """Return the fitted rows of ``train``, the validation columns and the unknown count."""
    device = resolve_device(config.device)
    if validation is not None:
        known, dropped = known_rows(validation, train)
        if len(known) == 0:
            log.warning("no validation rating has a user and an item seen in training; "
                        "training without validation")
            return None, None, dropped
        return None, columns(known, None, device), dropped
    fit_rows, held = validation_rows(len(train), config.validation, config.validation_mode,
                                     np.random.default_rng(seed))
    if held is not None and len(held) == 0:
        log.warning("validation=%s of %d ratings is no rating; training without validation",
                    config.validation, len(train))
        return None, None, 0
    return fit_rows, None if held is None else columns(train, held, device), 0


def _epochs(model: EmbeddingModel, data: Columns, held: Columns | None, config: TrainConfig,
            generator: torch.Generator, scale: tuple[float, float], objective: Objective | None,
            hooks: RunHooks) -> tuple[list[dict[str, float]], str]:
    """The training loop: returns one history record per epoch and the step path taken."""
    for module in model.modules():
        if isinstance(module, Tower):
            module.reset_masks(generator)
    engine = Engine(model, config)
    total = len(data) if hooks.parallel is None else hooks.parallel.shard.total
    trainer = pick_trainer(model, engine, config, objective, hooks.parallel, total)
    run = RunState(model, engine, config, generator, data, hooks, Schedule(config, total),
                   _Best(model, config.early_stopping is not None), objective)
    for epoch in range(run.epoch, 0 if run.stopped else config.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = run.order(data)
        bar = progress_bar(config, epoch, len(data), hooks)
        trainer.epoch(order, run, bar)
        record = {"epoch": float(epoch), "lr": run.schedule.last, **run.errors(order)}
        del order  # free this epoch's shuffled copy before the next is made
        if not (math.isfinite(record["train_rmse"]) and _finite([engine.dense.data])):
            close_bar(bar)
            _diverged(epoch, record["train_rmse"], config, run.best)
            break
        if held is not None:
            record.update(_validate(model, held, scale))
        record["seconds"] = time.perf_counter() - started
        run.history.append(record)
        close_bar(bar, record)
        stop = run.best.update(record, model, epoch, config.early_stopping)
        run.save(epoch + 1, 0, stop)
        if stop:
            break
    run.best.restore(model)
    engine.release()
    if not _finite(list(model.parameters())):
        raise TrainingError("training ended with non-finite weights",
                            hint=f"lower learning_rate={config.learning_rate}")
    model.eval()
    return run.history, trainer.path


def _finite(tensors: list[Tensor]) -> bool:
    """Whether every value is finite: one sum per tensor (NaN and inf survive a sum).

    Each epoch checks the dense layers only; the embedding tables are checked once,
    after the last epoch. A table's rows change only through updates driven by
    predictions, and a non-finite prediction already fails the epoch's train RMSE,
    so a per-epoch pass over every row (O(catalogue) each epoch) would find
    nothing the RMSE missed.
    """
    return all(math.isfinite(float(t.detach().sum())) for t in tensors)


class _Best:
    """The best validation RMSE so far, its epoch and (with early stopping) a copy of its weights.

    Without early stopping no copy is kept: the one full copy of the parameters
    exists only when it can be used.
    """

    def __init__(self, model: EmbeddingModel, keep: bool) -> None:
        self.rmse, self.epoch = math.inf, 0
        self.params = [p.detach().clone() for p in model.parameters()] if keep else None

    def update(self, record: dict[str, float], model: EmbeddingModel, epoch: int,
               patience: int | None) -> bool:
        """Record ``epoch``; return whether early stopping says to stop."""
        rmse = record.get("validation_rmse", math.inf)
        if rmse < self.rmse:
            self.rmse, self.epoch = rmse, epoch
            if self.params is not None:
                for kept, p in zip(self.params, model.parameters(), strict=True):
                    kept.copy_(p.detach())
        if patience is None or not math.isfinite(self.rmse) or epoch - self.epoch < patience:
            return False
        log.info("early stopping after epoch %d; best epoch %d", epoch, self.epoch)
        return True

    def restore(self, model: EmbeddingModel) -> None:
        """Put the best weights back, when a copy was kept and some epoch validated."""
        if self.params is None or self.epoch == 0:
            return
        with torch.no_grad():
            for kept, p in zip(self.params, model.parameters(), strict=True):
                p.copy_(kept)


def _diverged(epoch: int, rmse: float, config: TrainConfig, best: _Best) -> None:
    """Warn (early stopping kept good weights) or raise: the loss became non-finite."""
    hint = (f"lower learning_rate={config.learning_rate} or use a schedule such as 'onecycle'")
    message = f"training diverged in epoch {epoch}: the loss became {rmse ** 2} (not finite)"
    if best.params is None or best.epoch == 0:
        raise TrainingError(message, hint=hint)
    warnings.warn(f"{message}; kept the weights of the best epoch ({best.epoch})\n  hint: {hint}",
                  TrainingWarning, stacklevel=4)


def _validate(model: EmbeddingModel, held: Columns, scale: tuple[float, float],
              chunk: int = 1 << 16) -> dict[str, float]:
    """Validation RMSE and MAE of predictions clipped to the scale, as ``predict`` gives."""
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(held.user[s:s + chunk].long(), held.item[s:s + chunk].long())
                         for s in range(0, len(held), chunk)])
    return error_metrics(out.clamp_(scale[0], scale[1]), held.rating, "validation")


