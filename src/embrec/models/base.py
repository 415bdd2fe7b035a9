"""The contract every rating model meets, so one fit loop and one recommender serve them all.

A model splits into three parts: the per-user vector, the per-item vector, and
a ``score`` that turns a (user vector, item vector) pair into a rating. That
split is what lets the recommender score a block of users against the whole
catalogue, fold a new user in with the item side frozen, and find similar
items, without knowing which model it holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import Tensor, nn

__all__ = ["EmbeddingModel", "ModelConfig", "RatingModel", "row_decay"]

C = TypeVar("C", bound="ModelConfig")


class RatingModel(nn.Module, ABC):
    """Predicts ratings for (user, item) index pairs.

    Subclasses define :meth:`user_vectors`, :meth:`item_vectors` and
    :meth:`score`; :meth:`score_matrix` and :meth:`item_factors` have generic
    defaults that a model may override with something faster.

    Args:
        n_users: number of users (rows of the user embedding).
        n_items: number of items (rows of the item embedding).
    """

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items

    @abstractmethod
    def user_vectors(self, user: Tensor) -> Tensor:
        """Return every per-user parameter for ``user`` indices: ``(batch, user_dim)``."""

    @abstractmethod
    def item_vectors(self, item: Tensor) -> Tensor:
        """Return every per-item parameter for ``item`` indices: ``(batch, item_dim)``."""

    @abstractmethod
    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score aligned rows of user and item vectors: ``(batch,)`` predicted ratings."""

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        """Predict ratings for aligned ``user`` and ``item`` index tensors: ``(batch,)``."""
        return self.score(self.user_vectors(user), self.item_vectors(item))

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score every user against every item: ``(n_users_block, n_items_block)``.

        The default expands the pairs and calls :meth:`score`; dot-product
        models override it with one matrix product.
        """
        n_u, n_i = user_vectors.shape[0], item_vectors.shape[0]
        users = user_vectors.unsqueeze(1).expand(n_u, n_i, -1).reshape(n_u * n_i, -1)
        items = item_vectors.unsqueeze(0).expand(n_u, n_i, -1).reshape(n_u * n_i, -1)
        return self.score(users, items).reshape(n_u, n_i)

    def item_factors(self) -> Tensor:
        """Return the vectors used for item-item similarity: ``(n_items, dim)``."""
        all_items = torch.arange(self.n_items, device=self._device())
        return self.item_vectors(all_items)

    def _device(self) -> torch.device:
        return next(self.parameters()).device



class EmbeddingModel(RatingModel):
    """A rating model whose user and item vectors are rows of one embedding table per side.

    Every registered model is one; it differs only in what ``score`` does with
    the rows (and in how it initialises them).

    Args:
        n_users: rows of ``user_embedding``.
        n_items: rows of ``item_embedding``.
        width: columns of both tables.

    Attributes:
        bias_columns: how many trailing columns of each row are biases rather than
            factors (regularised by ``bias_weight_decay`` instead of ``weight_decay``).
    """

    bias_columns: int = 0

    def __init__(self, n_users: int, n_items: int, width: int) -> None:
        super().__init__(n_users, n_items)
        # uninitialised: every model draws its tables itself (models/init.py), so torch's
        # own N(0, 1) draw would be wasted work
        self.user_embedding = nn.Embedding(n_users, width, _weight=torch.empty(n_users, width))
        self.item_embedding = nn.Embedding(n_items, width, _weight=torch.empty(n_items, width))

    def user_vectors(self, user: Tensor) -> Tensor:
        """Return the users' embedding rows: ``(batch, width)``."""
        vectors: Tensor = self.user_embedding(user)
        return vectors

    def item_vectors(self, item: Tensor) -> Tensor:
        """Return the items' embedding rows: ``(batch, width)``."""
        vectors: Tensor = self.item_embedding(item)
        return vectors

    def factors(self, vectors: Tensor) -> Tensor:
        """Return ``vectors`` without their trailing bias columns: ``(batch, width - bias)``."""
        return vectors[:, :vectors.shape[1] - self.bias_columns]

    def plus_biases(self, z: Tensor, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Add the user and item bias columns (when the rows have one) to raw scores ``z``.

        Args:
            z: ``(batch,)`` scores of aligned pairs, or a ``(b, n)`` block of every
                user against every item.
            user_vectors: ``(batch or b, width)`` user rows.
            item_vectors: ``(batch or n, width)`` item rows.

        Returns:
            ``z`` plus the biases, the shape of ``z``.
        """
        if not self.bias_columns:
            return z
        if z.dim() == 1:
            return z + user_vectors[:, -1] + item_vectors[:, -1]
        return z + user_vectors[:, -1:] + item_vectors[:, -1]

    def zero_biases(self) -> None:
        """Start every bias column at zero (after the factors are initialised)."""
        if self.bias_columns:
            with torch.no_grad():
                for table in (self.user_embedding, self.item_embedding):
                    table.weight[:, -self.bias_columns:].zero_()

    def item_factors(self) -> Tensor:
        """Return the item rows without bias columns: ``(n_items, width - bias_columns)``."""
        return self.factors(self.item_embedding.weight)

def row_decay(u: Tensor, i: Tensor, grad_u: Tensor, grad_i: Tensor, grad: Tensor, d: int,
              weight_decay: float, bias_weight_decay: float) -> None:
    """Finish hand-written row gradients in place: bias columns and the L2 penalty.

    Args:
        u: ``(batch, width)`` user rows; columns from ``d`` on are a bias.
        i: ``(batch, width)`` item rows.
        grad_u: their gradients, factor columns filled, bias column to fill.
        grad_i: likewise for the items.
        grad: ``(batch,)`` loss gradient of the raw score (the biases' gradient).
        d: number of factor columns.
        weight_decay: L2 on the factors, per use (see :mod:`embrec.training.step`).
        bias_weight_decay: L2 on the bias column.
    """
    n = len(grad)
    if u.shape[1] > d:
        grad_u[:, d].copy_(grad)
        grad_i[:, d].copy_(grad)
        if bias_weight_decay > 0:
            grad_u[:, d].add_(u[:, d], alpha=2.0 * bias_weight_decay / n)
            grad_i[:, d].add_(i[:, d], alpha=2.0 * bias_weight_decay / n)
    if weight_decay > 0:
        grad_u[:, :d].add_(u[:, :d], alpha=2.0 * weight_decay / n)
        grad_i[:, :d].add_(i[:, :d], alpha=2.0 * weight_decay / n)


class ModelConfig(Protocol):
    """What every model config offers: a registry name, ``build`` and a JSON round trip."""

    name: ClassVar[str]

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float],
              mean: float) -> RatingModel:
        """Create the untrained model for a data set.

        Args:
            n_users: number of users in the training data.
            n_items: number of items in the training data.
            scale: the rating scale, used when the config bounds outputs to it.
            mean: the training mean rating, used to initialise a global bias.
        """
        ...

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict."""
        ...

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Build the config from a dict, rejecting unknown keys."""
        ...
