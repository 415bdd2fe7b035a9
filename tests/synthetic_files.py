"""Small data sets several test modules build the same way (one copy of each recipe)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

import embrec
from embrec.data.features import features_from_frame
from embrec.data.synthetic import generate


def synthetic_csv(folder: Path, **sizes: int | float) -> Path:
    """``folder/ratings.csv``: ``generate(**sizes)``'s ratings with a header (raw ids)."""
    path = folder / "ratings.csv"
    generate(**sizes).ratings.to_pandas().to_csv(path, index=False)  # type: ignore[arg-type]
    return path


def group_tastes(n_users: int, n_items: int, *, ages: bool = False) -> embrec.Ratings:
    """Ratings whose user's group (a user feature, ``a`` or ``b``) decides the taste; with
    ``ages``, an ``age`` feature that is noise. Seeded: the same rows on every call."""
    rng = np.random.default_rng(0)
    group = rng.integers(0, 2, n_users)
    taste = np.where(group[:, None] == 1, 1.0, -1.0) * np.linspace(-1, 1, n_items)[None, :]
    user, item = np.nonzero(rng.random((n_users, n_items)) < 0.5)
    rating = np.clip(3.0 + taste[user, item] + rng.normal(0, 0.2, len(user)), 1, 5)
    ratings = embrec.Ratings.from_arrays(user, item, rating, scale=(1.0, 5.0))
    columns = {"group": np.where(group == 1, "a", "b")}
    if ages:
        columns["age"] = rng.integers(18, 70, n_users)
    table = features_from_frame(pd.DataFrame(columns), kind="user")
    return dataclasses.replace(ratings, user_features=table)
