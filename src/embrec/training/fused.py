"""One fused step for the MLP under Keras' dense Adam (the ``movielens-notebook`` preset).

The general loop (:func:`embrec.training.fit._one_epoch`) takes a step through
the step interface, then hands its row gradients to the engine; at a batch of
64 that plumbing, not the arithmetic, is most of a step: two gathers and a
concatenation, two scatters and two clears, a dataclass, checks repeated on
every call. This path does exactly the same arithmetic with less of it:

- both tables live in one buffer (:class:`~embrec.training.sparse.DenseTableAdam`),
  so one gather of an interleaved ``(user, n_users + item)`` index, cut once per
  epoch, reads the concatenated tower input, and one ``index_add_`` and one
  ``index_fill_`` write and clear its gradient;
- the dense gradients are written, not added into a zeroed buffer, and the last
  layer writes straight into the epoch's prediction buffer;
- the one fused Adam call's tensors and checks are settled once per fit.

It is an optional implementation of the general path, taken only where it
applies (:meth:`FusedKerasMLP.build`), and proven equal to it, trained weights
included, by ``tests/training/test_fused.py``. ``FusedKerasMLP.ENABLED = False`` turns it off.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from embrec.models.mlp import MLP, TowerStep
from embrec.training.progress import report
from embrec.training.sparse import BETAS, FUSED_ADAM
from embrec.training.step import RatingLoss

__all__ = ["FusedKerasMLP"]

class FusedKerasMLP:
    """Forward, backward and Keras-dense Adam of an unbiased, unbounded MLP, one call a batch.

    Args:
        model: the MLP, its parameters already installed in the engine's buffers.
        engine: the fit's engine (``keras`` tables and the dense optimiser).
        weight_decay: the per-use L2 penalty on the embedding rows read.
    """

    ENABLED = True
    path = "fast"
    threads: int | None = None

    def __init__(self, model: MLP, engine: Any, weight_decay: float) -> None:
        keras = engine.keras
        self.table, self.table_grad = keras.data, keras.grad
        self.n_users, self.width = keras.weights[0].shape[0], keras.weights[0].shape[1]
        tower = TowerStep(model.tower)
        # (weight, weight transposed, bias, weight grad, bias grad, masks, activation)
        self.layers = [(w, w.t(), b, wg, bg, masks, activation)
                       for w, b, wg, bg, masks, activation in tower.layers]
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
        :class:`~embrec.models.mlp.MLP` without bias columns or bounded output whose
        tables take Keras' dense Adam in one fused call with its dense layers, and whose
        dense parameters are exactly its tower's (so every gradient is written each step),
        all float32 (under ``torch.set_default_dtype(torch.float64)`` the general loop runs).
        """
        keras = getattr(engine, "keras", None)
        if not cls.ENABLED or FUSED_ADAM is None or path != "fast" or parallel is not None \
                or not isinstance(objective, RatingLoss) or not isinstance(model, MLP) \
                or model.bias_columns or model.bounds is not None or model.tower.activate_last \
                or keras is None \
                or not keras.fused or not engine.one_adam_call:
            return None
        tower = sum(p.numel() for p in model.tower.parameters())
        tensors = [keras.data, keras.grad, keras.first, keras.second, engine.dense.data,
                   engine.dense.grad, engine.dense_optimizer.first, engine.dense_optimizer.second]
        # the last layer writes into the epoch's float32 prediction buffer (batches.columns)
        if tower != engine.dense.data.numel() or len({t.device for t in tensors}) != 1 \
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
        saved = self._forward(x, prediction)
        grad = self._backward(saved, (prediction - rating).mul_(2.0 / max(rows, 1)))
        if self.weight_decay > 0:
            grad.add_(x, alpha=2.0 * self.weight_decay / rows)
        self.table_grad.index_add_(0, index, grad.view(2 * rows, self.width))
        self._adam(lr, step)
        self.table_grad.index_fill_(0, index, 0.0)

    def _forward(self, x: Tensor, prediction: Tensor) -> list[tuple[Tensor, Tensor | None, Tensor]]:
        """Training-mode forward; the output layer writes the predictions in place.

        Returns, per layer, its input after dropout, the dropout mask and its output.
        """
        z, saved, last = x, [], len(self.layers) - 1
        for k, (_, transposed, bias, _, _, masks, activation) in enumerate(self.layers):
            mask = None if masks is None else masks.take(z)
            inputs = z if mask is None else z * mask
            if k < last:
                z = torch.addmm(bias, inputs, transposed)
                if activation is not None:
                    z = z.clamp_min_(0.0) if activation == "relu" else z.tanh_()
            else:  # the output layer is linear
                z = torch.addmm(bias, inputs, transposed, out=prediction)
            saved.append((inputs, mask, z))
        return saved

    def _backward(self, saved: list[tuple[Tensor, Tensor | None, Tensor]], grad: Tensor) -> Tensor:
        """Write every layer's gradients; return the gradient of the tower input."""
        layers = self.layers
        for k in range(len(layers) - 1, -1, -1):
            weight, _, _, weight_grad, bias_grad, _, _ = layers[k]
            inputs, mask, _ = saved[k]
            torch.mm(grad.t(), inputs, out=weight_grad)
            torch.sum(grad, 0, out=bias_grad)
            grad = torch.mm(grad, weight)
            below = layers[k - 1][6] if k else None  # the activation under this layer's input
            if below == "relu":  # dropout and ReLU in one product: the output is >= 0
                signs = saved[k - 1][2].sign()
                grad.mul_(signs if mask is None else signs.mul_(mask))
                continue
            if mask is not None:
                grad.mul_(mask)
            if below == "tanh":
                z = saved[k - 1][2]
                grad = grad * (1.0 - z * z)
        return grad

    def _adam(self, lr: float, step: int) -> None:
        """The Keras tables' and dense layers' Adam update: one fused call."""
        if self.decays:  # the dense kernels' decay goes into their gradients first
            self.engine.dense_optimizer.adam_tensors(lr)
        self.count.fill_(float(step))
        FUSED_ADAM(*self.adam_lists, lr=lr, beta1=BETAS[0], beta2=BETAS[1],  # type: ignore[misc]
                   weight_decay=0.0, eps=self.epsilon / math.sqrt(1 - BETAS[1] ** step),
                   amsgrad=False, maximize=False)
