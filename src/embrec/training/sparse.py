"""Row-sparse optimisers for embedding tables: a step touches only the rows its batch used.

A batch of 2,048 ratings uses at most 4,096 embedding rows whatever the size of
the catalogue, so updating (and keeping moments for) only those rows makes a
step cost O(batch), not O(users + items) (``benchmarks/results/engine.md``,
catalogue). Gradients arrive as ``(index, rows)`` pairs, one row per occurrence;
repeated indices are summed first (:func:`coalesce`), then the optimiser reads,
updates and writes back only the unique rows.

Optimisers and their state per embedding row of width ``w`` (float32):

- ``adam``: lazy Adam (TensorFlow's ``LazyAdam``, torch's ``SparseAdam``): a
  row's moments move only when the row is in a batch; the bias correction uses
  the global step. Parameters + 2 moments: ``12 w`` bytes a row.
- ``adagrad``: element-wise Adagrad: ``8 w`` bytes a row.
- ``rowwise-adagrad``: one accumulator per row, the mean of the squared
  gradient over the row (FBGEMM/TorchRec's default for huge tables): ``4 w + 4``.
- ``sgd``: plain SGD: ``4 w`` (momentum is not applied to embedding rows).

Tables of at least :data:`HUGE_MIN_BYTES` on the CPU live on transparent huge pages
(:func:`huge_zeros`): a step of a large catalogue touches rows scattered over hundreds
of megabytes, and with 4 KiB pages each is a TLB miss on top of the cache miss
(``benchmarks/results/engine.md``, hugepages). :class:`DenseTableAdam`, Keras' Adam
(every row decays every step), is the exception, so the notebook presets reproduce Keras.
"""

from __future__ import annotations

import math
import mmap
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

__all__ = ["HUGE_MIN_BYTES", "ROW_OPTIMIZERS", "AdamTensors", "DenseTableAdam", "RowOptimizer",
           "adam_update", "coalesce", "huge_zeros", "row_optimizer"]

ROW_OPTIMIZERS = ("adam", "adamw", "adagrad", "rowwise-adagrad", "sgd")
BETAS = (0.9, 0.999)


FUSED_ADAM = getattr(torch, "_fused_adam_", None)
"""torch's fused Adam kernel (a private API, so optional): one pass over memory instead of seven.
The fused MLP step calls it, so the general loop's Adam takes it too (the two are proven equal
bit for bit); :func:`adam_update` without it is the reference."""


def adam_update(params: Tensor, grad: Tensor, first: Tensor, second: Tensor, lr: float,
                step: int, epsilon: float, *, fused: bool = False) -> None:
    """One Adam update in place, in Kingma and Ba's form that Keras and torch's SparseAdam use.

    ``params -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)`` at update ``step``
    (from 1), the moments ``first`` and ``second`` updated in place: epsilon is not
    bias-corrected (``torch.optim.Adam`` differs from it by that alone). ``fused``: take
    torch's fused kernel where it is available for these tensors.
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


HUGE_MIN_BYTES = 64 << 20
"""Tables below 64 MiB fit the TLB's reach well enough; they use torch's allocator."""
_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


def huge_zeros(rows: int, width: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.zeros((rows, width))``, on huge pages where large, on the CPU and possible.

    Only anonymous memory that ``madvise(MADV_HUGEPAGE)`` can mark is used; anywhere
    else (another OS, THP disabled, a GPU) this is plain ``torch.zeros``. The tensor
    keeps the mapping alive.
    """
    size = rows * width * torch.empty((), dtype=dtype).element_size()
    if device.type != "cpu" or size < HUGE_MIN_BYTES or _HUGEPAGE is None \
            or dtype not in _NUMPY:
        return torch.zeros((rows, width), dtype=dtype, device=device)
    try:
        region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(_HUGEPAGE)
    except OSError:  # no such advice on this kernel, or no memory map: torch's allocator
        return torch.zeros((rows, width), dtype=dtype, device=device)
    array = np.frombuffer(region, dtype=_NUMPY[dtype]).reshape(rows, width)
    return torch.from_numpy(array)  # anonymous maps start zeroed


