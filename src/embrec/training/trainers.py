"""The one interface ``fit`` trains through, and the trainers that implement it.

``fit`` draws each epoch's order, validates, checkpoints and stops early; a
:class:`Trainer` trains one epoch of that order, from ``run.step`` on, writing
each rating's prediction into ``run.predictions`` and advancing
``run.schedule``. :func:`pick_trainer` chooses one for the model, loss, device
and world size:

- :class:`KernelTrainer`: compiled per-rating updates (:mod:`embrec.kernels`) for
  models that offer a rating kernel, trained on the CPU in one process with
  Hogwild threads (speed against LIBMF, LensKit and Surprise:
  ``benchmarks/results/kernels.md``).
- :class:`~embrec.training.fused.FusedKerasMLP`: the MovieLens notebook's network
  under Keras' dense Adam.
- :class:`StepTrainer`: mini-batch steps through torch (the autograd reference or
  a model's hand-written step), on any device, for every loss and under
  ``torchrun``.

``TrainConfig(step_path="autograd")`` always takes the :class:`StepTrainer` with
autograd: the reference every faster trainer is tested against.

The kernel trainer's every rating is one optimiser step on the engine's own
``[weights | state]`` buffers, equal to the torch step at batch size 1, so checkpoints,
validation and early stopping work as for any trainer. Tables too large for the cache
take LIBMF's grid (:mod:`embrec.kernels.order`): ratings grouped once by cell of user
and item ranges, each epoch visiting the cells in its own seeded order. One thread
reproduces a seed bitwise; several update shared rows without waiting
(:mod:`embrec.kernels.hogwild`), so results vary slightly between runs.
"""

from __future__ import annotations

import itertools
import logging
import os
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from embrec.config import TrainConfig
from embrec.distributed.exchange import EpochOrder
from embrec.kernels.hogwild import train_range
from embrec.kernels.order import arrange, grid_size
from embrec.models.base import EmbeddingModel, KernelModel
from embrec.training.batches import Columns
from embrec.training.fused import FusedKerasMLP
from embrec.training.losses import Objective, RatingLoss
from embrec.training.progress import report
from embrec.training.step import Step, make_step

__all__ = ["CHUNK", "THREADED_FROM", "KernelTrainer", "StepTrainer", "Trainer", "pick_trainer"]


class Trainer(Protocol):
    """Trains one epoch of a fit.

    Attributes:
        path: recorded as ``metadata["step_path"]``.
        threads: CPU threads the trainer runs itself (``None``: torch's, set by ``fit``).
    """

    path: str
    threads: int | None

    def order(self, run: Any, data: Columns) -> EpochOrder:
        """The order the epoch about to start trains ``data`` in (``run.order`` shuffles)."""
        ...

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

    threads: int | None = None

    def __init__(self, step: Step, path: str, engine: Any) -> None:
        self.step, self.path, self.engine = step, path, engine

    def order(self, run: Any, data: Columns) -> EpochOrder:
        """The run's shuffle of ``data`` (cut into steps)."""
        order: EpochOrder = run.order(data)
        return order

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


log = logging.getLogger(__name__)

ROW_CODES = {"sgd": 0, "adagrad": 1, "rowwise-adagrad": 2, "adam": 3, "adamw": 3}
DENSE_CODES = {"sgd": 0, "adagrad": 1, "rowwise-adagrad": 1, "adam": 3, "adamw": 3}
CHUNK = 1 << 16
"""Ratings a kernel call trains before the progress bar moves (and threads take the next)."""
THREADED_FROM = 1_000_000
"""Fits of fewer ratings train on one thread by default (see :meth:`KernelTrainer.build`)."""


