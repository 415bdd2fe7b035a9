"""GMF: element-wise product of user and item embeddings, then a dense head (Goodreads notebook).

``GMFConfig(embedding_dim=99, hidden=(1,), activation="relu", dropout=0.2)`` is
the notebook's network: embeddings of 99, multiplied element-wise, dropout 0.2,
Dense(1, relu), Dense(1). With ``hidden=()`` the head is a single weighted sum,
He et al.'s generalised matrix factorisation. Beware the notebook's one-unit
ReLU: once its input turns negative for every pair the unit is dead and the
model predicts one constant; the training diagnostics report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from embrec.config import JsonConfig, require
from embrec.models.base import EmbeddingModel
from embrec.models.fastpath import HandStep, tower_gradient_step
from embrec.models.init import bound, check_embedding
from embrec.models.tower import PAIR_BUDGET, Tower, check_tower

__all__ = ["GMF", "GMFConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class GMFConfig(JsonConfig):
    """Element-wise product of embeddings, then dense layers.

    Attributes:
        embedding_dim: size of each user and item embedding.
        hidden: widths of the dense layers between the product and the output.
        activation: their activation: ``relu``, ``tanh`` or ``linear``.
        dropout: dropout rate on the product.
        bounded: squash outputs into the (slightly widened) rating scale.
        init: ``keras`` or ``normal`` (see :mod:`embrec.models.init`).
        init_std: embedding standard deviation for ``init="normal"``.
        biases: add a learned bias per user and per item to the output (a
            trailing column of each embedding row, as in biased MF).

    The defaults (``hidden=()``: He et al.'s GMF plus biases) were chosen by
    measurement (``benchmarks/results/neural.md``); the Goodreads notebook's
    network is the ``goodreads-notebook`` preset.
    """

    name: ClassVar[str] = "gmf"
    embedding_dim: int = 32
    hidden: tuple[int, ...] = ()
    activation: str = "relu"
    dropout: float = 0.0
    bounded: bool = False
    init: str = "normal"
    init_std: float = 0.01
    biases: bool = True

    def __post_init__(self) -> None:
        check_embedding(self.embedding_dim, self.init, self.init_std)
        check_tower(self.hidden, self.activation)
        require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> GMF:
        """The untrained network (``scale`` bounds it; ``init="normal"`` starts at ``mean``)."""
        return GMF(n_users, n_items, self, scale, mean)


class GMF(EmbeddingModel):
    """User embedding ⊙ item embedding -> dropout -> dense layers -> one output."""

    def __init__(self, n_users: int, n_items: int, config: GMFConfig,
                 scale: tuple[float, float], mean: float) -> None:
        dim = config.embedding_dim
        super().__init__(n_users, n_items, dim, biases=config.biases)
        dropout = (config.dropout,) + (0.0,) * len(config.hidden)
        self.tower = Tower((dim, *config.hidden, 1), dropout, config.activation)
        self.init_weights(config, scale, mean, self.tower.layers, start=config.init == "normal")

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Predict ratings for aligned rows: ``(batch,)``."""
        product = self.factors(user_vectors) * self.factors(item_vectors)  # (batch, dim)
        z = self.plus_biases(self.tower(product).squeeze(1), user_vectors, item_vectors)
        return bound(z, self.bounds)

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score every user against every item with matrix products: ``(b, n)``.

        The first layer's unit ``h`` sees ``sum_d u_d i_d W_hd``, which is
        ``(u * W_h) @ i.T``: one ``(b * width, dim) @ (dim, n)`` product.
        """
        first = self.tower.layer(0)
        b, n = user_vectors.shape[0], item_vectors.shape[0]
        width = first.weight.shape[0]
        scaled = self.factors(user_vectors).unsqueeze(1) * first.weight.unsqueeze(0)  # (b, w, d)
        factors = self.factors(item_vectors)
        chunk = max(1, PAIR_BUDGET // max(b * width, 1))
        blocks = []
        for start in range(0, n, chunk):
            items = factors[start:start + chunk]
            z = (scaled.reshape(b * width, -1) @ items.t()).reshape(b, width, -1)  # (b, width, n)
            blocks.append(self.tower.finish(z.transpose(1, 2) + first.bias))  # (b, chunk, 1)
        z = self.plus_biases(torch.cat(blocks, 1).squeeze(2), user_vectors, item_vectors)
        return bound(z, self.bounds)

    def gradient_step(self, weight_decay: float, bias_weight_decay: float) -> HandStep:
        """Return the hand-written rating step (:class:`~embrec.models.base.HandStepModel`)."""
        return tower_gradient_step(self, self.tower, self.bounds, torch.mul, _split,
                                   weight_decay, bias_weight_decay)


def _split(grad_product: Tensor, u: Tensor, i: Tensor, grad_u: Tensor, grad_i: Tensor) -> None:
    torch.mul(grad_product, i, out=grad_u)
    torch.mul(grad_product, u, out=grad_i)
