"""MLP: concatenated user and item embeddings fed through a dense tower (the MovieLens notebook).

``MLPConfig(embedding_dim=50, hidden=(70,), dropout=(0.3, 0.75))`` is the
notebook's network: embeddings of 50, concatenated, dropout 0.3, Dense(70, relu),
dropout 0.75, Dense(1). ``dropout[k]`` is applied to the input of dense layer
``k``, so ``dropout[0]`` acts on the concatenation and ``dropout[-1]`` just
before the output layer.

The dense :class:`Tower` also serves GMF and NeuMF. Besides its autograd
``forward`` it has a hand-written forward/backward pair used by the training
loop: for these small networks, autograd's bookkeeping costs more than the
arithmetic. Both paths draw the same dropout masks from the same generator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from embrec.config import JsonConfig, require, require_choice
from embrec.models.base import EmbeddingModel, row_decay
from embrec.models.init import INITS, init_dense, init_embedding, output_bounds, start_output

__all__ = ["ACTIVATIONS", "MLP", "DropoutMasks", "HandStep", "ItemHalfCache", "MLPConfig", "Tower",
           "TowerStep", "dropout_mask", "grad_of"]

ACTIVATIONS = ("relu", "tanh", "linear")
PAIR_BUDGET = 1 << 20
"""Most (user, item, hidden) entries ``score_matrix`` builds at once: a block that stays in
cache, where a whole-catalogue block would pay for fresh pages."""

Saved = list[tuple[Tensor, Tensor | None, Tensor]]
"""Per dense layer: its input after dropout, the dropout mask, and its output."""

HandStep = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
"""A hand-written rating step: ``(user, item, rating) -> (predictions, user row gradients,
item row gradients)``, adding the dense layers' gradients into their ``.grad``."""


def dropout_mask(shape: tuple[int, int], rate: float, like: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
    """Return an inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``.

    Four 16-bit draws come from each 64-bit random word of torch's default
    generator, 4x fewer generator calls than ``torch.rand``; ``rate`` is
    honoured to 1/65536.

    Args:
        shape: ``(rows, columns)`` of the mask.
        rate: probability of dropping an entry, in [0, 1).
        like: a tensor whose device and dtype the mask takes.
        generator: the random generator (torch's default when ``None``).

    Returns:
        The mask, ``shape``.
    """
    count = shape[0] * shape[1]
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=like.device)
    words.random_(-(2**63), None, generator=generator)
    bits = words.view(torch.int16)[:count].view(shape)
    # keep where bits >= threshold, P = 1 - rate, in float arithmetic (one pass, no bool
    # cast): integers sit 0.5 away from the half-integer cut, so the clamp gives 0 or 0.5
    cut = round(rate * 65536) - 32768 - 0.5
    half = bits.to(like.dtype).sub_(cut).clamp_(0.0, 0.5)
    return half.mul_(2.0 / (1.0 - rate))


class DropoutMasks:
    """One layer's dropout masks, drawn ``BLOCK`` entries at a time and handed out in order.

    Drawing a block for many batches at once turns four small tensor ops per
    batch into one slice; the draws come from the generator given to
    :meth:`reset` (``fit`` passes its seeded one), else torch's default.

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
        self.masks = [DropoutMasks(rate) if rate > 0 else None for rate in self.dropout]
        self.activation = activation
        self.activate_last = activate_last

    def layer(self, k: int) -> nn.Linear:
        """Return dense layer ``k`` (typed)."""
        return cast(nn.Linear, self.layers[k])

    def reset_masks(self, generator: torch.Generator | None = None) -> None:
        """Forget pre-drawn dropout masks and draw later ones from ``generator``."""
        for masks in self.masks:
            if masks is not None:
                masks.reset(generator)

    def _activates(self, k: int) -> bool:
        return self.activation != "linear" and (k < len(self.layers) - 1 or self.activate_last)

    def _activate(self, z: Tensor, in_place: bool = False) -> Tensor:
        if in_place:
            return z.relu_() if self.activation == "relu" else z.tanh_()
        return z.relu() if self.activation == "relu" else z.tanh()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the tower with autograd: ``(batch, inputs) -> (batch, outputs)``."""
        for k, layer in enumerate(self.layers):
            masks = self.masks[k]
            if self.training and masks is not None:
                x = x * masks.take(x)
            x = layer(x)
            if self._activates(k):
                x = self._activate(x)
        return x

    def hidden_outputs(self, x: Tensor) -> list[Tensor]:
        """Return the output of every activated layer, in eval mode (for diagnostics).

        Args:
            x: ``(batch, inputs)`` tower inputs.

        Returns:
            One ``(batch, width)`` tensor per layer followed by the activation.
        """
        outputs = []
        for k in range(len(self.layers)):
            x = self.layer(k)(x)
            if self._activates(k):
                x = self._activate(x)
                outputs.append(x)
        return outputs

    def finish(self, z: Tensor) -> Tensor:
        """Apply everything after the first layer's affine map, in eval mode.

        Args:
            z: ``(..., width_1)`` outputs of the first layer before its activation.

        Returns:
            ``(..., outputs)`` tower outputs.
        """
        in_place = not torch.is_grad_enabled()  # z is always a fresh tensor here
        if self._activates(0):
            z = self._activate(z, in_place)
        for k in range(1, len(self.layers)):
            z = self.layers[k](z)
            if self._activates(k):
                z = self._activate(z, in_place)
        return z


