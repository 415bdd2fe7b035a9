"""fit(): the one training loop. Seed, shuffle, train an epoch, validate, checkpoint, stop early.

Read :func:`_epochs` top to bottom: each epoch hands a shuffled order to the run's
trainer (:mod:`embrec.training.trainers`), which writes every rating's prediction
into one buffer; the epoch's train RMSE/MAE come from it once the epoch is over,
when non-finite values are checked too. Then the validation rows are scored, the
best epoch kept (:mod:`embrec.training.watch`) and a checkpoint written
(:mod:`embrec.training.checkpoint`). ``fit`` leaves no process-wide state changed
(:mod:`embrec.training.process`): shuffling and dropout draw from its own seeded
generator.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.distributed.exchange import DataParallel, Group, join, shard_columns
from embrec.errors import ConfigError, TrainingError
from embrec.models.base import EmbeddingModel, ModelConfig
from embrec.models.registry import default_training
from embrec.recommender import Recommender
from embrec.training.batches import Columns
from embrec.training.checkpoint import RunHooks, RunState
from embrec.training.closed_form import fit_closed_form, solves_itself
from embrec.training.diagnostics import diagnose
from embrec.training.losses import Objective, objective_for
from embrec.training.optim import Engine, Schedule
from embrec.training.process import process_state, training_device
from embrec.training.progress import LossMeter, close_bar, metered, progress_bar
from embrec.training.trainers import pick_trainer
from embrec.training.watch import Best, diverged, finite, validate, validation_columns

__all__ = ["fit"]


def fit(model_config: ModelConfig, train: Ratings, train_config: TrainConfig | None = None, *,
        validation: Ratings | None = None, metadata: dict[str, Any] | None = None,
        objective: Objective | None = None, checkpoint_dir: str | Path | None = None,
        resume: bool = False) -> Recommender:
    """Train the model ``model_config`` describes on ``train``.

    Under ``torchrun`` (several processes) this is data-parallel by itself:
    each rank trains on its shard of the rows, ``batch_size`` is the global
    batch, and the result equals one process's (see
    :mod:`embrec.distributed.exchange`).

    Args:
        model_config: the model to build (``embrec.models.MODELS`` lists them).
        train: the training ratings.
        train_config: how to train; when omitted, the model's default training
            (``embrec.models.DEFAULT_TRAINING``, what ``embrec train --model``
            uses too).
        validation: held-out ratings to watch (raw ids are mapped through
            ``train``'s indexes; pairs with unseen ids are left out and counted).
            Overrides ``train_config.validation``.
        metadata: extra facts to record in the recommender's ``metadata``.
        objective: the training loss (:mod:`embrec.training.step`); when omitted,
            the one ``train_config.loss`` names (:mod:`embrec.training.losses`).
            It is bound to the training rows first (``prepare``: popularity counts,
            its own seeded generator); its ``scores`` (``"rating"`` or ``"ranking"``)
            is recorded as ``metadata["scores"]``.
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
    if len(train) == 0:  # else every path reports a NaN loss as a divergence
        raise ConfigError("train", "0 ratings", "has no rating to train on",
                          hint="check the data's filters and split")
    if solves_itself(model_config):
        return fit_closed_form(model_config, train, train_config, metadata=metadata, fit=fit)
    config = train_config or default_training(model_config)
    group = join(training_device(config))
    try:
        return _fit(model_config, train, config, group, validation, metadata or {}, objective,
                    None if checkpoint_dir is None else (Path(checkpoint_dir), resume))
    finally:
        if group is not None:
            group.leave()


def _fit(model_config: ModelConfig, train: Ratings, config: TrainConfig, group: Group | None,
         validation: Ratings | None, metadata: dict[str, Any], objective: Objective | None,
         checkpoint: tuple[Path, bool] | None) -> Recommender:
    device = group.device if group is not None else training_device(config)
    if group is not None and config.batch_size == 1:
        raise ConfigError("batch_size", 1, "trains per rating in one process (the compiled "
                          "kernel); under torchrun every rating would be a collective step",
                          hint="train in one process (the kernel uses every core), or pass "
                               "--batch-size 2048 to torchrun's ranks")
    hooks = RunHooks.open(checkpoint, model_config, train, config, group)
    seed = hooks.seed = _seed(config, hooks, group)
    facts: dict[str, Any] = {"seed": seed, "device": str(device), **metadata}
    started = time.perf_counter()
    with process_state(config, device) as threads:
        if device.type == "cpu":
            facts["threads"] = threads
        fit_rows, held, facts["validation_unknown"] = validation_columns(train, validation,
                                                                         config, seed)
        data, shard = shard_columns(train, fit_rows, device, group)
        mean = float(data.rating.mean()) if len(data) else float(np.mean(train.scale))
        model = _build(model_config, train, mean if group is None else group.mean(data.rating),
                       seed, device)
        if group is not None and shard is not None:
            hooks.parallel = DataParallel(group, shard, model)
            facts["rows_per_rank"] = [r[0] for r in group.gather_ints([len(shard)])]
        facts["world_size"] = 1 if group is None else group.world_size
        facts.setdefault("rows_per_rank", [len(data)])
        objective = metered(objective or objective_for(config), config.positive_threshold)
        data = _prepare(objective, data, train.n_items, seed, group)
        facts["scores"] = objective.scores
        generator = torch.Generator(device=device).manual_seed(seed)
        history, facts["step_path"], kernel_threads = _epochs(
            model, data, held, config, generator, train.scale, objective, hooks)
        if kernel_threads is not None:  # the trainer's own threads, not torch's
            facts["threads"] = kernel_threads
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


def _prepare(objective: Objective, data: Columns, n_items: int, seed: int,
             group: Group | None) -> Columns:
    """Bind ``objective`` to the training rows; return the rows to train on."""
    rows = objective.prepare(data, n_items, seed)
    if objective.generator is not None and group is not None:  # ranks would draw apart
        raise ConfigError("loss", "ranking", "trains in one process for now",
                          hint="train ranking losses without torchrun, or use loss='rating'")
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


def _epochs(model: EmbeddingModel, data: Columns, held: Columns | None, config: TrainConfig,
            generator: torch.Generator, scale: tuple[float, float], objective: Objective,
            hooks: RunHooks) -> tuple[list[dict[str, float]], str, int | None]:
    """The training loop: one history record per epoch, the trainer's path and its threads."""
    model.reset_masks(generator)
    engine = Engine(model, config)
    total = len(data) if hooks.parallel is None else hooks.parallel.shard.total
    trainer = pick_trainer(model, engine, config, objective, hooks.parallel, total)
    run = RunState(model, engine, config, generator, data, hooks, Schedule(config, total),
                   Best(model, config.early_stopping is not None), objective)
    for epoch in range(run.epoch, 0 if run.stopped else config.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = trainer.order(run, data)
        bar = progress_bar(config, epoch, len(data), hooks)
        trainer.epoch(order, run, bar)
        record = {"epoch": float(epoch), "lr": run.schedule.last, **run.errors(order)}
        if isinstance(objective, LossMeter):
            record = objective.record(record, model, held)
        del order  # free this epoch's shuffled copy before the next is made
        if not (math.isfinite(record.get("train_rmse", record.get("train_loss", 0.0)))
                and finite([engine.dense.data])):
            close_bar(bar)
            diverged(epoch, record.get("train_rmse", math.nan), config, run.best)
            break
        if held is not None:
            record.update({} if isinstance(objective, LossMeter) else validate(model, held, scale))
        record["seconds"] = time.perf_counter() - started
        run.history.append(record)
        close_bar(bar, record)
        stop = run.best.update(record, model, epoch, config.early_stopping)
        run.save(epoch + 1, 0, stop)
        if stop:
            break
    run.best.restore(model)
    engine.release()
    if not finite(list(model.parameters())):
        raise TrainingError("training ended with non-finite weights",
                            hint=f"lower learning_rate={config.learning_rate}")
    model.eval()
    return run.history, trainer.path, trainer.threads
