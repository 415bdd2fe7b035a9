"""The dense tower MLP, GMF and NeuMF share: one forward, one hand-written backward, dropout masks.

A :class:`Tower` is dense layers with dropout on each layer's input. Its
autograd ``forward`` and the training step's hand-written :class:`TowerStep`
draw the same masks from the same :class:`DropoutMasks`, which take their
randomness from the generator ``fit`` hands them (the model contract,
:mod:`embrec.models.base`), never from ``nn.Dropout``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from embrec.config import require, require_choice

__all__ = ["ACTIVATIONS", "PAIR_BUDGET", "DropoutMasks", "ItemHalfCache", "Tower", "TowerStep",
           "check_tower", "dropout_mask", "grad_of"]

ACTIVATIONS = ("relu", "tanh", "linear")
PAIR_BUDGET = 1 << 20
"""Most (user, item, hidden) entries a ``score_matrix`` builds at once (4 MB: stays in cache)."""

Saved = list[tuple[Tensor, Tensor | None, Tensor]]
"""Per dense layer: its input after dropout, the dropout mask, and its output."""


def dropout_mask(shape: tuple[int, int], rate: float, like: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
    """Return a ``shape`` inverted-dropout mask: 0 with probability ``rate``, else
    ``1 / (1 - rate)``, on ``like``'s device and dtype, drawn from ``generator``.

    Four 16-bit draws come from each 64-bit random word, 4x fewer generator
    calls than ``torch.rand``; ``rate`` is honoured to 1/65536.
    """
    count = shape[0] * shape[1]
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=like.device)
    words.random_(-(2**63), None, generator=generator)
    bits = words.view(torch.int16)[:count].view(shape)
    # keep where bits >= threshold, P = 1 - rate: integers sit 0.5 away from the half-integer
    # cut, so the clamp yields exactly 0 or 0.5 (cheaper than a comparison and a cast)
    cut = round(rate * 65536) - 32768 - 0.5
    half = bits.to(like.dtype).sub_(cut).clamp_(0.0, 0.5)
    return half.mul_(2.0 / (1.0 - rate))


class DropoutMasks:
    """One layer's dropout masks, drawn ``BLOCK`` entries at a time and handed out in order.

    The draws come from the generator given to :meth:`reset` (``fit`` passes its
    seeded one), else torch's default.

    Args:
        rate: the dropout rate.
    """

    BLOCK = 1 << 18

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.block: Tensor | None = None
        self.used = self.rows = self.width = 0
        self.generator: torch.Generator | None = None

    def take(self, like: Tensor) -> Tensor:
        """Return the next mask for ``like``, a ``(rows, columns)`` batch of inputs.

        The block takes ``like``'s dtype and device when drawn; call :meth:`reset`
        after moving the model.
        """
        rows, width = like.shape
        used = self.used + rows
        if used > self.rows or width != self.width:
            self.rows, self.width = max(rows, self.BLOCK // width), width
            self.block = dropout_mask((self.rows, width), self.rate, like, self.generator)
            used = rows
        self.used = used
        return self.block[used - rows:used]  # type: ignore[index]

    def reset(self, generator: torch.Generator | None = None) -> None:
        """Drop the masks drawn so far; later draws come from ``generator``."""
        self.block, self.used, self.rows, self.width = None, 0, 0, 0
        self.generator = generator


class Tower(nn.Module):
    """Dense layers with dropout on each layer's input and an activation between layers.

    Args:
        sizes: ``(inputs, width_1, ..., outputs)``.
        dropout: one rate per dense layer (``len(sizes) - 1`` of them).
        activation: ``relu``, ``tanh`` or ``linear``.
        activate_last: also apply the activation after the last layer.
    """

    def __init__(self, sizes: Sequence[int], dropout: Sequence[float], activation: str,
                 *, activate_last: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.dropout = tuple(float(rate) for rate in dropout)
        self.masks: list[DropoutMasks | None] = [
            DropoutMasks(rate) if rate > 0 else None for rate in self.dropout]
        self.activation = activation
        self.activate_last = activate_last

    def layer(self, k: int) -> nn.Linear:
        """Return dense layer ``k`` (typed)."""
        return cast(nn.Linear, self.layers[k])

    def activates(self, k: int) -> bool:
        """Whether layer ``k``'s output goes through the activation."""
        return self.activation != "linear" and (k < len(self.layers) - 1 or self.activate_last)

    def _drop(self, k: int, x: Tensor) -> Tensor:
        masks = self.masks[k]
        return x * masks.take(x) if self.training and masks is not None else x

    def forward(self, x: Tensor) -> Tensor:
        """Apply the tower with autograd: ``(batch, inputs) -> (batch, outputs)``."""
        return self.finish(self.layers[0](self._drop(0, x)), drop=True)

    def finish(self, z: Tensor, outputs: list[Tensor] | None = None, *,
               drop: bool = False) -> Tensor:
        """Apply everything after the first layer's affine map to its ``(..., width_1)``
        output ``z``; dropout only if ``drop``; each activated output appended to ``outputs``."""
        in_place = not torch.is_grad_enabled()  # z is always a fresh tensor here
        for k in range(len(self.layers)):
            if k:
                z = self.layers[k](self._drop(k, z) if drop else z)
            if self.activates(k):
                relu = self.activation == "relu"
                z = (z.relu_() if relu else z.tanh_()) if in_place else \
                    (z.relu() if relu else z.tanh())
                if outputs is not None:
                    outputs.append(z)
        return z

    def hidden_outputs(self, x: Tensor) -> list[Tensor]:
        """Return the output of every activated layer, in eval mode (for diagnostics)."""
        outputs: list[Tensor] = []
        self.finish(self.layers[0](x), outputs)
        return outputs


