"""The RMSE of the simplest predictors on the same test rows, to judge a model's RMSE against.

An RMSE means little on its own. The means come from the model's own training ratings
(``seen``), so ``train`` and ``evaluate`` report them without reading the data again;
a user or item without training ratings gets the global mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from embrec.data.ratings import Ratings
    from embrec.recommender import Recommender

__all__ = ["rating_baselines"]


def rating_baselines(rec: Recommender, test: Ratings) -> dict[str, float]:
    """Return the test RMSE of the global mean, each user's mean and each item's mean.

    Returns:
        ``{"global_mean": ..., "user_mean": ..., "item_mean": ...}`` (NaN without test rows).
    """
    if len(test) == 0:
        return {"global_mean": float("nan"), "user_mean": float("nan"),
                "item_mean": float("nan")}
    seen = rec.seen.tocsr()
    mean = float(seen.data.mean()) if seen.nnz else rec.mean
    user = rec.users.index(test.users.id_of(test.user), on_unknown="missing")
    item = rec.items.index(test.items.id_of(test.item), on_unknown="missing")
    truth = test.rating.astype(np.float64)
    by_user = _means(np.asarray(seen.sum(axis=1)).ravel(), np.diff(seen.indptr), mean)
    counts = np.bincount(seen.indices, minlength=seen.shape[1])
    by_item = _means(np.asarray(seen.sum(axis=0)).ravel(), counts, mean)
    return {"global_mean": _rmse(np.full_like(truth, mean), truth),
            "user_mean": _rmse(_lookup(by_user, user, mean), truth),
            "item_mean": _rmse(_lookup(by_item, item, mean), truth)}


def _means(sums: np.ndarray, counts: np.ndarray, fallback: float) -> np.ndarray:
    out = np.full(len(sums), fallback, dtype=np.float64)
    rated = counts > 0
    out[rated] = sums[rated] / counts[rated]
    return out


def _lookup(means: np.ndarray, index: np.ndarray, fallback: float) -> np.ndarray:
    return np.where(index >= 0, means[np.maximum(index, 0)], fallback)


def _rmse(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((prediction - truth) ** 2)))