class KernelTrainer:
    """Per-rating updates in a compiled kernel, on the engine's buffers, with Hogwild threads."""

    path = "kernel"
    threads: int | None

    def __init__(self, kernel: Any, bounds: tuple[float, float] | None, engine: Any,
                 config: TrainConfig, threads: int) -> None:
        self.kernel, self.config, self.threads = kernel, config, threads
        self.rows = [_array(table.buffer) for table in engine.tables]
        self.blocks = grid_size(self.rows[0].shape[0], self.rows[1].shape[0],
                                self.rows[0].shape[1] * self.rows[0].itemsize)
        self.grid: tuple[Columns, np.ndarray] | None = None  # cell-sorted rows, cell starts
        optimizer = engine.dense_optimizer
        self.shared = [_array(engine.dense.data), _array(optimizer.first),
                       _array(optimizer.second)]
        self.kinds = np.array([ROW_CODES[config.optimizer], DENSE_CODES[config.optimizer]],
                              dtype=np.int64)
        low, width = bounds if bounds is not None else (0.0, 1.0)  # rows share the dense epsilon
        self.settings = np.array([optimizer.epsilon, optimizer.epsilon, config.weight_decay,
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
        The kernels compute in float32, so float64 tables take the (logged, slower) torch step.
        """
        if not isinstance(model, KernelModel) or config.batch_size != 1 \
                or config.step_path == "autograd" or parallel is not None \
                or not isinstance(objective or RatingLoss(), RatingLoss) \
                or not engine.tables or engine.dense.data.device.type != "cpu":
            return None
        dtype = engine.tables[0].weight.dtype
        if dtype != torch.float32:
            log.warning("per-rating training of %s tables takes the torch step, far slower "
                        "than the float32 kernel; build the model under torch's float32 "
                        "default dtype for the kernel", dtype)
            return None
        kernel, bounds = model.rating_kernel()
        cores = len(os.sched_getaffinity(0))
        threads = config.num_threads or (1 if n < THREADED_FROM else cores)
        return cls(kernel, bounds, engine, config, threads)

    def order(self, run: Any, data: Columns) -> EpochOrder:
        """The epoch's ratings: the run's shuffle, or the grid's cell-sorted rows (made once)."""
        if self.blocks == 1:
            order: EpochOrder = run.order(data)
            return order
        if self.grid is None:
            self.grid = self._arrange(data, run.hooks.seed)
        return EpochOrder(self.grid[0], [len(data)], [len(data)], None)

    def _arrange(self, data: Columns, seed: int) -> tuple[Columns, np.ndarray]:
        """Group the rows by grid cell, each cell shuffled by ``seed``."""
        draws = np.random.default_rng(seed).random(len(data))
        user, item, rating, starts = arrange(_array(data.user), _array(data.item),
                                             _array(data.rating), draws, self.rows[0].shape[0],
                                             self.rows[1].shape[0], self.blocks)
        return Columns(*(torch.from_numpy(c) for c in (user, item, rating))), starts

    def epoch(self, order: EpochOrder, run: Any, bar: Any) -> None:
        """Train the epoch from step ``run.step`` on, a segment per checkpoint."""
        user, item, rating = (_array(c) for c in order.batch)
        predictions, schedule = _array(run.predictions), run.schedule
        pieces = self._pieces(run, len(rating))
        every = run.hooks.checkpoints.every if run.hooks.checkpoints is not None else None
        first, n = run.step, len(rating)
        while first < n:
            last = n if every is None else min(n, first + every - schedule.done % every)
            base = schedule.done - first  # steps taken before this epoch's first rating

            def train(s: int, e: int, a: int, shared: list[np.ndarray], base: int = base) -> None:
                self.kernel(user, item, rating, a, a + e - s, schedule.rates(base + s, base + e),
                            *self.rows, *shared, self.kinds, self.settings, base + s - a,
                            predictions)

            moved = None if bar is None else \
                (lambda rows, first=first: bar.update(first + rows - bar.n))  # bar at first + rows
            train_range(train, _chunks(pieces, first, last), self.threads or 1, self.shared, moved)
            schedule.advance(last - first)
            run.after_step(last - 1, n)
            first = last
        run.step = 0

    def _pieces(self, run: Any, n: int) -> list[tuple[int, int]]:
        """The epoch's traversal as ``(first row, rows)`` ranges of the arrays, in order."""
        if self.grid is None:
            return [(0, n)]
        starts, cells = self.grid[1], self.blocks * self.blocks
        turn = np.random.default_rng([run.hooks.seed, run.epoch]).permutation(cells)
        return [(int(starts[c]), int(starts[c + 1] - starts[c])) for c in turn
                if starts[c + 1] > starts[c]]


def _chunks(pieces: list[tuple[int, int]], first: int,
            last: int) -> list[tuple[int, int, int]]:
    """Steps ``first:last`` of the traversal as ``(first step, end step, first row)`` chunks,
    each in one piece and of at most :data:`CHUNK` ratings."""
    out, step = [], 0
    for row, size in pieces:
        lo, hi = max(first, step), min(last, step + size)
        out += [(s, min(s + CHUNK, hi), row + s - step) for s in range(lo, hi, CHUNK)]
        step += size
    return out


def _array(tensor: Tensor) -> np.ndarray:
    """The CPU tensor's memory as a NumPy array (a view: writes go to the tensor)."""
    return tensor.detach().numpy()
