"""AutoRec (Sedhain et al. 2015): each item's (or user's) rating vector through an autoencoder.

I-AutoRec encodes item ``i``'s ratings by all users, ``r_i`` (zero where
unrated), as ``h_i = sigmoid(V r_i + c)`` and decodes ``W h_i + b``: one
predicted rating per user, trained on the observed entries only. The rating of
``(u, i)`` is therefore ``W[u] · h_i + b[u]``: a dot product of a per-user row
``[W[u], b[u]]`` and a per-item code ``[h_i, 1]``. The codes are computed once
from the training ratings and kept (``codes``), so the recommender's generic
top-N, similar items (the centred codes) and save/load work unchanged. A new
user folds in exactly: the score is affine in their decoder row, which
:mod:`embrec.foldin` solves by ridge least squares with the items' codes frozen.

U-AutoRec (``based="user"``) swaps the roles: a user's ratings of all items are
encoded, ``h_u``, and item ``i``'s decoder row scores it; a new user's code
comes straight from their ratings (``history_vector``), as in training. Trained by
its own loop (:mod:`embrec.training.autorec`), not ``fit()``'s embedding loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from embrec.config import JsonConfig, require, require_choice
from embrec.data.ratings import Ratings
from embrec.models.base import DotModel

__all__ = ["AutoRec", "AutoRecConfig", "UserAutoRec"]

BASED = ("item", "user")
OPTIMIZERS = ("rprop", "adam")


@dataclass(frozen=True, kw_only=True, slots=True)
class AutoRecConfig(JsonConfig):
    """AutoRec's hyperparameters, its training included (``TrainConfig`` gives seed and device).

    Attributes:
        hidden: sigmoid units of the code.
        based: ``item`` (I-AutoRec: the paper's better variant) or ``user``.
        l2: λ of the paper's objective, ``Σ observed (r - r̂)² + λ/2 (‖W‖² + ‖V‖²)``;
            the default was chosen (over 100) on validation rows of ML-100K's 90%
            training part (``benchmarks/results/accuracy.md``).
        optimizer: ``rprop`` (the paper's: one full-batch step per epoch, its
            gradient summed over batches of rows) or ``adam`` (a step per batch).
        epochs: the most passes over the rows.
        learning_rate: Rprop's initial step, or Adam's step size.
        batch_size: rows (items, or users) densified at once; Adam's batch.
        validation: the fraction of training ratings carved out (seeded) to
            stop early on; 0 trains every epoch on every rating.
        patience: epochs without a better validation RMSE before stopping; the
            best epoch's weights are kept.
    """

    name: ClassVar[str] = "autorec"
    closed_form: ClassVar[bool] = True  # fitted by its own loop, not fit()'s embedding loop
    scores: ClassVar[str] = "rating"
    hidden: int = 500
    based: str = "item"
    l2: float = 200.0
    optimizer: str = "rprop"
    epochs: int = 200
    learning_rate: float = 0.01
    batch_size: int = 256
    validation: float = 0.05
    patience: int = 10

    def __post_init__(self) -> None:
        require(self.hidden >= 1, "hidden", self.hidden, "must be at least 1")
        require_choice("based", self.based, BASED)
        require(self.l2 >= 0, "l2", self.l2, "must be >= 0")
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require(self.epochs >= 1, "epochs", self.epochs, "must be at least 1")
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")
        require(0 <= self.validation < 1, "validation", self.validation, "must be in [0, 1)")
        require(self.patience >= 1, "patience", self.patience, "must be at least 1")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> AutoRec:
        """Create the untrained autoencoder (``scale`` and ``mean`` unused)."""
        if self.based == "user":
            return UserAutoRec(n_users, n_items, self)
        return AutoRec(n_users, n_items, self)


class AutoRec(DotModel):
    """One hidden layer autoencoder over rows of the rating matrix (items, or users).

    ``rows`` are the encoded side (items for I-AutoRec), ``columns`` the other;
    ``codes`` holds every row's code, ``decoder`` maps a code to one rating per
    column.
    """

    codes: Tensor
    history: list[dict[str, float]]

    def __init__(self, n_users: int, n_items: int, config: AutoRecConfig) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        rows, columns = (n_users, n_items) if config.based == "user" else (n_items, n_users)
        self.encoder = nn.Linear(columns, config.hidden)  # V, c
        self.decoder = nn.Linear(config.hidden, columns)  # W, b
        self.register_buffer("codes", torch.zeros(rows, config.hidden))
        self.history: list[dict[str, float]] = []  # per-epoch facts of the last solve

    def encode(self, rows: Tensor) -> Tensor:
        """Codes of dense rating rows (zero where unrated): ``(batch, hidden)``."""
        return torch.sigmoid(self.encoder(rows))

    def reconstruct(self, rows: Tensor) -> Tensor:
        """Predicted ratings for every column of each row: ``(batch, columns)``."""
        decoded: Tensor = self.decoder(self.encode(rows))
        return decoded

    def solve(self, train: Ratings) -> None:
        """Train on ``train`` (see :func:`embrec.training.autorec.train_autorec`)."""
        from embrec.training.autorec import train_autorec

        self.history = train_autorec(self, train)

    def _code_rows(self, index: Tensor) -> Tensor:
        """Codes with a trailing 1 (the decoder bias's partner): ``(batch, hidden + 1)``."""
        codes: Tensor = self.codes[index]
        return torch.cat([codes, torch.ones_like(codes[:, :1])], 1)

    def _decoder_rows(self, index: Tensor) -> Tensor:
        """Decoder rows with their bias: ``(batch, hidden + 1)``."""
        return torch.cat([self.decoder.weight[index], self.decoder.bias[index].unsqueeze(1)], 1)

    def user_vectors(self, user: Tensor) -> Tensor:
        """The users' decoder rows and biases: ``(batch, hidden + 1)``."""
        return self._decoder_rows(user)

    def item_vectors(self, item: Tensor) -> Tensor:
        """The items' codes and a 1: ``(batch, hidden + 1)``."""
        return self._code_rows(item)

    def item_factors(self) -> Tensor:
        """The items' codes, centred (sigmoid codes all share a positive offset)."""
        codes: Tensor = self.codes
        return codes - codes.mean(0, keepdim=True)


class UserAutoRec(AutoRec):
    """U-AutoRec: users are encoded; an item's decoder row and bias score a user's code."""

    def user_vectors(self, user: Tensor) -> Tensor:
        """The users' codes and a 1: ``(batch, hidden + 1)``."""
        return self._code_rows(user)

    def item_vectors(self, item: Tensor) -> Tensor:
        """The items' decoder rows and biases: ``(batch, hidden + 1)``."""
        return self._decoder_rows(item)

    def item_factors(self) -> Tensor:
        """The items' decoder rows: ``(n_items, hidden)``."""
        return self.decoder.weight.detach()

    def history_vector(self, items: np.ndarray, ratings: np.ndarray) -> Tensor:
        """A new user's exact fold-in: the code of their ratings, ``(1, hidden + 1)``."""
        device = self.codes.device
        row = torch.zeros(1, self.n_items, device=device)
        row[0, torch.as_tensor(items, device=device)] = torch.as_tensor(
            ratings, dtype=torch.float32, device=device)
        with torch.no_grad():
            code = self.encode(row)
        return torch.cat([code, torch.ones_like(code[:, :1])], 1)