class TowerStep:
    """A tower's hand-written training forward and backward, its tensors looked up once.

    Built at the start of training, after the parameters have their final
    storage and ``.grad`` buffers, so a batch costs only tensor ops.

    Args:
        tower: the tower; every parameter must have a ``.grad``.
    """

    def __init__(self, tower: Tower) -> None:
        self.layers = []
        for k in range(len(tower.layers)):
            layer = tower.layer(k)
            activation = tower.activation if tower._activates(k) else None
            self.layers.append((layer.weight.detach(), layer.bias.detach(), grad_of(layer.weight),
                                grad_of(layer.bias), tower.masks[k], activation))

    def forward(self, x: Tensor) -> tuple[Tensor, Saved]:
        """Training-mode forward (dropout on) keeping what the backward needs.

        Args:
            x: ``(batch, inputs)``, without autograd.

        Returns:
            The ``(batch, outputs)`` output and the saved per-layer tensors.
        """
        saved: Saved = []
        for weight, bias, _, _, masks, activation in self.layers:
            mask = None if masks is None else masks.take(x)
            if mask is not None:
                x = x * mask  # (batch, layer inputs)
            z = torch.addmm(bias, x, weight.t())  # (batch, layer outputs)
            if activation is not None:
                z = z.clamp_min_(0.0) if activation == "relu" else z.tanh_()
            saved.append((x, mask, z))
            x = z
        return x, saved

    def backward(self, saved: Saved, grad: Tensor) -> Tensor:
        """Add the layers' gradients to their ``.grad`` and return the input gradient.

        Args:
            saved: what :meth:`forward` kept.
            grad: loss gradient with respect to the tower output, ``(batch, outputs)``.

        Returns:
            The loss gradient with respect to the tower input, ``(batch, inputs)``.
        """
        for (weight, _, weight_grad, bias_grad, _, activation), (x, mask, z) in zip(
                reversed(self.layers), reversed(saved), strict=True):
            if activation is not None:
                grad = _activation_backward(grad, z, activation)
            weight_grad.addmm_(grad.t(), x)
            bias_grad.add_(grad.sum(0))
            grad = grad @ weight  # (batch, layer inputs)
            if mask is not None:
                grad.mul_(mask)
        return grad


