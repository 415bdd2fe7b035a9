"""Row-sparse optimisers for embedding tables: a step touches only the rows its batch used.

A batch of 2,048 ratings uses at most 4,096 embedding rows whatever the size of
the catalogue, so updating (and keeping moments for) only those rows makes a
step cost O(batch), not O(users + items) (timings in
``benchmarks/results/engine.md``). Gradients arrive as ``(index, rows)`` pairs,
one row per occurrence; repeated indices are summed first (:func:`coalesce`),
then the optimiser reads, updates and writes back only the unique rows.

Optimisers and their state per embedding row of width ``w`` (float32):

- ``adam``: lazy Adam (TensorFlow's ``LazyAdam``, torch's ``SparseAdam``): a
  row's moments move only when the row is in a batch; the bias correction uses
  the global step. Parameters + 2 moments: ``12 w`` bytes a row.
- ``adagrad``: element-wise Adagrad: ``8 w`` bytes a row.
- ``rowwise-adagrad``: one accumulator per row, the mean of the squared
  gradient over the row (FBGEMM/TorchRec's default for huge tables): ``4 w + 4``.
- ``sgd``: plain SGD: ``4 w`` (momentum is not applied to embedding rows).

``DenseTableAdam`` is the explicit exception: every row's moments decay at every
step, as Keras' Adam does with embedding layers. It costs O(catalogue) per step
and exists so the notebook presets reproduce Keras; nothing else uses it.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from embrec.training import memory

__all__ = ["ROW_OPTIMIZERS", "AdamTensors", "DenseTableAdam", "RowOptimizer", "adam_update",
           "adam_update_groups", "coalesce", "row_optimizer"]

ROW_OPTIMIZERS = ("adam", "adamw", "adagrad", "rowwise-adagrad", "sgd")
BETAS = (0.9, 0.999)


FUSED_ADAM = getattr(torch, "_fused_adam_", None)
"""torch's fused Adam kernel: one pass over memory instead of seven. It is a private API, so it
is an optional fast path of :func:`adam_update` (tests prove the two equal), used only where it
exists, for contiguous CPU/CUDA tensors."""


def adam_update(params: Tensor, grad: Tensor, first: Tensor, second: Tensor, lr: float,
                step: int, epsilon: float, *, fused: bool = False) -> None:
    """One Adam update in place, in Kingma and Ba's form that Keras and torch's SparseAdam use.

    ``params -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)``: epsilon is
    not bias-corrected (``torch.optim.Adam`` differs from it by that alone).

    Args:
        params: the parameters (or rows of them).
        grad: their gradients.
        first: the first moments, updated in place.
        second: the second moments, updated in place.
        lr: the learning rate.
        step: the update number, from 1.
        epsilon: the epsilon.
        fused: take torch's fused kernel when it is available for these tensors.
    """
    correction = math.sqrt(1 - BETAS[1] ** step)
    tensors = (params, grad, first, second)
    if fused and FUSED_ADAM is not None and all(t.is_contiguous() for t in tensors) \
            and params.device.type in ("cpu", "cuda"):
        count = torch.full((), float(step), device=params.device)
        # torch's kernel adds epsilon after the bias correction: dividing it by the
        # correction gives exactly the form above
        FUSED_ADAM([params], [grad], [first], [second], [], [count], lr=lr, beta1=BETAS[0],
                   beta2=BETAS[1], weight_decay=0.0, eps=epsilon / correction, amsgrad=False,
                   maximize=False)
        return
    first.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
    second.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
    size = lr * correction / (1 - BETAS[0] ** step)
    params.addcdiv_(first, second.sqrt().add_(epsilon), value=-size)


AdamTensors = tuple[Tensor, Tensor, Tensor, Tensor]
"""``(params, grad, first, second)`` of one group of parameters Adam updates."""


def adam_update_groups(groups: list[AdamTensors], lr: float, step: int, epsilon: float) -> None:
    """:func:`adam_update` of several groups with one hyper-parameter set: one fused call.

    A step of the notebook presets updates both embedding tables and the dense layers;
    one kernel call for all of them instead of one per group saves a dispatch per step.
    """
    if FUSED_ADAM is not None and all(t.is_contiguous() and t.device.type in ("cpu", "cuda")
                                      for group in groups for t in group) \
            and len({t.device for group in groups for t in group}) == 1:
        correction = math.sqrt(1 - BETAS[1] ** step)
        count = torch.full((), float(step), device=groups[0][0].device)
        params, grads, firsts, seconds = (list(part) for part in zip(*groups, strict=True))
        FUSED_ADAM(params, grads, firsts, seconds, [], [count] * len(groups), lr=lr,
                   beta1=BETAS[0], beta2=BETAS[1], weight_decay=0.0,
                   eps=epsilon / correction, amsgrad=False, maximize=False)
        return
    for group in groups:
        adam_update(*group, lr, step, epsilon, fused=True)


def coalesce(index: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Sum the gradient rows of repeated indices.

    Args:
        index: ``(k,)`` row indices, possibly repeated.
        rows: ``(k, w)`` one gradient row per index.

    Returns:
        ``(unique indices, summed rows)``.
    """
    unique, inverse = torch.unique(index, return_inverse=True)
    summed = torch.zeros((len(unique), rows.shape[1]), dtype=rows.dtype, device=rows.device)
    return unique, summed.index_add_(0, inverse, rows)