def coalesce(index: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Sum the gradient ``rows`` ``(k, w)`` of repeated ``index`` entries ``(k,)``: ``(unique
    indices, summed rows)``."""
    unique, inverse = torch.unique(index, return_inverse=True)
    summed = torch.zeros((len(unique), rows.shape[1]), dtype=rows.dtype, device=rows.device)
    return unique, summed.index_add_(0, inverse, rows)


class RowOptimizer(Protocol):
    """Updates the rows of one embedding table that a batch touched.

    Attributes:
        weight: the table being trained, ``(rows, width)``; a view into the
            optimiser's row buffer, so install it as the model's parameter.
        buffer: the ``[weights | state]`` rows (the compiled kernels train them in place).
    """

    weight: Tensor
    buffer: Tensor

    def step(self, index: Tensor, grad: Tensor, lr: float, step: int) -> None:
        """Apply update number ``step`` (from 1) given one gradient row per index occurrence."""
        ...

    def state_dict(self) -> dict[str, Tensor]:
        """Return the optimiser state as named ``(rows, k)`` tensors (for checkpoints)."""
        ...


class _RowBuffer:
    """A table's weights and per-row state side by side, ``[weights | state]`` in one row.

    A touched row's weights and state then share their cache lines (and, for large
    tables, huge pages); in a large catalogue every touched row is a cache miss. The
    compiled kernels train these buffers in place. A step gathers the touched rows'
    parts into contiguous tensors, :meth:`update` s them and writes them back.
    """

    def __init__(self, weight: Tensor, state: dict[str, int]) -> None:
        width = weight.shape[1]
        self.buffer = huge_zeros(weight.shape[0], width + sum(state.values()), weight.dtype,
                                 weight.device)
        self.buffer[:, :width] = weight
        self.weight, self.state, start = self.buffer[:, :width], {}, width
        for name, size in state.items():
            self.state[name], start = self.buffer[:, start:start + size], start + size

    def step(self, index: Tensor, grad: Tensor, lr: float, step: int) -> None:
        """Apply update ``step`` (from 1) to the rows ``index`` names (repeats summed)."""
        index, grad = coalesce(index, grad)
        parts = (self.weight, *self.state.values())
        rows = [part.index_select(0, index) for part in parts]
        self.update(grad, lr, step, *rows)
        for part, new in zip(parts, rows, strict=True):
            part.index_copy_(0, index, new)

    def update(self, grad: Tensor, lr: float, step: int, params: Tensor, *state: Tensor) -> None:
        """Update the gathered rows in place."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Tensor]:
        """The state columns by name (views of the buffer)."""
        return dict(self.state)


class _RowAdam(_RowBuffer):
    """Lazy Adam on a ``[weights | first | second]`` buffer."""

    def __init__(self, weight: Tensor, epsilon: float) -> None:
        super().__init__(weight, {"first": weight.shape[1], "second": weight.shape[1]})
        self.epsilon = epsilon

    def update(self, grad: Tensor, lr: float, step: int, params: Tensor, *state: Tensor) -> None:
        adam_update(params, grad, state[0], state[1], lr, step, self.epsilon, fused=True)


class _RowAdagrad(_RowBuffer):
    def __init__(self, weight: Tensor, epsilon: float, rowwise: bool) -> None:
        super().__init__(weight, {"total": 1 if rowwise else weight.shape[1]})
        self.epsilon, self.rowwise = epsilon, rowwise

    def update(self, grad: Tensor, lr: float, step: int, params: Tensor, *state: Tensor) -> None:
        total = state[0]
        total.add_(grad.square().mean(1, keepdim=True) if self.rowwise else grad.square())
        params.addcdiv_(grad, total.sqrt().add_(self.epsilon), value=-lr)


class _RowSGD(_RowBuffer):
    def step(self, index: Tensor, grad: Tensor, lr: float, step: int) -> None:
        self.weight.index_add_(0, index, grad, alpha=-lr)


def row_optimizer(kind: str, weight: Tensor, epsilon: float) -> RowOptimizer:
    """Return the row-sparse optimiser ``kind`` (one of :data:`ROW_OPTIMIZERS`) for a table
    starting at ``weight`` (copied); train ``optimizer.weight``. ``adamw`` is lazy Adam here:
    decoupled decay applies to dense layers only."""
    if kind in ("adam", "adamw"):
        return _RowAdam(weight, epsilon)
    if kind in ("adagrad", "rowwise-adagrad"):
        return _RowAdagrad(weight, epsilon, rowwise=kind == "rowwise-adagrad")
    return _RowSGD(weight, {})


class DenseTableAdam:
    """Keras' Adam on both embedding tables: rows outside the batch decay too (O(catalogue)).

    The user and item tables (copied in) are two views of one buffer, so a step is one
    Adam update over every row; gradients are added into a full-size buffer whose
    touched rows are cleared after the step. ``fused=False`` is the plain reference.
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
             lr: float, step: int) -> None:
        """Add the rows' gradients and take Adam update ``step`` over every row of both tables."""
        self._grads[0].index_add_(0, user_index, user_grad)
        self._grads[1].index_add_(0, item_index, item_grad)
        adam_update(self.data, self.grad, self.first, self.second, lr, step, self.epsilon,
                    fused=self.fused)
        self._grads[0].index_fill_(0, user_index, 0.0)
        self._grads[1].index_fill_(0, item_index, 0.0)

    def state_dict(self) -> dict[str, Tensor]:
        """Return the moments, ``(n_users + n_items, width)`` each."""
        return {"first": self.first, "second": self.second}
