"""Most popular: every user gets the same ranking, by rating count or by damped mean rating.

The yardstick for top-N: a model worth serving should beat it. Each item holds
one number, its popularity score; a user's vector is the constant ``1``, so
``score = 1 * popularity`` and the recommender's generic top-N, fold-in and
seen-item exclusion work unchanged. The score ranks items; it is not a rating.
Fitted in closed form by :meth:`Popular.solve`, never by gradient steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from embrec.config import JsonConfig, require, require_choice
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models.base import DotModel

__all__ = ["Popular", "PopularConfig", "popularity"]

RANKINGS = ("count", "mean")


@dataclass(frozen=True, kw_only=True, slots=True)
class PopularConfig(JsonConfig):
    """Rank items by how many users rated them, or by their damped mean rating.

    Attributes:
        by: ``count`` (number of training ratings) or ``mean`` (Bayesian
            average: ``(sum of ratings + damping * global mean) / (count + damping)``).
        damping: pseudo-ratings at the global mean added to each item's mean
            (``by="mean"`` only); 0 ranks by the raw mean, which puts items
            with one 5-star rating first.
    """

    name: ClassVar[str] = "popular"
    closed_form: ClassVar[bool] = True
    scores: ClassVar[str] = "ranking"
    by: str = "count"
    damping: float = 10.0

    def __post_init__(self) -> None:
        require_choice("by", self.by, RANKINGS)
        require(self.damping >= 0, "damping", self.damping, "must be >= 0")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> Popular:
        """Create the unfitted model, every score 0 (``scale`` and ``mean`` unused)."""
        return Popular(n_users, n_items, self)


def popularity(train: Ratings, by: str = "count", damping: float = 10.0) -> np.ndarray:
    """Return each item's popularity score by item index, ``(n_items,)`` float64
    (``by`` and ``damping`` as in :class:`PopularConfig`)."""
    counts = np.bincount(train.item, minlength=train.n_items).astype(np.float64)
    if by == "count":
        return counts
    sums = np.bincount(train.item, weights=train.rating.astype(np.float64),
                       minlength=train.n_items)
    mean = float(train.rating.mean()) if len(train) else 0.0
    denominator = counts + damping
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, (sums + damping * mean) / safe, mean)


class Popular(DotModel):
    """``score(user, item) = popularity[item]``; user vectors are the constant 1."""

    def __init__(self, n_users: int, n_items: int, config: PopularConfig) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        # a parameter (never trained) so the model has a device and a state dict
        self.popularity = nn.Parameter(torch.zeros(n_items), requires_grad=False)

    def solve(self, train: Ratings) -> None:
        """Fit the scores to ``train`` in closed form (indices must match the model's)."""
        scores = popularity(train, self.config.by, self.config.damping)
        with torch.no_grad():
            self.popularity.copy_(torch.as_tensor(scores, dtype=torch.float32))

    def user_vectors(self, user: Tensor) -> Tensor:
        """Return ones: ``(batch, 1)``; every user ranks alike."""
        return torch.ones(user.shape[0], 1, device=self.popularity.device)

    def item_vectors(self, item: Tensor) -> Tensor:
        """Return the items' popularity scores: ``(batch, 1)``."""
        return self.popularity[item].unsqueeze(1)

    def item_factors(self) -> Tensor:
        """Refuse: one popularity number per item says nothing about which items are alike.

        Raises:
            ConfigError: always.
        """
        raise ConfigError("model", "popular", "has no item similarity (it ranks every item "
                          "by one popularity number)",
                          hint="use 'ease' or an embedding model such as 'biased-mf' for "
                          "similar items")

    def history_vector(self, items: np.ndarray, ratings: np.ndarray) -> Tensor:
        """The fold-in user vector for a new user: the constant 1, ``(1, 1)``."""
        return torch.ones(1, 1, device=self.popularity.device)