class ItemHalfCache:
    """The item half of a split first dense layer, ``W_i i + b``, kept between top-N calls.

    Top-N scores each user against the same catalogue tensor (the recommender
    caches it); with 60,000 items that half is 60,000 x 50 x 70 multiply-adds,
    most of a call. It is recomputed only when the item tensor or the layer
    changed: the cache holds the tensor itself (so identity is a safe key) and
    compares version counters, which in-place updates bump. Used without
    gradients only.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: Tensor | None = None

    def get(self, layer: nn.Linear, item_vectors: Tensor, start: int) -> Tensor:
        """Return ``item_vectors[:, start:start + half] @ W[:, half:].T + b``: ``(n, width_1)``."""
        half = layer.weight.shape[1] // 2
        if torch.is_grad_enabled():
            return torch.addmm(layer.bias, item_vectors[:, start:start + half],
                               layer.weight[:, half:].t())
        key = (start, _version(item_vectors), _version(layer.weight), _version(layer.bias))
        columns = item_vectors[:, start:start + half]
        if self._value is not None and self._key is not None and \
                self._key[0] is item_vectors and self._key[1:] == key:
            return self._value
        value = torch.addmm(layer.bias, columns, layer.weight[:, half:].t())
        self._key, self._value = (item_vectors, *key), value
        return value


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


def _activation_backward(grad: Tensor, output: Tensor, activation: str) -> Tensor:
    if activation == "relu":
        return grad.masked_fill_(output <= 0, 0.0)
    return grad * (1.0 - output * output)  # tanh


def output_and_gradient(z: Tensor, rating: Tensor,
                        bounds: tuple[float, float] | None) -> tuple[Tensor, Tensor]:
    """Map raw scores to predictions and return the mean squared error's gradient.

    Args:
        z: ``(batch,)`` raw scores.
        rating: ``(batch,)`` true ratings.
        bounds: ``(low, width)`` of a bounded output, or ``None``.

    Returns:
        ``(predictions, d loss / d z)``, both ``(batch,)``, for
        ``loss = mean((prediction - rating) ** 2)``.
    """
    scale = 2.0 / max(len(rating), 1)
    if bounds is None:
        return z, (z - rating).mul_(scale)
    low, width = bounds
    unit = torch.sigmoid(z)
    prediction = unit * width + low
    slope = unit * (1.0 - unit)
    return prediction, (prediction - rating).mul_(slope).mul_(scale * width)


def bound(z: Tensor, bounds: tuple[float, float] | None) -> Tensor:
    """Return ``low + width * sigmoid(z)`` for a bounded model, else ``z``."""
    return z if bounds is None else torch.sigmoid(z) * bounds[1] + bounds[0]


@dataclass(frozen=True, kw_only=True, slots=True)
class MLPConfig(JsonConfig):
    """An MLP over concatenated embeddings.

    Attributes:
        embedding_dim: size of each user and item embedding.
        hidden: widths of the hidden dense layers.
        dropout: dropout rate on the input of each dense layer: one per hidden
            layer plus one before the output layer.
        activation: hidden activation: ``relu``, ``tanh`` or ``linear``.
        bounded: squash outputs into the (slightly widened) rating scale.
        init: ``keras`` or ``normal`` (see :mod:`embrec.models.init`).
        init_std: embedding standard deviation for ``init="normal"``.
        biases: add a learned bias per user and per item to the output (a
            trailing column of each embedding row). The defaults were chosen by
            measurement (``benchmarks/results/neural.md``); the MovieLens
            notebook's network is the ``movielens-notebook`` preset.
    """

    name: ClassVar[str] = "mlp"
    embedding_dim: int = 32
    hidden: tuple[int, ...] = (64,)
    dropout: tuple[float, ...] = (0.0, 0.5)
    activation: str = "relu"
    bounded: bool = False
    init: str = "normal"
    init_std: float = 0.01
    biases: bool = True

    def __post_init__(self) -> None:
        require(self.embedding_dim >= 1, "embedding_dim", self.embedding_dim, "must be >= 1")
        require(all(w >= 1 for w in self.hidden), "hidden", self.hidden, "widths must be >= 1")
        require(len(self.dropout) == len(self.hidden) + 1, "dropout", self.dropout,
                f"needs one rate per dense layer ({len(self.hidden) + 1} for hidden={self.hidden})")
        require(all(0 <= p < 1 for p in self.dropout), "dropout", self.dropout,
                "rates must be in [0, 1)")
        require_choice("activation", self.activation, ACTIVATIONS)
        require_choice("init", self.init, INITS)
        require(self.init_std > 0, "init_std", self.init_std, "must be > 0")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> MLP:
        """Create the untrained network.

        Args:
            n_users: number of users.
            n_items: number of items.
            scale: rating scale, used when ``bounded``.
            mean: training mean rating: the output bias starts there with
                ``init="normal"`` (Keras, and so ``init="keras"``, starts it at zero).

        Returns:
            The model.
        """
        return MLP(n_users, n_items, self, scale, mean)


class MLP(EmbeddingModel):
    """Concatenated embeddings -> dense tower -> one output."""

    def __init__(self, n_users: int, n_items: int, config: MLPConfig,
                 scale: tuple[float, float], mean: float) -> None:
        dim = config.embedding_dim
        self.bias_columns = int(config.biases)
        super().__init__(n_users, n_items, dim + self.bias_columns)  # rows are [factors, bias]
        self.tower = Tower((2 * dim, *config.hidden, 1), config.dropout, config.activation)
        self.bounds = output_bounds(scale) if config.bounded else None
        for table in (self.user_embedding, self.item_embedding):
            init_embedding(table.weight, config.init, config.init_std)
        self.zero_biases()
        for k in range(len(self.tower.layers)):
            init_dense(self.tower.layer(k), config.init)
        if config.init == "normal":
            start_output(self.tower.layer(len(self.tower.layers) - 1), mean, self.bounds)
        self.item_half = ItemHalfCache()

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Predict ratings for aligned rows: ``(batch,)``."""
        x = torch.cat((self.factors(user_vectors), self.factors(item_vectors)), 1)  # (b, 2d)
        z = self.plus_biases(self.tower(x).squeeze(1), user_vectors, item_vectors)
        return bound(z, self.bounds)

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score every user against every item without building the pairs.

        The first dense layer splits, ``W [u; i] = W_u u + W_i i``, so it costs one
        product per side (the item side cached between calls) and a broadcast
        add; items go in chunks that keep the ``(users, items, width)`` block
        within :data:`PAIR_BUDGET`.

        Returns:
            ``(n_users_block, n_items_block)`` predictions.
        """
        first = self.tower.layer(0)
        dim = first.weight.shape[1] // 2
        user_part = user_vectors[:, :dim] @ first.weight[:, :dim].t()  # (b, width_1)
        item_part = self.item_half.get(first, item_vectors, 0)  # (n, width_1)
        chunk = max(1, PAIR_BUDGET // max(user_part.numel(), 1))
        blocks = [self.tower.finish(user_part.unsqueeze(1) + item_part[start:start + chunk])
                  for start in range(0, item_part.shape[0], chunk)]  # (b, chunk, 1) each
        z = self.plus_biases(torch.cat(blocks, 1).squeeze(2), user_vectors, item_vectors)
        return bound(z, self.bounds)

    def gradient_step(self, weight_decay: float, bias_weight_decay: float) -> HandStep:
        """Return the hand-written rating step: forward and MSE + L2 gradients, no autograd.

        The step ``(user, item, rating) -> (predictions, user row gradients, item
        row gradients)`` computes what :func:`embrec.training.step.autograd_step`
        does for the rating loss, adding the dense layers' gradients to their
        ``.grad``; call it under ``torch.no_grad()``.
        """
        users, items = self.user_embedding.weight.detach(), self.item_embedding.weight.detach()
        tower, bounds, biased = TowerStep(self.tower), self.bounds, self.bias_columns
        dim = users.shape[1] - biased

        def step(user: Tensor, item: Tensor, rating: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            if not biased:
                return plain(user, item, rating)
            u, i = users.index_select(0, user), items.index_select(0, item)  # (b, d + 1)
            z, saved = tower.forward(torch.cat((u[:, :dim], i[:, :dim]), 1))
            prediction, grad = output_and_gradient(z.squeeze(1) + u[:, dim] + i[:, dim],
                                                   rating, bounds)
            grad_x = tower.backward(saved, grad.unsqueeze(1))  # (batch, 2 * embedding_dim)
            grad_u, grad_i = torch.empty_like(u), torch.empty_like(i)
            grad_u[:, :dim], grad_i[:, :dim] = grad_x[:, :dim], grad_x[:, dim:]
            row_decay(u, i, grad_u, grad_i, grad, dim, weight_decay, bias_weight_decay)
            return prediction, grad_u, grad_i

        def plain(user: Tensor, item: Tensor, rating: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            x = torch.cat((users.index_select(0, user), items.index_select(0, item)), 1)  # (b, 2d)
            z, saved = tower.forward(x)
            prediction, grad = output_and_gradient(z.squeeze(1), rating, bounds)
            grad_x = tower.backward(saved, grad.unsqueeze(1))  # (batch, 2 * embedding_dim)
            if weight_decay > 0:
                grad_x.add_(x, alpha=2.0 * weight_decay / len(rating))
            return prediction, grad_x[:, :dim], grad_x[:, dim:]

        return step