class TowerStep:
    """A tower's hand-written training forward and backward, its tensors looked up once.

    Built after every parameter has its final storage and ``.grad`` buffer, so a
    batch costs only tensor ops. ``write`` overwrites the ``.grad`` each backward
    instead of adding into it.
    """

    def __init__(self, tower: Tower, *, write: bool = False) -> None:
        self.write = write
        self.layers = []
        for k in range(len(tower.layers)):
            layer = tower.layer(k)
            activation = tower.activation if tower.activates(k) else None
            weight = layer.weight.detach()
            self.layers.append((weight, weight.t(), layer.bias.detach(), grad_of(layer.weight),
                                grad_of(layer.bias), tower.masks[k], activation))

    def forward(self, x: Tensor, out: Tensor | None = None) -> tuple[Tensor, Saved]:
        """Training-mode forward of ``(batch, inputs)`` ``x``: the output (written into
        ``out`` when given and the last layer is linear) and what :meth:`backward` needs."""
        saved: Saved = []
        last = len(self.layers) - 1
        for k, (_, transposed, bias, _, _, masks, activation) in enumerate(self.layers):
            mask = None if masks is None else masks.take(x)
            if mask is not None:
                x = x * mask  # (batch, layer inputs)
            into = out if k == last and activation is None else None
            z = torch.addmm(bias, x, transposed, out=into)  # (batch, layer outputs)
            if activation is not None:
                z = z.clamp_min_(0.0) if activation == "relu" else z.tanh_()
            saved.append((x, mask, z))
            x = z
        return x, saved

    def backward(self, saved: Saved, grad: Tensor) -> Tensor:
        """Put the layers' gradients in their ``.grad``, given the output's gradient ``grad``
        and what :meth:`forward` ``saved``; return the input's gradient.

        Under a ReLU layer, its derivative and the next layer's dropout are one product
        (the ReLU output's sign times the mask): one pass over the batch instead of two.
        """
        last = len(self.layers) - 1
        grad = _through(grad, self.layers[last][6], saved[last][2])
        for k in range(last, -1, -1):
            weight, _, _, weight_grad, bias_grad, _, _ = self.layers[k]
            x, mask, _ = saved[k]
            if self.write:
                torch.mm(grad.t(), x, out=weight_grad)
                torch.sum(grad, 0, out=bias_grad)
            else:
                weight_grad.addmm_(grad.t(), x)
                bias_grad.add_(grad.sum(0))
            grad = grad @ weight  # (batch, layer inputs)
            below = self.layers[k - 1][6] if k else None
            if below == "relu":
                signs = saved[k - 1][2].sign()
                grad.mul_(signs if mask is None else signs.mul_(mask))
                continue
            if mask is not None:
                grad.mul_(mask)
            grad = _through(grad, below, saved[k - 1][2] if k else grad)
        return grad


