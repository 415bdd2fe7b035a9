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

from embrec.config import JsonConfig, require, require_choice
from embrec.models.base import EmbeddingModel
from embrec.models.init import INITS, init_embedding, logit, output_bounds
from embrec.models.mlp import HandStep, bound, grad_of, output_and_gradient

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
        require(self.embedding_dim >= 1, "embedding_dim", self.embedding_dim, "must be >= 1")
        require_choice("init", self.init, INITS)
        require(self.init_std > 0, "init_std", self.init_std, "must be > 0")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> BiasedMF:
        """Create the untrained model.

        Args:
            n_users: number of users.
            n_items: number of items.
            scale: rating scale, used when ``bounded``.
            mean: training mean rating, the global bias's starting value.

        Returns:
            The model.
        """
        return BiasedMF(n_users, n_items, self, scale, mean)


class BiasedMF(EmbeddingModel):
    """``mean + b_u + b_i + p_u · q_i``; rows are ``[factors, bias]``."""

    bias_columns = 1

    def __init__(self, n_users: int, n_items: int, config: BiasedMFConfig,
                 scale: tuple[float, float], mean: float) -> None:
        dim = config.embedding_dim
        super().__init__(n_users, n_items, dim + 1)  # rows are [factors, bias]
        self.bounds = output_bounds(scale) if config.bounded else None
        start = mean if self.bounds is None else logit((mean - self.bounds[0]) / self.bounds[1])
        self.global_bias = nn.Parameter(torch.tensor([float(start)]))
        for table in (self.user_embedding, self.item_embedding):
            init_embedding(table.weight, config.init, config.init_std)
            with torch.no_grad():
                table.weight[:, dim].zero_()

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

    def item_factors(self) -> Tensor:
        """Return the item factors without the bias column: ``(n_items, embedding_dim)``."""
        return self.item_embedding.weight[:, :-1]

    def rating_kernel(self) -> tuple[Any, tuple[float, float] | None]:
        """Return the compiled per-rating trainer (:mod:`embrec.kernels.dot`) and the bounds.

        Imported on first use, so models load without compiling anything.
        """
        from embrec.kernels.dot import biased_mf

        return biased_mf, self.bounds

    def gradient_step(self, weight_decay: float, bias_weight_decay: float) -> HandStep:
        """Return the hand-written rating step: forward and MSE + L2 gradients, no autograd.

        The step ``(user, item, rating) -> (predictions, user row gradients, item
        row gradients)`` computes what :func:`embrec.training.step.autograd_step`
        does for the rating loss, adding the global bias's gradient to its ``.grad``;
        call it under ``torch.no_grad()``.
        """
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
            n = len(rating)
            if weight_decay > 0:
                grad_u[:, :-1].add_(u[:, :-1], alpha=2.0 * weight_decay / n)
                grad_i[:, :-1].add_(i[:, :-1], alpha=2.0 * weight_decay / n)
            if bias_weight_decay > 0:
                grad_u[:, -1].add_(u[:, -1], alpha=2.0 * bias_weight_decay / n)
                grad_i[:, -1].add_(i[:, -1], alpha=2.0 * bias_weight_decay / n)
            mean_grad.add_(grad.sum())
            return prediction, grad_u, grad_i

        return step
