"""Training data as three device tensors, shuffled once per epoch and cut into slices.

No ``Dataset``/``DataLoader``: the whole training set lives on the device as
int32 user and item indices and float32 ratings (12 bytes a rating, so 25M
ratings take 300 MB); each epoch gathers them through one ``torch.randperm``
into int64 copies (``index_select``, the cheapest gather), and a batch is a
slice of those, a view that costs nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from embrec.data.ratings import Ratings

__all__ = ["Columns", "columns", "known_rows", "shuffled", "validation_rows"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Columns:
    """Ratings as device tensors: ``user`` and ``item`` indices and ``rating`` values."""

    user: Tensor
    item: Tensor
    rating: Tensor

    def __len__(self) -> int:
        return int(self.rating.shape[0])

    def __iter__(self) -> Iterator[Tensor]:
        return iter((self.user, self.item, self.rating))


def columns(ratings: Ratings, rows: np.ndarray | None, device: torch.device) -> Columns:
    """Copy the ``rows`` (positions; ``None``: all) of ``ratings`` to ``device``."""
    picked = [c if rows is None else c[rows] for c in (ratings.user, ratings.item, ratings.rating)]
    user, item, rating = (torch.from_numpy(np.ascontiguousarray(c)).to(device) for c in picked)
    return Columns(user, item, rating)


def shuffled(data: Columns, generator: torch.Generator) -> Columns:
    """Shuffled copies of ``data`` (indices as int64), drawn from ``generator`` (on its device)."""
    order = torch.randperm(len(data), generator=generator, device=data.rating.device,
                           dtype=torch.int32 if len(data) < 2**31 else torch.int64)
    return Columns(data.user.index_select(0, order).long(),
                   data.item.index_select(0, order).long(), data.rating.index_select(0, order))


def validation_rows(n: int, fraction: float, mode: str,
                    generator: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Split ``n`` training rows into ``(fit rows, validation rows)``, ``fraction`` of them held.

    ``last`` holds the final rows, as Keras' ``validation_split`` does (its training
    part is the first ``ceil(n * (1 - fraction))`` rows); ``random`` a subset drawn
    from ``generator``. Both are ``None`` when ``fraction`` is 0 (fit every row, no copy).
    """
    if fraction <= 0:
        return None, None
    cut = math.ceil(n * (1.0 - fraction))
    order = np.arange(n) if mode == "last" else generator.permutation(n)
    return np.sort(order[:cut]), np.sort(order[cut:])


def known_rows(validation: Ratings, train: Ratings) -> tuple[Ratings, int]:
    """Re-index ``validation`` onto ``train``'s ids; return the known pairs and how many were
    dropped for an unseen user or item."""
    user = train.users.index(validation.users.id_of(validation.user), on_unknown="missing")
    item = train.items.index(validation.items.id_of(validation.item), on_unknown="missing")
    known = (user >= 0) & (item >= 0)
    dropped = int((~known).sum())
    if dropped:
        log.info("validation: %d of %d ratings have a user or item unseen in training; "
                 "left out", dropped, len(validation))
    kept = Ratings(user[known], item[known], validation.rating[known], train.users, train.items,
                   scale=train.scale, source=validation.source)
    return kept, dropped
