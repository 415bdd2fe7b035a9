"""EASE (Steck 2019): a closed-form item-item linear autoencoder, the strong top-N yardstick.

With ``X`` the user x item training matrix (1 where rated, or the rating),
``P = (XᵀX + l2·I)⁻¹`` and ``B = I - P · diag(1 / diag(P))`` (so ``diag(B) = 0``),
a user's scores are ``X_u B``. The model keeps ``B`` (dense, ``n_items²``
floats) and ``X`` (CSR buffers): a user's vector is their history row, an
item's vector is the column of ``B`` that predicts it, so the generic top-N
is one matrix product, and a new user folds in exactly by their history.
A dense ``B`` bounds the catalogue: :class:`EASEConfig` refuses more than
``max_items`` items before allocating anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from embrec.config import JsonConfig, require, require_choice
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models.base import DotModel

__all__ = ["EASE", "EASEConfig", "ease_weights", "history_matrix"]

VALUES = ("binary", "rating")
FIT_BYTES_PER_ENTRY = 28
"""Bytes per item-item entry at the peak of fitting: the float64 Gram matrix, its inverse
and the solver's workspace, the model's float32 ``B`` (``benchmarks/baselines.py``)."""


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


@dataclass(frozen=True, kw_only=True, slots=True)
class EASEConfig(JsonConfig):
    """EASE's hyperparameters.

    Attributes:
        l2: the ridge penalty λ added to the diagonal of ``XᵀX``; it grows with
            the square of the rating values and with the number of users. The
            default was chosen on validation rows (``benchmarks/results/baselines.md``).
        values: ``rating`` (the rating value) or ``binary`` (1 for every rated
            item, whatever the rating; Steck's setting, independent of the scale).
        max_items: the largest catalogue accepted; ``B`` holds ``n_items²``
            float32 and fitting needs about 28 bytes per entry.
    """

    name: ClassVar[str] = "ease"
    closed_form: ClassVar[bool] = True
    scores: ClassVar[str] = "ranking"
    l2: float = 10_000.0
    values: str = "rating"
    max_items: int = 30_000

    def __post_init__(self) -> None:
        require(self.l2 > 0, "l2", self.l2, "must be > 0")
        require_choice("values", self.values, VALUES)
        require(self.max_items >= 1, "max_items", self.max_items, "must be at least 1")

    def check_size(self, n_items: int) -> None:
        """Refuse a catalogue whose dense item-item matrix exceeds ``max_items``.

        Raises:
            ConfigError: naming the limit and the memory the catalogue would need.
        """
        if n_items <= self.max_items:
            return
        entries = float(n_items) ** 2
        raise ConfigError(
            "max_items", self.max_items,
            f"is below this catalogue's {n_items:,} items: {self.name} needs a dense "
            f"{n_items:,} x {n_items:,} item-item matrix, {_gib(4 * entries)} to keep and about "
            f"{_gib(FIT_BYTES_PER_ENTRY * entries)} while fitting",
            hint="raise max_items if the machine has that memory, or use 'popular' or an "
            "embedding model such as 'biased-mf', which scale to any catalogue")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> EASE:
        """Create the unfitted model (:meth:`EASE.solve` fits it); ``scale`` and ``mean`` unused.

        Raises:
            ConfigError: if ``n_items`` exceeds ``max_items`` (nothing is allocated).
        """
        self.check_size(n_items)
        return EASE(n_users, n_items, self)


def history_matrix(train: Ratings, values: str) -> sp.csr_matrix:
    """Return the user x item training matrix ``X`` as float32 CSR (1s, or the ratings)."""
    data = np.ones(len(train), np.float32) if values == "binary" else train.rating
    return sp.csr_matrix((data, (train.user, train.item)), shape=(train.n_users, train.n_items),
                         dtype=np.float32)


def ease_weights(history: sp.csr_matrix, l2: float, device: torch.device | str = "cpu", *,
                 dropout: float = 0.0) -> Tensor:
    """Solve EASE: ``B = I - P / diag(P)`` with ``P = (XᵀX + Λ)⁻¹`` and ``diag(B) = 0``.

    ``Λ = l2·I`` for EASE; EDLAE (Steck 2020) adds the dropout-emphasised
    penalty ``p / (1 - p) · diag(XᵀX)``: an item's weights shrink with its
    popularity, as training with dropout rate ``p`` on the input would.

    Returns:
        ``B`` for the user x item ``history`` ``X``, ``(n_items, n_items)`` float32:
        ``B[i, j]`` is item ``i``'s weight in the score of item ``j``; solved on ``device``.
    """
    x = history.astype(np.float64)
    gram = torch.as_tensor((x.T @ x).toarray(), device=device)  # (n_items, n_items) float64
    gram.diagonal().mul_(1.0 + dropout / (1.0 - dropout)).add_(l2)
    precision: Tensor = torch.linalg.inv(gram)  # P; symmetric positive definite: l2 > 0
    del gram
    precision.div_(precision.diagonal().neg().clone())  # column j divided by -P[j, j]
    precision.diagonal().zero_()
    return precision.float()


class EASE(DotModel):
    """Scores ``X_u B``; ``weights`` holds ``Bᵀ`` (row ``j`` predicts item ``j``)."""

    variable_buffers = ("history_indices", "history_values")  # one entry per training rating

    def __init__(self, n_users: int, n_items: int, config: EASEConfig) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        # parameters (never trained) so the model has a device and a state dict
        self.weights = nn.Parameter(torch.zeros(n_items, n_items), requires_grad=False)
        self.register_buffer("history_indptr", torch.zeros(n_users + 1, dtype=torch.long))
        self.register_buffer("history_indices", torch.zeros(0, dtype=torch.long))
        self.register_buffer("history_values", torch.zeros(0))

    def solve(self, train: Ratings) -> None:
        """Fit ``B`` and keep the training histories, on the model's device."""
        history = history_matrix(train, self.config.values)
        device = self.weights.device
        with torch.no_grad():
            dropout = float(getattr(self.config, "dropout", 0.0))  # EDLAE's; 0 is EASE
            self.weights.copy_(ease_weights(history, self.config.l2, device,
                                            dropout=dropout).t())
        self.history_indptr = torch.as_tensor(history.indptr.astype(np.int64), device=device)
        self.history_indices = torch.as_tensor(history.indices.astype(np.int64), device=device)
        self.history_values = torch.as_tensor(history.data, device=device)

    def _entries(self, user: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The users' history entries: (row in ``user``, item index, value), each ``(nnz,)``."""
        indptr: Tensor = self.history_indptr
        starts = indptr[user]
        counts = indptr[user + 1] - starts
        rows = torch.repeat_interleave(torch.arange(user.shape[0], device=user.device), counts)
        first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        positions = torch.repeat_interleave(starts, counts) + torch.arange(
            rows.shape[0], device=user.device) - first
        indices: Tensor = self.history_indices
        values: Tensor = self.history_values
        return rows, indices[positions], values[positions]

    def user_vectors(self, user: Tensor) -> Tensor:
        """Return the users' training rows of ``X``, dense: ``(batch, n_items)``."""
        rows, items, values = self._entries(user)
        out = torch.zeros(user.shape[0], self.n_items, device=self.weights.device)
        out[rows, items] = values
        return out

    def item_vectors(self, item: Tensor) -> Tensor:
        """Return the columns of ``B`` for ``item``: ``(batch, n_items)``.

        Asked for the whole catalogue in order, it returns ``Bᵀ`` itself (no copy).
        """
        n = self.n_items
        if item.shape[0] == n and torch.equal(item, torch.arange(n, device=item.device)):
            return self.weights
        return self.weights[item]

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        """Score aligned pairs from the sparse histories, without dense user rows: ``(batch,)``."""
        rows, items, values = self._entries(user)
        contributions = values * self.weights[item[rows], items]  # (nnz,)
        out = torch.zeros(user.shape[0], device=self.weights.device)
        return out.index_add_(0, rows, contributions)

    def item_factors(self) -> Tensor:
        """Return ``Bᵀ``: items are alike when the same items predict them, ``(n, n)``."""
        return self.weights

    def history_vector(self, items: np.ndarray, ratings: np.ndarray) -> Tensor:
        """The exact fold-in of a new user: their row of ``X``, ``(1, n_items)``."""
        vector = torch.zeros(1, self.n_items, device=self.weights.device)
        values = np.ones(len(items)) if self.config.values == "binary" else ratings
        vector[0, torch.as_tensor(items, device=vector.device)] = torch.as_tensor(
            values, dtype=torch.float32, device=vector.device)
        return vector