class RowOptimizer(Protocol):
    """Updates the rows of one embedding table that a batch touched.

    Attributes:
        weight: the table being trained, ``(rows, width)``; a view into the
            optimiser's row buffer, so install it as the model's parameter.
    """

    weight: Tensor

    def step(self, index: Tensor, grad: Tensor, lr: float, step: int) -> None:
        """Apply update number ``step`` (from 1) given one gradient row per index occurrence."""
        ...

    def state_dict(self) -> dict[str, Tensor]:
        """Return the optimiser state as named ``(rows, k)`` tensors (for checkpoints)."""
        ...


class _RowBuffer:
    """A table's weights and per-row state side by side, ``[weights | state]`` in one row.

    A touched row's weights and state then share their cache lines (and, for
    large tables, huge pages: :mod:`embrec.training.memory`): in a large
    catalogue every touched row is a cache miss, and the misses per row are
    what the step costs. Each part is gathered into its own contiguous tensor
    for the update (the first gather loads the row, the others hit the cache)
    and written back the same way.
    """

    def __init__(self, weight: Tensor, state_width: int) -> None:
        width = weight.shape[1]
        self.buffer = memory.zeros(weight.shape[0], width + state_width, weight.dtype,
                                   weight.device)
        self.buffer[:, :width] = weight
        self.width = width
        self.weight = self.buffer[:, :width]


class _RowAdam(_RowBuffer):
    """Lazy Adam on a ``[weights | first | second]`` buffer.

    The three parts of the touched rows are gathered into three contiguous
    tensors (the second and third gathers find the rows' cache lines already
    loaded), so the update is one fused kernel instead of seven strided passes.
    """

    def __init__(self, weight: Tensor, epsilon: float) -> None:
        super().__init__(weight, 2 * weight.shape[1])
        self.epsilon = epsilon
        w = self.width
        self.parts = (self.weight, self.buffer[:, w:2 * w], self.buffer[:, 2 * w:])

    def step(self, index: Tensor, grad: Tensor, lr: float, step: int) -> None:
        index, grad = coalesce(index, grad)
        params, first, second = (part.index_select(0, index) for part in self.parts)
        adam_update(params, grad, first, second, lr, step, self.epsilon, fused=True)
        for part, rows in zip(self.parts, (params, first, second), strict=True):
            part.index_copy_(0, index, rows)

    def state_dict(self) -> dict[str, Tensor]:
        w = self.width
        return {"first": self.buffer[:, w:2 * w], "second": self.buffer[:, 2 * w:]}


