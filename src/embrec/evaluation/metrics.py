"""Rating and ranking metrics as pure array functions, vectorised over users.

Ranking metrics follow the *full-catalogue* protocol: ``recommended`` is an int array
``(n_users, k)`` of item indices, best first (padded with -1), and ``relevant`` a
sparse ``(n_users, n_items)`` matrix whose stored entries are each user's relevant
test items (their values the gains NDCG uses). Each has a ``*_per_user`` form (NaN
for users without relevant items) and a mean form that leaves those users out with
one :class:`~embrec.errors.MetricWarning` (as LensKit does). Sampled metrics are not
offered: they can reverse the order of two models (Krichene and Rendle, KDD 2020).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from embrec.config import require
from embrec.errors import DataError, MetricWarning

__all__ = [
    "coverage", "hit_rate_at_k", "hit_rate_at_k_per_user", "mae", "map_at_k",
    "map_at_k_per_user", "mse", "ndcg_at_k", "ndcg_at_k_per_user", "precision_at_k",
    "precision_at_k_per_user", "recall_at_k", "recall_at_k_per_user", "relevance_matrix", "rmse",
]


# ---------------------------------------------------------------- rating metrics
def _errors(y_true: Any, y_pred: Any) -> np.ndarray:
    truth = np.asarray(y_true, dtype=np.float64).ravel()
    predicted = np.asarray(y_pred, dtype=np.float64).ravel()
    if truth.shape != predicted.shape:
        raise DataError(f"y_true has {len(truth)} values but y_pred has {len(predicted)}",
                        hint="pass one prediction per true rating")
    return predicted - truth


def _mean_error(errors: np.ndarray, name: str) -> float:
    if len(errors) == 0:
        warnings.warn(f"{name} of no ratings is undefined (NaN)", MetricWarning, stacklevel=3)
        return float("nan")
    return float(np.mean(errors))


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error.

    Args:
        y_true: true ratings.
        y_pred: predicted ratings, one per true rating.

    Returns:
        The mean of ``(y_pred - y_true) ** 2``; NaN (with a ``MetricWarning``) when empty.

    Raises:
        DataError: if the two arrays differ in length.
    """
    return _mean_error(np.square(_errors(y_true, y_pred)), "mse")


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, ``sqrt(mse)``.

    Args / Returns / Raises: as :func:`mse`.
    """
    return float(np.sqrt(_mean_error(np.square(_errors(y_true, y_pred)), "rmse")))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, the mean of ``|y_pred - y_true|``.

    Args / Returns / Raises: as :func:`mse`.
    """
    return _mean_error(np.abs(_errors(y_true, y_pred)), "mae")


# ---------------------------------------------------------------- relevance
def relevance_matrix(user_idx: Any, item_idx: Any, rating: Any, n_users: int, n_items: int,
                     threshold: float = 4.0, *, graded: bool = False) -> sp.csr_matrix:
    """Build the relevance matrix of test ratings at or above ``threshold``.

    Args:
        user_idx: user (row) index of each test rating.
        item_idx: item index of each test rating.
        rating: the test ratings.
        n_users: number of rows (users being ranked).
        n_items: number of items in the catalogue.
        threshold: a rating at or above it makes the item relevant.
        graded: store the rating itself as the NDCG gain instead of 1.

    Returns:
        A canonical float64 CSR matrix ``(n_users, n_items)``.

    Raises:
        DataError: for arrays of different lengths, indices out of range or a
            (user, item) pair given twice.
    """
    user = np.asarray(user_idx, dtype=np.int64).ravel()
    item = np.asarray(item_idx, dtype=np.int64).ravel()
    value = np.asarray(rating, dtype=np.float64).ravel()
    if not len(user) == len(item) == len(value):
        raise DataError(f"user_idx, item_idx and rating differ in length "
                        f"({len(user)}, {len(item)}, {len(value)})")
    _check_range(user, n_users, "user_idx", "n_users")
    _check_range(item, n_items, "item_idx", "n_items")
    keep = value >= threshold
    gains = value[keep] if graded else np.ones(int(keep.sum()))
    matrix = sp.csr_matrix((gains, (user[keep], item[keep])), shape=(n_users, n_items))
    if matrix.nnz != len(gains):
        raise DataError(f"{len(gains) - matrix.nnz} (user, item) pairs appear more than once",
                        hint="pass each test rating once")
    return matrix


def _check_range(values: np.ndarray, size: int, name: str, size_name: str) -> None:
    bad = np.flatnonzero((values < 0) | (values >= size))
    if len(bad):
        raise DataError(f"{name}[{bad[0]}] = {values[bad[0]]} is outside 0..{size_name}-1 "
                        f"({size_name}={size}; {len(bad)} such values)", column=name)


