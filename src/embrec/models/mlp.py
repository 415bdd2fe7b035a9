"""MLP: concatenated user and item embeddings fed through a dense tower (the MovieLens notebook).

``MLPConfig(embedding_dim=50, hidden=(70,), dropout=(0.3, 0.75))`` is the
notebook's network: embeddings of 50, concatenated, dropout 0.3, Dense(70, relu),
dropout 0.75, Dense(1). ``dropout[k]`` is applied to the input of dense layer
``k``, so ``dropout[0]`` acts on the concatenation and ``dropout[-1]`` just
before the output layer.
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
from embrec.models.tower import ItemHalfCache, Tower, check_tower

__all__ = ["MLP", "MLPConfig"]


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
            trailing column of each embedding row). Defaults chosen by
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
        check_embedding(self.embedding_dim, self.init, self.init_std)
        check_tower(self.hidden, self.activation)
        require(len(self.dropout) == len(self.hidden) + 1, "dropout", self.dropout,
                f"needs one rate per dense layer ({len(self.hidden) + 1} for hidden={self.hidden})")
        require(all(0 <= p < 1 for p in self.dropout), "dropout", self.dropout,
                "rates must be in [0, 1)")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> MLP:
        """The untrained network (``scale`` bounds it; ``init="normal"`` starts at ``mean``)."""
        return MLP(n_users, n_items, self, scale, mean)


class MLP(EmbeddingModel):
    """Concatenated embeddings -> dense tower -> one output."""

    def __init__(self, n_users: int, n_items: int, config: MLPConfig,
                 scale: tuple[float, float], mean: float) -> None:
        dim = config.embedding_dim
        super().__init__(n_users, n_items, dim, biases=config.biases)
        self.tower = Tower((2 * dim, *config.hidden, 1), config.dropout, config.activation)
        self.init_weights(config, scale, mean, self.tower.layers, start=config.init == "normal")
        self.item_half = ItemHalfCache()

    @property
    def concat_tower(self) -> Tower:
        """The tower over ``[user factors; item factors]`` (a ``ConcatTowerModel``)."""
        return self.tower

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Predict ratings for aligned rows: ``(batch,)``."""
        x = torch.cat((self.factors(user_vectors), self.factors(item_vectors)), 1)  # (b, 2d)
        z = self.plus_biases(self.tower(x).squeeze(1), user_vectors, item_vectors)
        return bound(z, self.bounds)

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score every user against every item, the first layer split per side: ``(b, n)``."""
        blocks = self.item_half.split_scores(self.tower, user_vectors, item_vectors, 0)
        z = self.plus_biases(torch.cat(blocks, 1).squeeze(2), user_vectors, item_vectors)
        return bound(z, self.bounds)

    def gradient_step(self, weight_decay: float, bias_weight_decay: float) -> HandStep:
        """Return the hand-written rating step (:class:`~embrec.models.base.HandStepModel`)."""
        return tower_gradient_step(self, self.tower, self.bounds, _join, _split, weight_decay,
                                   bias_weight_decay)


def _join(u: Tensor, i: Tensor) -> Tensor:
    return torch.cat((u, i), 1)  # (batch, 2 * embedding_dim)


def _split(grad_x: Tensor, u: Tensor, i: Tensor, grad_u: Tensor, grad_i: Tensor) -> None:
    grad_u.copy_(grad_x[:, :u.shape[1]])
    grad_i.copy_(grad_x[:, u.shape[1]:])