class _RowAdagrad(_RowBuffer):
    def __init__(self, weight: Tensor, epsilon: float, rowwise: bool) -> None:
        super().__init__(weight, 1 if rowwise else weight.shape[1])
        self.epsilon, self.rowwise = epsilon, rowwise
        self.parts = (self.weight, self.buffer[:, self.width:])

    def step(self, index: Tensor, grad: Tensor, lr: float, step: int) -> None:
        index, grad = coalesce(index, grad)
        params, total = (part.index_select(0, index) for part in self.parts)  # contiguous
        total.add_(grad.square().mean(1, keepdim=True) if self.rowwise else grad.square())
        params.addcdiv_(grad, total.sqrt().add_(self.epsilon), value=-lr)
        for part, rows in zip(self.parts, (params, total), strict=True):
            part.index_copy_(0, index, rows)

    def state_dict(self) -> dict[str, Tensor]:
        return {"total": self.buffer[:, self.width:]}


class _RowSGD:
    def __init__(self, weight: Tensor) -> None:
        self.weight = memory.zeros(weight.shape[0], weight.shape[1], weight.dtype, weight.device)
        self.weight.copy_(weight)

    def step(self, index: Tensor, grad: Tensor, lr: float, step: int) -> None:
        self.weight.index_add_(0, index, grad, alpha=-lr)

    def state_dict(self) -> dict[str, Tensor]:
        return {}


def row_optimizer(kind: str, weight: Tensor, epsilon: float) -> RowOptimizer:
    """Return the row-sparse optimiser ``kind`` for a table starting at ``weight``.

    Args:
        kind: one of :data:`ROW_OPTIMIZERS` (``adamw`` is lazy Adam here: decoupled
            decay applies to dense layers only).
        weight: the ``(rows, width)`` initial embedding weights (copied).
        epsilon: the optimiser's epsilon.

    Returns:
        The optimiser; train ``optimizer.weight``.
    """
    if kind in ("adam", "adamw"):
        return _RowAdam(weight, epsilon)
    if kind in ("adagrad", "rowwise-adagrad"):
        return _RowAdagrad(weight, epsilon, rowwise=kind == "rowwise-adagrad")
    return _RowSGD(weight)


class DenseTableAdam:
    """Keras' Adam on both embedding tables: rows outside the batch decay too (O(catalogue)).

    The user and item tables are two views of one buffer, so a step is one Adam
    update (torch's fused kernel where available, see :func:`adam_update`) over
    every row; gradients are added into a full-size buffer whose touched rows
    are cleared after the step.

    Args:
        user_weight: the ``(n_users, width)`` initial user table (copied).
        item_weight: the ``(n_items, width)`` initial item table (copied).
        epsilon: Adam's epsilon (Keras: 1e-7).
        fused: allow torch's fused kernel (``False`` is the plain reference).
    """

    def __init__(self, user_weight: Tensor, item_weight: Tensor, epsilon: float,
                 fused: bool = True) -> None:
        n = user_weight.shape[0]
        self.data = torch.cat((user_weight, item_weight))
        self.grad, self.first, self.second = (torch.zeros_like(self.data) for _ in range(3))
        self.epsilon, self.fused = epsilon, fused
        self.weights = (self.data[:n], self.data[n:])
        self._grads = (self.grad[:n], self.grad[n:])

    def step(self, user_index: Tensor, user_grad: Tensor, item_index: Tensor, item_grad: Tensor,
             lr: float, step: int, dense: AdamTensors | None = None) -> None:
        """Add the rows' gradients and take Adam update ``step`` over every row of both tables.

        ``dense``: the dense layers' Adam tensors, when they take the same update (one
        fused call for both; see :func:`adam_update_groups`).
        """
        self._grads[0].index_add_(0, user_index, user_grad)
        self._grads[1].index_add_(0, item_index, item_grad)
        tables = (self.data, self.grad, self.first, self.second)
        if not self.fused:
            adam_update(*tables, lr, step, self.epsilon)
            if dense is not None:
                adam_update(*dense, lr, step, self.epsilon)
        else:
            adam_update_groups([tables] if dense is None else [tables, dense], lr, step,
                               self.epsilon)
        self._grads[0].index_fill_(0, user_index, 0.0)
        self._grads[1].index_fill_(0, item_index, 0.0)

    def state_dict(self) -> dict[str, Tensor]:
        """Return the moments, ``(n_users + n_items, width)`` each."""
        return {"first": self.first, "second": self.second}
