"""Cold start: predictions for users and items that have side features but no ratings.

A model that learnt how features map into its vector space (``bayesian-fm`` with side
features) gives a new user the average user's id part plus the weights of their
features. This module puts that behind raw ids and raw feature values, and measures it
against the fallbacks that ignore features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from embrec.data.features import Features
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.evaluation.metrics import rmse

if TYPE_CHECKING:
    from embrec.recommender import Recommender

__all__ = ["BIAS_DAMPING", "cold_vector", "damped_means", "evaluate_cold",
           "predict_with_features"]

BIAS_DAMPING = 5.0
"""Pseudo-ratings at the global mean added to a user's or item's mean rating (the fallback)."""


def damped_means(seen: sp.csr_matrix, mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Each user's and item's mean rating in ``seen``, damped towards the global ``mean``:
    what ``predict(on_unknown="mean")`` gives an unknown item's or user's pairs."""
    seen, prior = seen.astype(np.float64), BIAS_DAMPING * mean
    user_count = np.diff(seen.indptr)
    item_count = np.bincount(seen.indices, minlength=seen.shape[1])
    return ((np.asarray(seen.sum(axis=1)).ravel() + prior) / (user_count + BIAS_DAMPING),
            (np.asarray(seen.sum(axis=0)).ravel() + prior) / (item_count + BIAS_DAMPING))


def _model(rec: Recommender, kind: str) -> Any:
    model: Any = rec.model
    if not hasattr(model, "cold_vectors") or model.feature_schema(kind) is None:
        raise ConfigError("model", rec.model_name, f"has no {kind} features to start cold from",
                          hint=f"train 'bayesian-fm' on ratings with {kind}_features "
                          f"(CLI: --{kind}-features FILE)")
    return model


def cold_vector(rec: Recommender, features: Mapping[str, Any], kind: str = "user"
                ) -> torch.Tensor:
    """The vector of a new user (or item) from raw feature values: ``(1, width)``.

    ``features`` holds raw values by column (``{"age": 30, "gender": "F"}``); a column
    left out counts as missing (zeros; numbers at the training mean).

    Raises:
        ConfigError: if the model has no ``kind`` features.
    """
    model = _model(rec, kind)
    rows = model.feature_schema(kind).encode(pd.DataFrame({k: [v] for k, v in features.items()}))
    vector: torch.Tensor = model.cold_vectors(kind, rows)
    return vector


def _side(rec: Recommender, kind: str, raw: np.ndarray, features: Features | None
          ) -> tuple[torch.Tensor, np.ndarray]:
    """Each distinct id's vector (trained row, or from features) and each pair's row in it."""
    index = rec.users if kind == "user" else rec.items
    distinct, where = np.unique(np.asarray(raw, dtype=object).astype(str) if
                                not index.is_integer else np.asarray(raw), return_inverse=True)
    known = index.index(index.coerce(distinct), on_unknown="missing")
    model = rec.model
    width = model.user_vectors(torch.zeros(1, dtype=torch.long, device=rec.device)).shape[1]
    vectors = torch.zeros(len(distinct), width, device=rec.device)
    seen = torch.as_tensor(np.flatnonzero(known >= 0), device=rec.device)
    picked = torch.as_tensor(known[known >= 0], device=rec.device)
    table = model.user_vectors if kind == "user" else model.item_vectors
    vectors[seen] = table(picked)
    new = np.flatnonzero(known < 0)
    if len(new):
        if features is not None and _model(rec, kind).feature_schema(kind) != features.schema:
            raise ConfigError(f"{kind}_features", repr(features), "encode differently from the "
                              "features the model was trained with",
                              hint="pass the feature table the training ratings carried")
        rows = features.rows(distinct[new]) if features is not None else sp.csr_matrix(
            (len(new), 0))
        vectors[torch.as_tensor(new, device=rec.device)] = _model(rec, kind).cold_vectors(
            kind, rows)
    return vectors, where


def predict_with_features(rec: Recommender, user: Any, item: Any, *,
                          user_features: Features | None = None,
                          item_features: Features | None = None,
                          clip: bool = True) -> np.ndarray:
    """Predict for raw ids, starting ids unseen in training from their features.

    ``user_features`` (``item_features``) are the table the training data carried; an
    unseen id without a row gets the average vector. Returns float32 predictions.

    Raises:
        ConfigError: if the model cannot start cold, or a table encodes differently.
    """
    users, user_rows = _side(rec, "user", np.atleast_1d(user), user_features)
    items, item_rows = _side(rec, "item", np.atleast_1d(item), item_features)
    with torch.inference_mode():
        scores = rec.model.score(users[torch.as_tensor(user_rows, device=rec.device)],
                                 items[torch.as_tensor(item_rows, device=rec.device)])
    out: np.ndarray = scores.float().cpu().numpy()
    return np.clip(out, *rec.scale) if clip else out


def evaluate_cold(rec: Recommender, test: Ratings) -> dict[str, float]:
    """RMSE on the test ratings of users unseen in training: features against fallbacks.

    Returns:
        ``n`` (ratings of unseen users on known items), ``rmse_features``,
        ``rmse_mean`` (the global training mean) and ``rmse_item_mean`` (the
        item's damped mean: what ``evaluate`` falls back to for an unknown user).
    """
    raw_users, raw_items = test.users.id_of(test.user), test.items.id_of(test.item)
    unseen = rec.users.index(rec.users.coerce(raw_users), on_unknown="missing") < 0
    known_item = rec.items.index(rec.items.coerce(raw_items), on_unknown="missing") >= 0
    rows = unseen & known_item
    truth = test.rating[rows]
    predicted = predict_with_features(rec, raw_users[rows], raw_items[rows],
                                      user_features=test.user_features)
    fallback = rec.predict(raw_users[rows], raw_items[rows], on_unknown="mean")
    return {"n": int(rows.sum()), "rmse_features": rmse(truth, predicted),
            "rmse_mean": rmse(truth, np.full(len(truth), rec.mean)),
            "rmse_item_mean": rmse(truth, fallback)}
