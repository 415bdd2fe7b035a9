"""One fused step for the MLP under Keras' dense Adam (the ``movielens-notebook`` preset).

The general loop (:class:`~embrec.training.trainers.StepTrainer`) takes a step through
the step interface, then hands its row gradients to the engine; at small batches that
plumbing, not the arithmetic, is most of a step. This path does the same arithmetic:

- both tables live in one buffer (:class:`~embrec.training.sparse.DenseTableAdam`),
  so one gather of an interleaved ``(user, n_users + item)`` index, cut once per
  epoch, reads the concatenated tower input, and one ``index_add_`` and one
  ``index_fill_`` write and clear its gradient;
- the tower's :class:`~embrec.models.base.TowerStep` writes the dense gradients
  instead of adding them, and the last layer writes into the epoch's prediction buffer;
- the one fused Adam call's tensors and checks are settled once per fit.

Taken only where it applies (:meth:`FusedKerasMLP.build`); ``tests/training/test_fused.py``
proves it equal to the general path. ``FusedKerasMLP.ENABLED = False`` turns it off.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from embrec.models.base import ConcatTowerModel, TowerStep, add_decay
from embrec.training.progress import report
from embrec.training.sparse import BETAS, FUSED_ADAM
from embrec.training.step import RatingLoss

__all__ = ["FusedKerasMLP"]

class FusedKerasMLP:
    """Forward, backward and Keras-dense Adam of an unbiased, unbounded MLP, one call a batch.

    ``model``'s parameters are already installed in ``engine``'s buffers (``keras`` tables
    and the dense optimiser); ``weight_decay`` is the per-use L2 on the rows read.
    """

    ENABLED = True
    path = "fast"
    threads: int | None = None

    def __init__(self, model: ConcatTowerModel, engine: Any, weight_decay: float) -> None:
        keras = engine.keras
        self.table, self.table_grad = keras.data, keras.grad
        self.n_users, self.width = keras.weights[0].shape[0], keras.weights[0].shape[1]
        self.tower = TowerStep(model.concat_tower, write=True)
        self.engine, self.weight_decay = engine, weight_decay
        self.epsilon = keras.epsilon
        self.count = torch.zeros((), device=self.table.device)
        optimizer = engine.dense_optimizer
        self.decays = bool(optimizer.decay and optimizer.flat.kernel_size)
        dense = optimizer.adam_tensors(0.0) if not self.decays else \
            (engine.dense.data, engine.dense.grad, optimizer.first, optimizer.second)
        # (params, grads, first moments, second moments, steps): tables, then dense layers
        self.adam_lists: tuple[list[Tensor], ...] = ([keras.data, dense[0]], [keras.grad, dense[1]],
                           [keras.first, dense[2]], [keras.second, dense[3]], [],
                           [self.count, self.count])

    @classmethod
    def build(cls, model: Any, engine: Any, config: Any, objective: Any, path: str,
              parallel: Any) -> FusedKerasMLP | None:
        """Return the fused path for this fit, or ``None`` where the general loop must run.

        It applies to the rating loss on the hand-written path, in one CPU process, for an
        :class:`~embrec.models.base.ConcatTowerModel` (the MLP) without bias columns or
        bounded output whose tables take Keras' dense Adam in one fused call with its dense layers,
        and whose dense parameters are exactly its tower's (so every gradient is written
        each step), all float32 (under a float64 default dtype the general loop runs).
        """
        keras = getattr(engine, "keras", None)
        if not cls.ENABLED or FUSED_ADAM is None or path != "fast" or parallel is not None \
                or not isinstance(objective, RatingLoss) \
                or not isinstance(model, ConcatTowerModel) or model.bias_columns \
                or model.bounds is not None or model.concat_tower.activate_last or keras is None \
                or not keras.fused or not engine.one_adam_call:
            return None
        size = sum(p.numel() for p in model.concat_tower.parameters())
        tensors = [keras.data, keras.grad, keras.first, keras.second, engine.dense.data,
                   engine.dense.grad, engine.dense_optimizer.first, engine.dense_optimizer.second]
        # the last layer writes into the epoch's float32 prediction buffer (batches.columns)
        if size != engine.dense.data.numel() or len({t.device for t in tensors}) != 1 \
                or any(t.dtype != torch.float32 for t in tensors) \
                or not all(t.is_contiguous() for t in tensors) \
                or tensors[0].device.type != "cpu":  # proven equal on CPU only
            return None
        return cls(model, engine, config.weight_decay)

    def order(self, run: Any, data: Any) -> Any:
        """The run's shuffle of ``data`` (cut into steps)."""
        return run.order(data)

    def epoch(self, order: Any, run: Any, bar: Any) -> None:
        """Train one shuffled epoch from ``run.step`` on, as the general loop would."""
        batch, sizes = order.batch, order.local
        pairs = torch.stack((batch.user, batch.item + self.n_users), 1).view(-1)
        indices = torch.split(pairs, [2 * size for size in sizes])
        ratings = torch.split(batch.rating.view(-1, 1), sizes)
        predictions = torch.split(run.predictions.view(-1, 1), sizes)
        stop, steps, schedule = sum(sizes[:run.step]), len(sizes), run.schedule
        checkpoints = run.hooks.checkpoints is not None
        with torch.no_grad():
            for k in range(run.step, steps):
                lr = schedule.next()
                self._step(indices[k], ratings[k], predictions[k], sizes[k], lr, schedule.done)
                stop += sizes[k]  # rows done: a running sum, not a sum per report
                if checkpoints:
                    run.after_step(k, steps)
                if bar is not None and k % 50 == 49:
                    report(bar, run.predictions, batch.rating, stop, sizes[k])
            self.engine.dense.grad.zero_()  # as the general loop leaves it
        run.step = 0

    def _step(self, index: Tensor, rating: Tensor, prediction: Tensor, rows: int, lr: float,
              step: int) -> None:
        """One batch: forward, backward, and Keras' Adam over both tables and the layers."""
        x = self.table.index_select(0, index).view(rows, 2 * self.width)  # [user | item]
        _, saved = self.tower.forward(x, out=prediction)
        grad = self.tower.backward(saved, (prediction - rating).mul_(2.0 / max(rows, 1)))
        add_decay(grad, x, 0, self.weight_decay, 0.0, rows)
        self.table_grad.index_add_(0, index, grad.view(2 * rows, self.width))
        self._adam(lr, step)
        self.table_grad.index_fill_(0, index, 0.0)

    def _adam(self, lr: float, step: int) -> None:
        """The Keras tables' and dense layers' Adam update: one fused call."""
        if self.decays:  # the dense kernels' decay goes into their gradients first
            self.engine.dense_optimizer.adam_tensors(lr)
        self.count.fill_(float(step))
        FUSED_ADAM(*self.adam_lists, lr=lr, beta1=BETAS[0], beta2=BETAS[1],  # type: ignore[misc]
                   weight_decay=0.0, eps=self.epsilon / math.sqrt(1 - BETAS[1] ** step),
                   amsgrad=False, maximize=False)
