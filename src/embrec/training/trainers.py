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
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

import torch

from embrec.config import TrainConfig
from embrec.distributed.exchange import EpochOrder
from embrec.models.base import EmbeddingModel
from embrec.training.batches import Columns
from embrec.training.fused import FusedKerasMLP
from embrec.training.kernel_trainer import KernelTrainer
from embrec.training.losses import Objective, RatingLoss
from embrec.training.progress import report
from embrec.training.step import Step, make_step

__all__ = ["KernelTrainer", "StepTrainer", "Trainer", "pick_trainer"]



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
