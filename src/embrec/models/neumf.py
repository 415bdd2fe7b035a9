"""NeuMF: a GMF tower and an MLP tower side by side, fused by one output layer (He et al. 2017).

He et al. fuse the two towers for implicit feedback with a sigmoid output and
log loss; here the fused layer predicts an explicit rating under squared error
(optionally bounded to the scale). Each tower has its own embeddings, so a
user's vector is ``[gmf factors, mlp factors]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from embrec.config import JsonConfig, require
from embrec.models.base import EmbeddingModel
from embrec.models.init import bound, check_embedding
from embrec.models.tower import ItemHalfCache, Tower, check_tower

__all__ = ["NeuMF", "NeuMFConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class NeuMFConfig(JsonConfig):
    """Fused GMF and MLP towers.

    Attributes:
        embedding_dim: GMF embedding size (the element-wise product's width).
        mlp_embedding_dim: MLP embedding size per side.
        hidden: widths of the MLP tower's layers (at least one).
        activation: the MLP tower's activation: ``relu``, ``tanh`` or ``linear``.
        dropout: dropout rate on the input of each MLP tower layer.
        bounded: squash outputs into the (slightly widened) rating scale.
        init: ``normal`` or ``keras`` (see :mod:`embrec.models.init`).
        init_std: embedding standard deviation for ``init="normal"``.
        biases: add a learned bias per user and per item to the fused output (a
            trailing column of each embedding row).

    The defaults (dropout 0.2, biases) were chosen by measurement on ML-100K
    (``benchmarks/results/neural.md``).
    """

    name: ClassVar[str] = "neumf"
    embedding_dim: int = 16
    mlp_embedding_dim: int = 32
    hidden: tuple[int, ...] = (64, 32, 16)
    activation: str = "relu"
    dropout: float = 0.2
    bounded: bool = True
    init: str = "normal"
    init_std: float = 0.05
    biases: bool = True

    def __post_init__(self) -> None:
        check_embedding(self.embedding_dim, self.init, self.init_std)
        require(self.mlp_embedding_dim >= 1, "mlp_embedding_dim", self.mlp_embedding_dim,
                "must be >= 1")
        check_tower(self.hidden, self.activation, nonempty=True)
        require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> NeuMF:
        """Create the untrained network (``scale`` bounds it; the output starts at ``mean``)."""
        return NeuMF(n_users, n_items, self, scale, mean)


class NeuMF(EmbeddingModel):
    """``out([p_u ⊙ q_i, mlp([p'_u; q'_i])])`` with separate GMF and MLP embeddings."""

    def __init__(self, n_users: int, n_items: int, config: NeuMFConfig,
                 scale: tuple[float, float], mean: float) -> None:
        width = config.embedding_dim + config.mlp_embedding_dim
        super().__init__(n_users, n_items, width, biases=config.biases)  # rows: [gmf, mlp, bias]
        self.gmf_dim = config.embedding_dim
        self.tower = Tower((2 * config.mlp_embedding_dim, *config.hidden),
                           (config.dropout,) * len(config.hidden), config.activation,
                           activate_last=True)
        self.output = nn.Linear(config.embedding_dim + config.hidden[-1], 1)
        self.init_weights(config, scale, mean, (*self.tower.layers, self.output))
        self.item_half = ItemHalfCache()

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Predict ratings for aligned rows: ``(batch,)``."""
        g, u, i = self.gmf_dim, self.factors(user_vectors), self.factors(item_vectors)
        gmf = u[:, :g] * i[:, :g]  # (batch, embedding_dim)
        mlp = self.tower(torch.cat((u[:, g:], i[:, g:]), 1))  # (batch, h)
        z = self.output(torch.cat((gmf, mlp), 1)).squeeze(1)
        return bound(self.plus_biases(z, user_vectors, item_vectors), self.bounds)

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score every user against every item: one product for GMF, a split first layer for
        MLP: ``(b, n)``."""
        g = self.gmf_dim
        weight = self.output.weight[0]  # (embedding_dim + h,)
        gmf = (user_vectors[:, :g] * weight[:g]) @ item_vectors[:, :g].t()  # (b, n)
        blocks = self.item_half.split_scores(self.tower, user_vectors, item_vectors, g)
        mlp = torch.cat([block @ weight[g:] for block in blocks], 1)  # (b, n)
        z = self.plus_biases(gmf + mlp + self.output.bias, user_vectors, item_vectors)
        return bound(z, self.bounds)
