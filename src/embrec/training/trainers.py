"""The one interface ``fit`` trains through, and the trainers that implement it.

``fit`` draws each epoch's order, validates, checkpoints and stops early; a
:class:`Trainer` trains one epoch of that order, from ``run.step`` on, writing
each rating's prediction into ``run.predictions`` and advancing
``run.schedule``. :func:`pick_trainer` chooses one for the model, loss, device
and world size:

- :class:`KernelTrainer`: compiled per-rating updates (:mod:`embrec.kernels`) for
  models that offer a rating kernel, trained on the CPU in one process with
  Hogwild threads. Biased MF's 9M-rating epoch takes seconds instead of minutes
  (``benchmarks/results/kernels.md``).
- :class:`~embrec.training.fused.FusedKerasMLP`: the MovieLens notebook's network
  under Keras' dense Adam.
- :class:`StepTrainer`: mini-batch steps through torch (the autograd reference or
  a model's hand-written step), on any device, for every loss and under
  ``torchrun``.

``TrainConfig(step_path="autograd")`` always takes the :class:`StepTrainer` with
autograd: the reference every faster trainer is tested against.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from embrec.config import TrainConfig
from embrec.kernels.hogwild import train_range
from embrec.kernels.order import blocked, grid_size
from embrec.models.base import EmbeddingModel
from embrec.training.batches import Columns
from embrec.training.distributed import EpochOrder
from embrec.training.fused import FusedKerasMLP
from embrec.training.progress import report
from embrec.training.step import Objective, RatingLoss, Step, make_step

__all__ = ["KernelTrainer", "StepTrainer", "Trainer", "pick_trainer"]

ROW_CODES = {"sgd": 0, "adagrad": 1, "rowwise-adagrad": 2, "adam": 3, "adamw": 3}
DENSE_CODES = {"sgd": 0, "adagrad": 1, "rowwise-adagrad": 1, "adam": 3, "adamw": 3}
CHUNK = 1 << 16
"""Ratings a kernel call trains before the progress bar moves (and threads take the next)."""
THREADED_FROM = 1_000_000
"""Fits of fewer ratings train on one thread by default (see :meth:`KernelTrainer.build`)."""


class Trainer(Protocol):
    """Trains one epoch of a fit.

    Attributes:
        path: recorded as ``metadata["step_path"]``.
    """

    path: str

    def epoch(self, order: EpochOrder, run: Any, bar: Any) -> None:
        """Train ``order`` from step ``run.step`` on; leave ``run.step`` at 0."""
        ...


def pick_trainer(model: EmbeddingModel, engine: Any, config: TrainConfig,
                 objective: Objective | None, parallel: Any, n: int) -> Trainer:
    """Return the fastest trainer that trains this fit as the reference would (``n`` ratings)."""
    kernel = KernelTrainer.build(model, engine, config, objective, parallel, n)
    if kernel is not None:
        return kernel
    step, path = make_step(model, config, objective)
    fused = FusedKerasMLP.build(model, engine, config, objective or RatingLoss(), path, parallel)
    return fused if fused is not None else StepTrainer(step, path, engine)


class StepTrainer:
    """Mini-batch steps through torch: a step's row gradients, then the engine's update."""

    def __init__(self, step: Step, path: str, engine: Any) -> None:
        self.step, self.path, self.engine = step, path, engine

    def epoch(self, order: EpochOrder, run: Any, bar: Any) -> None:
        """Walk one shuffled epoch a global batch at a time: step, then update the rows used."""
        parallel, engine = run.hooks.parallel, self.engine
        batch, starts = order.batch, [0, *itertools.accumulate(order.local)]
        slices = [torch.split(c, order.local) for c in (*batch, run.predictions)]
        for k in range(run.step, len(order.local)):
            part = Columns(slices[0][k], slices[1][k], slices[2][k])
            result = self.step(part) if parallel is None else \
                parallel.step(self.step, part, order, k, starts[k], engine.dense.grad)
            slices[3][k].copy_(result.prediction)
            engine.update(result.user_index, result.user_grad, result.item_index,
                          result.item_grad, run.schedule.next(), run.schedule.done)
            run.after_step(k, len(order.local))
            if bar is not None and k % 50 == 49:
                report(bar, run.predictions, batch.rating, starts[k + 1], order.local[k])
        run.step = 0


class KernelTrainer:
    """Per-rating updates in a compiled kernel, on the engine's buffers, with Hogwild threads.

    It trains ``batch_size=1``: every rating is one optimiser step, exactly as the
    torch step at batch size 1 takes it (the contract tests prove the weights
    equal), at the speed of a C loop. With one thread the result is reproducible
    for a seed; with several, threads update shared rows without waiting
    (:mod:`embrec.kernels.hogwild`), so results vary slightly between runs.
    """

    path = "kernel"

    def __init__(self, kernel: Any, bounds: tuple[float, float] | None, engine: Any,
                 config: TrainConfig, threads: int) -> None:
        self.kernel, self.config, self.threads = kernel, config, threads
        self.rows = [_array(getattr(table, "buffer", table.weight)) for table in engine.tables]
        self.blocks = grid_size(self.rows[0].shape[0], self.rows[1].shape[0],
                                self.rows[0].shape[1] * self.rows[0].itemsize)
        optimizer = engine.dense_optimizer
        self.shared = [_array(engine.dense.data), _array(optimizer.first),
                       _array(optimizer.second)]
        self.kinds = np.array([ROW_CODES[config.optimizer], DENSE_CODES[config.optimizer]],
                              dtype=np.int64)
        row_epsilon = config.adam_epsilon if config.optimizer.startswith("adam") else 1e-10
        low, width = bounds if bounds is not None else (0.0, 1.0)
        self.settings = np.array([row_epsilon, optimizer.epsilon, config.weight_decay,
                                  config.bias_weight_decay, config.momentum,
                                  float(bounds is not None), low, width])

    @classmethod
    def build(cls, model: EmbeddingModel, engine: Any, config: TrainConfig,
              objective: Objective | None, parallel: Any, n: int) -> KernelTrainer | None:
        """Return the kernel trainer, or ``None`` where this fit is not one a kernel trains.

        A kernel trains the rating loss at ``batch_size=1`` on CPU float32 tables with
        row-sparse updates, in one process, for a model that offers one, unless
        ``step_path="autograd"``. Threads: ``num_threads``, else one under
        :data:`THREADED_FROM` ratings (reproducible; fast enough) and every core above.
        """
        offer = getattr(model, "rating_kernel", None)
        if offer is None or config.batch_size != 1 or config.step_path == "autograd" \
                or parallel is not None or not isinstance(objective or RatingLoss(), RatingLoss) \
                or not engine.tables or engine.dense.data.device.type != "cpu" \
                or any(t.weight.dtype != torch.float32 for t in engine.tables):
            return None
        kernel, bounds = offer()
        cores = len(os.sched_getaffinity(0))
        threads = config.num_threads or (1 if n < THREADED_FROM else cores)
        return cls(kernel, bounds, engine, config, threads)

    def epoch(self, order: EpochOrder, run: Any, bar: Any) -> None:
        """Train the epoch's ratings from step ``run.step`` on, a segment per checkpoint.

        On large tables the ratings are first regrouped into LIBMF's grid
        (:mod:`embrec.kernels.order`, seeded by the run's seed and the epoch);
        predictions are written back to the epoch's own order.
        """
        user, item, rating = (_array(c) for c in order.batch)
        positions, predictions = None, _array(run.predictions)
        if self.blocks > 1:
            rank = np.random.default_rng([run.hooks.seed, run.epoch]).permutation(self.blocks ** 2)
            positions = blocked(user, item, self.rows[0].shape[0], self.rows[1].shape[0],
                                self.blocks, rank)
            user, item, rating = user[positions], item[positions], rating[positions]
            predictions = np.empty_like(rating)
        n, schedule, shown = len(rating), run.schedule, torch.from_numpy(predictions)
        every = run.hooks.checkpoints.every if run.hooks.checkpoints is not None else None
        first = run.step
        while first < n:
            last = n if every is None else min(n, first + every - schedule.done % every)
            base = schedule.done - first  # steps taken before this epoch's position 0

            def train(s: int, e: int, shared: list[np.ndarray], base: int = base) -> None:
                self.kernel(user, item, rating, s, e, schedule.rates(base + s, base + e),
                            *self.rows, *shared, self.kinds, self.settings, base, predictions)

            def moved(rows: int, start: int = first) -> None:
                if bar is not None:
                    report(bar, shown, torch.from_numpy(rating), start + rows, CHUNK // 50)

            train_range(train, first, last, CHUNK, self.threads, self.shared, moved)
            if positions is not None:  # back to the epoch's order, before a checkpoint saves it
                _array(run.predictions)[positions[first:last]] = predictions[first:last]
            schedule.advance(last - first)
            run.after_step(last - 1, n)
            first = last
        run.step = 0


def _array(tensor: Tensor) -> np.ndarray:
    """The CPU tensor's memory as a NumPy array (a view: writes go to the tensor)."""
    return tensor.detach().numpy()