# ---------------------------------------------------------------- ranking core
def _hits(recommended: Any, relevant: Any,
          k: int | None) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Gain of each recommended slot (0 for a miss or padding), n_relevant, canonical CSR."""
    truth = _canonical(relevant)
    n_users, n_items = truth.shape
    lists = _lists(recommended, n_users, n_items, k)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(truth.indptr))
    keys = rows * n_items + truth.indices  # sorted: canonical CSR
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + lists  # (n_users, k)
    gains = np.zeros(lists.shape, dtype=np.float64)
    if len(keys):
        where = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        hit = (lists >= 0) & (keys[where] == query)
        gains[hit] = truth.data[where[hit]]
    return gains, np.diff(truth.indptr), truth


def _canonical(relevant: Any) -> sp.csr_matrix:
    if not bool(sp.issparse(relevant)) or len(getattr(relevant, "shape", ())) != 2:
        raise DataError(f"relevant must be a 2-D scipy sparse matrix, not {type(relevant)}",
                        hint="build it with relevance_matrix(...)")
    truth: sp.csr_matrix = sp.csr_matrix(relevant).astype(np.float64, copy=False)
    zeros = not bool(np.all(truth.data != 0))
    if zeros or not truth.has_canonical_format:
        truth = truth.copy()  # never change the caller's matrix
        truth.sum_duplicates()
        truth.eliminate_zeros()  # a stored 0 is not relevant
    if not bool(np.all(np.isfinite(truth.data) & (truth.data > 0))):
        raise DataError("relevant holds negative or non-finite gains",
                        hint="store 1 for a relevant item, or a positive graded gain")
    return truth


def _lists(recommended: Any, n_users: int, n_items: int, k: int | None) -> np.ndarray:
    """Validate the top-K lists and cut or pad them (with -1) to ``k`` columns."""
    lists = np.asarray(recommended)
    if lists.ndim != 2 or lists.dtype.kind not in "iu" or len(lists) != n_users:
        raise DataError(f"recommended must be an int array (n_users={n_users}, k); got "
                        f"{lists.dtype} of shape {lists.shape}",
                        hint="one row per row of relevant, item indices padded with -1")
    k = lists.shape[1] if k is None else k
    require(isinstance(k, int | np.integer) and k >= 1, "k", k, "must be a positive integer")
    lists = lists[:, :k].astype(np.int64)
    if lists.shape[1] < k:
        lists = np.pad(lists, ((0, 0), (0, k - lists.shape[1])), constant_values=-1)
    bad = (lists < -1) | (lists >= n_items)
    if bad.any():
        user = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(f"recommended[{user}] holds item {lists[user][bad[user]][0]} outside "
                        f"0..{n_items - 1}", hint="pad short lists with -1")
    ordered = np.sort(lists, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if repeated.any():
        user = int(np.flatnonzero(repeated.any(axis=1))[0])
        raise DataError(f"recommended[{user}] lists an item twice",
                        hint="a top-K list holds distinct items")
    return lists


def _undefined(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    values[n_relevant == 0] = np.nan
    return values


def _mean(values: np.ndarray, name: str) -> float:
    """Mean over users with a value; one ``MetricWarning`` names how many were left out."""
    missing = int(np.isnan(values).sum())
    if len(values) == 0:
        warnings.warn(f"{name} over no users is undefined (NaN)", MetricWarning, stacklevel=3)
    elif missing:
        warnings.warn(f"{name}: {missing} of {len(values)} users have no relevant items; "
                      "they are NaN per user and left out of the mean", MetricWarning,
                      stacklevel=3)
    return float("nan") if missing == len(values) else float(np.nanmean(values))


# ---------------------------------------------------------------- ranking metrics
def precision_at_k_per_user(recommended: Any, relevant: Any, k: int | None = None) -> np.ndarray:
    """Per-user precision@k: relevant items in the top k, divided by k (padding is a miss).

    Args:
        recommended: int ``(n_users, width)`` item indices, best first, padded with -1.
        relevant: sparse ``(n_users, n_items)``; its stored entries are relevant.
        k: list length; ``None`` uses ``width``; longer lists are cut, shorter
            ones count as padded with misses.

    Returns:
        float64 ``(n_users,)``; NaN for users without relevant items.

    Raises:
        DataError: for bad shapes, item indices out of range or an item listed twice.
        ConfigError: for ``k`` below 1.
    """
    gains, n_relevant, _ = _hits(recommended, relevant, k)
    return _undefined((gains > 0).sum(axis=1) / gains.shape[1], n_relevant)


def recall_at_k_per_user(recommended: Any, relevant: Any, k: int | None = None) -> np.ndarray:
    """Per-user recall@k: relevant items in the top k, divided by the user's relevant items.

    Args / Returns / Raises: as :func:`precision_at_k_per_user`.
    """
    gains, n_relevant, _ = _hits(recommended, relevant, k)
    return _undefined((gains > 0).sum(axis=1) / np.maximum(n_relevant, 1), n_relevant)


def hit_rate_at_k_per_user(recommended: Any, relevant: Any, k: int | None = None) -> np.ndarray:
    """Per-user hit rate@k: 1 if any relevant item is in the top k, else 0.

    Args / Returns / Raises: as :func:`precision_at_k_per_user`.
    """
    gains, n_relevant, _ = _hits(recommended, relevant, k)
    return _undefined(np.any(gains > 0, axis=1).astype(np.float64), n_relevant)


def ndcg_at_k_per_user(recommended: Any, relevant: Any, k: int | None = None) -> np.ndarray:
    """Per-user NDCG@k; stored values are the gains (binary or graded), log2 discount.

    ``DCG = sum over ranks r = 1..k of gain(r) / log2(r + 1)``; the ideal DCG
    takes the user's ``k`` largest gains in decreasing order, so values lie in [0, 1].

    Args / Returns / Raises: as :func:`precision_at_k_per_user` (gains must be positive).
    """
    gains, n_relevant, truth = _hits(recommended, relevant, k)
    width = gains.shape[1]
    discount = 1.0 / np.log2(np.arange(width) + 2.0)
    dcg = (gains * discount).sum(axis=1)
    rows = np.repeat(np.arange(truth.shape[0]), n_relevant)
    order = np.lexsort((-truth.data, rows))  # by user, then gain descending
    rank = np.arange(len(rows)) - truth.indptr[:-1][rows]
    top = rank < width
    ideal = np.bincount(rows[top], weights=truth.data[order][top] * discount[rank[top]],
                        minlength=truth.shape[0])
    return _undefined(dcg / np.where(ideal > 0, ideal, 1.0), n_relevant)


def map_at_k_per_user(recommended: Any, relevant: Any, k: int | None = None) -> np.ndarray:
    """Per-user average precision@k, normalised by ``min(k, n_relevant)``.

    ``AP@k`` sums precision@r over the ranks ``r <= k`` that hit, so a list that
    starts with as many relevant items as it can hold scores 1.

    Args / Returns / Raises: as :func:`precision_at_k_per_user`.
    """
    gains, n_relevant, _ = _hits(recommended, relevant, k)
    hits = gains > 0
    width = hits.shape[1]
    precision = np.cumsum(hits, axis=1) / np.arange(1, width + 1)
    total = np.where(hits, precision, 0.0).sum(axis=1)
    return _undefined(total / np.maximum(np.minimum(n_relevant, width), 1), n_relevant)


def precision_at_k(recommended: Any, relevant: Any, k: int | None = None) -> float:
    """Mean precision@k over the users with relevant items.

    Args / Raises: as :func:`precision_at_k_per_user`.

    Returns:
        The mean of :func:`precision_at_k_per_user`, leaving out users without
        relevant items with one ``MetricWarning`` saying how many; NaN if none has any.
    """
    return _mean(precision_at_k_per_user(recommended, relevant, k),
                 _label("precision", recommended, k))


def recall_at_k(recommended: Any, relevant: Any, k: int | None = None) -> float:
    """Mean recall@k over the users with relevant items.

    Args / Returns / Raises: as :func:`precision_at_k`.
    """
    return _mean(recall_at_k_per_user(recommended, relevant, k), _label("recall", recommended, k))


def hit_rate_at_k(recommended: Any, relevant: Any, k: int | None = None) -> float:
    """Mean hit rate@k over the users with relevant items.

    Args / Returns / Raises: as :func:`precision_at_k`.
    """
    return _mean(hit_rate_at_k_per_user(recommended, relevant, k),
                 _label("hit_rate", recommended, k))


def ndcg_at_k(recommended: Any, relevant: Any, k: int | None = None) -> float:
    """Mean NDCG@k over the users with relevant items.

    Args / Returns / Raises: as :func:`precision_at_k`.
    """
    return _mean(ndcg_at_k_per_user(recommended, relevant, k), _label("ndcg", recommended, k))


def map_at_k(recommended: Any, relevant: Any, k: int | None = None) -> float:
    """Mean average precision@k over the users with relevant items.

    Args / Returns / Raises: as :func:`precision_at_k`.
    """
    return _mean(map_at_k_per_user(recommended, relevant, k), _label("map", recommended, k))


def _label(name: str, recommended: Any, k: int | None) -> str:
    width = np.shape(recommended)[-1] if k is None else k
    return f"{name}@{width}"


def coverage(recommended: Any, n_items: int) -> float:
    """Catalogue coverage: the fraction of items recommended to at least one user.

    Raises:
        ConfigError: if ``n_items`` is below 1.
        DataError: for item indices outside ``-1..n_items-1``.
    """
    require(n_items >= 1, "n_items", n_items, "must be at least 1")
    items = np.asarray(recommended, dtype=np.int64).ravel()
    _check_range(items[items != -1], n_items, "recommended", "n_items")
    shown = np.zeros(n_items, dtype=bool)
    shown[items[items >= 0]] = True
    return float(shown.sum() / n_items)