def _through(grad: Tensor, activation: str | None, z: Tensor) -> Tensor:
    """``grad`` through the activation whose output is ``z``."""
    if activation == "relu":
        return grad.mul_(z.sign())
    if activation == "tanh":
        return grad * (1.0 - z * z)
    return grad


class ItemHalfCache:
    """The item half of a split first dense layer, ``W_i i + b``, kept between top-N calls.

    Top-N scores each user against the same catalogue tensor, and that half is
    most of a call. It is recomputed only when the item tensor or the layer
    changed: the cache holds the tensor itself (so identity is a safe key) and
    compares version counters, which in-place updates bump. Without gradients only.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: Tensor | None = None

    def get(self, layer: nn.Linear, item_vectors: Tensor, start: int) -> Tensor:
        """Return ``item_vectors[:, start:start + half] @ W[:, half:].T + b``: ``(n, width_1)``."""
        half = layer.weight.shape[1] // 2
        columns = item_vectors[:, start:start + half]
        if torch.is_grad_enabled():
            return torch.addmm(layer.bias, columns, layer.weight[:, half:].t())
        key = (start, _version(item_vectors), _version(layer.weight), _version(layer.bias))
        if self._value is not None and self._key is not None and \
                self._key[0] is item_vectors and self._key[1:] == key:
            return self._value
        value = torch.addmm(layer.bias, columns, layer.weight[:, half:].t())
        self._key, self._value = (item_vectors, *key), value
        return value

    def split_scores(self, tower: Tower, user_vectors: Tensor, item_vectors: Tensor,
                     start: int) -> list[Tensor]:
        """Run ``tower`` over every (user, item) pair: ``(b, chunk, outputs)`` per item chunk.

        The tower reads ``[user columns; item columns]`` from column ``start`` of each
        side. ``W [u; i] = W_u u + W_i i``: one product per side (the item side cached)
        and a broadcast add, in item chunks within :data:`PAIR_BUDGET`.
        """
        first = tower.layer(0)
        half = first.weight.shape[1] // 2
        user_part = user_vectors[:, start:start + half] @ first.weight[:, :half].t()  # (b, w_1)
        item_part = self.get(first, item_vectors, start)  # (n, width_1)
        chunk = max(1, PAIR_BUDGET // max(user_part.numel(), 1))
        return [tower.finish(user_part.unsqueeze(1) + item_part[s:s + chunk])
                for s in range(0, item_part.shape[0], chunk)]


def check_tower(hidden: Sequence[int], activation: str, *, nonempty: bool = False) -> None:
    """Validate a config's tower fields: hidden widths >= 1 (at least one if ``nonempty``).

    Raises:
        ConfigError: naming the field, its value and the constraint.
    """
    need = "needs at least one layer, each of width >= 1" if nonempty else "widths must be >= 1"
    require((bool(hidden) or not nonempty) and all(w >= 1 for w in hidden), "hidden", hidden,
            need)
    require_choice("activation", activation, ACTIVATIONS)


def _version(tensor: Tensor) -> int:
    return -1 if tensor.is_inference() else int(tensor._version)


def grad_of(parameter: Tensor) -> Tensor:
    """Return ``parameter.grad``, which the hand-written training steps add into.

    Raises:
        ValueError: if the parameter has no gradient buffer yet.
    """
    if parameter.grad is None:
        raise ValueError("a hand-written training step needs every parameter's .grad buffer; "
                         "set them (e.g. to zeros) before building the step")
    return parameter.grad
