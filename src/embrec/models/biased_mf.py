"""Biased matrix factorisation: global mean + user bias + item bias + user·item (Koren 2009).

The classical strong baseline (Surprise's ``SVD``, fastai's ``EmbeddingDotBias``).
Each user's row holds its factors with its bias in the last column, and so does
each item's, so ``user_vectors`` is one lookup and ``score_matrix`` is one
matrix product plus two broadcast adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from embrec.config import JsonConfig
from embrec.models.base import EmbeddingModel
from embrec.models.fastpath import HandStep, add_decay, output_and_gradient
from embrec.models.init import bound, check_embedding, logit, output_bounds
from embrec.models.tower import grad_of

__all__ = ["BiasedMF", "BiasedMFConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BiasedMFConfig(JsonConfig):
    """Global mean, user and item biases and a dot product of factors.

    Attributes:
        embedding_dim: number of latent factors per user and item.
        bounded: squash outputs into the (slightly widened) rating scale.
        init: ``normal`` (factors N(0, init_std²)) or ``keras`` (uniform ±0.05);
            biases start at zero and the global bias at the mean rating.
        init_std: factor standard deviation for ``init="normal"``.
    """

    name: ClassVar[str] = "biased-mf"
    embedding_dim: int = 32
    bounded: bool = False
    init: str = "normal"
    init_std: float = 0.01

    def __post_init__(self) -> None:
        check_embedding(self.embedding_dim, self.init, self.init_std)

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> BiasedMF:
        """Create the untrained model (``scale`` bounds it; the global bias starts at ``mean``)."""
        return BiasedMF(n_users, n_items, self, scale, mean)


class BiasedMF(EmbeddingModel):
    """``mean + b_u + b_i + p_u · q_i``; rows are ``[factors, bias]``."""

    def __init__(self, n_users: int, n_items: int, config: BiasedMFConfig,
                 scale: tuple[float, float], mean: float) -> None:
        super().__init__(n_users, n_items, config.embedding_dim, biases=True)
        bounds = output_bounds(scale) if config.bounded else None
        start = mean if bounds is None else logit((mean - bounds[0]) / bounds[1])
        self.global_bias = nn.Parameter(torch.tensor([float(start)]))
        self.init_weights(config, scale, mean)

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Predict ratings for aligned rows: ``(batch,)``."""
        dot = (user_vectors[:, :-1] * item_vectors[:, :-1]).sum(1)  # (batch,)
        z = dot + user_vectors[:, -1] + item_vectors[:, -1] + self.global_bias
        return bound(z, self.bounds)

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score every user against every item with one matrix product: ``(b, n)``."""
        biases = user_vectors[:, -1:] + item_vectors[:, -1] + self.global_bias  # (b, n)
        z = torch.addmm(biases, user_vectors[:, :-1], item_vectors[:, :-1].t())
        return bound(z, self.bounds)

    def rating_kernel(self) -> tuple[Any, tuple[float, float] | None]:
        """Return the compiled per-rating trainer (:mod:`embrec.kernels.dot`) and the bounds.

        Imported on first use, so models load without compiling anything.
        """
        from embrec.kernels.dot import biased_mf

        return biased_mf, self.bounds

    def gradient_step(self, weight_decay: float, bias_weight_decay: float) -> HandStep:
        """Return the hand-written rating step (:class:`~embrec.models.base.HandStepModel`)."""
        users, items = self.user_embedding.weight.detach(), self.item_embedding.weight.detach()
        mean, mean_grad, bounds = self.global_bias.detach(), grad_of(self.global_bias), self.bounds

        def step(user: Tensor, item: Tensor, rating: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            u = users.index_select(0, user)  # (batch, embedding_dim + 1)
            i = items.index_select(0, item)  # (batch, embedding_dim + 1)
            product = u * i
            product[:, -1] = u[:, -1] + i[:, -1] + mean
            prediction, grad = output_and_gradient(product.sum(1), rating, bounds)
            column = grad.unsqueeze(1)  # (batch, 1)
            grad_u, grad_i = i * column, u * column
            grad_u[:, -1] = grad
            grad_i[:, -1] = grad
            add_decay(grad_u, u, 1, weight_decay, bias_weight_decay, len(rating))
            add_decay(grad_i, i, 1, weight_decay, bias_weight_decay, len(rating))
            mean_grad.add_(grad.sum())
            return prediction, grad_u, grad_i

        return step
