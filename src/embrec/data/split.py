"""Train/test splits whose ids are indexed on the training side only.

Each rating row lands on exactly one side and both sides are re-indexed, so a model
built from ``train`` gets embedding rows for training users and items only; test
ratings of users or items unseen in training are the cold-start cases, kept or
dropped by policy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from embrec.config import require, require_choice
from embrec.data.ratings import Ratings
from embrec.errors import DataError

__all__ = ["COLD_START", "METHODS", "cold_start_report", "kfold", "split"]

log = logging.getLogger(__name__)

METHODS = ("random", "user", "time", "last", "leave-one-out")
"""The split methods :func:`split` accepts."""

COLD_START = ("keep", "drop")
"""What :func:`split` does with test ratings of users or items unseen in training."""


def split(
    ratings: Ratings,
    *,
    test_size: float = 0.2,
    seed: int = 0,
    method: str = "random",
    n_last: int = 1,
    cold_start: str = "keep",
) -> tuple[Ratings, Ratings]:
    """Split ratings into a training and a test set.

    Methods:

    - ``"random"``: the benchmark convention, exactly:
      ``perm = numpy.random.default_rng(seed).permutation(n)``,
      ``n_test = int(test_size * n)``, train is ``perm[:n - n_test]`` and test
      ``perm[n - n_test:]`` (rows in that order), as the Keras and Surprise
      comparisons use.
    - ``"user"``: each user's ratings are split at random in the ratio
      ``test_size`` (rounded half up), keeping at least one rating of every
      user in train; users with a single rating stay wholly in train.
    - ``"time"``: a global cut-off: the last ``int(test_size * n)`` ratings by
      timestamp go to test; equal timestamps are ordered by row position.
    - ``"last"``: each user's last ``n_last`` ratings by timestamp (equal
      timestamps ordered by row position); users with at most ``n_last``
      ratings stay wholly in train. ``test_size`` is not used.
    - ``"leave-one-out"``: each user's last rating by timestamp, or a random
      one (seeded) when there are no timestamps; users with a single rating
      stay in train. ``test_size`` is not used.

    Methods other than ``"random"`` return rows in their input order.

    Args:
        ratings: the ratings to split.
        test_size: fraction of ratings held out, in (0, 1).
        seed: seeds the random choices; the same seed gives the same split.
        method: one of :data:`METHODS`.
        n_last: ratings per user held out by ``method="last"``.
        cold_start: ``"keep"`` test ratings of users or items unseen in train
            (their counts are logged), or ``"drop"`` them (logging how many).

    Returns:
        ``(train, test)``, each re-indexed to the ids it holds.

    Raises:
        ConfigError: for ``test_size`` outside (0, 1), an unknown ``method`` or
            ``cold_start`` (with a suggestion), or ``n_last`` below 1.
        DataError: for ``"time"`` or ``"last"`` on ratings without timestamps.
    """
    require(0 < test_size < 1, "test_size", test_size, "must be in (0, 1)")
    require_choice("method", method, METHODS)
    require_choice("cold_start", cold_start, COLD_START)
    require(isinstance(n_last, int | np.integer) and n_last >= 1, "n_last", n_last,
            "must be an integer of at least 1")
    if method == "random":
        train_rows, test_rows = _random_rows(len(ratings), test_size, seed)
    else:
        train_rows, test_rows = _split_rows(ratings, method, test_size, seed, int(n_last))
    test_rows = _cold_start(ratings, train_rows, test_rows, cold_start)
    return ratings.take(train_rows, reindex=True), ratings.take(test_rows, reindex=True)


def kfold(ratings: Ratings, k: int = 5, *, seed: int = 0) -> Iterator[tuple[Ratings, Ratings]]:
    """Yield ``k`` random (train, test) folds; each rating is tested exactly once.

    The rows are permuted with ``numpy.random.default_rng(seed).permutation``
    and cut into ``k`` folds whose sizes differ by at most one. Test ratings of
    users or items unseen in a fold's training side are kept and their counts
    logged, as in :func:`split`.

    Raises:
        ConfigError: if ``k`` is below 2 or above the number of ratings
            (raised at the call, not at the first fold).
    """
    require(isinstance(k, int | np.integer) and k >= 2, "k", k, "must be an integer of at least 2")
    require(k <= len(ratings), "k", k, f"must be at most the number of ratings ({len(ratings)})")
    folds = np.array_split(np.random.default_rng(seed).permutation(len(ratings)), int(k))
    return _folds(ratings, folds)


def _folds(ratings: Ratings, folds: list[np.ndarray]) -> Iterator[tuple[Ratings, Ratings]]:
    for i, test_rows in enumerate(folds):
        train_rows = np.concatenate(folds[:i] + folds[i + 1:])
        _cold_start(ratings, train_rows, test_rows, "keep")
        yield ratings.take(train_rows, reindex=True), ratings.take(test_rows, reindex=True)


def cold_start_report(train: Ratings, test: Ratings) -> dict[str, int]:
    """Count the test ratings whose user, item or both are unseen in ``train``.

    Ids are compared raw, so the two sides may be indexed differently.

    Returns:
        ``test_ratings`` (all of them); ``unseen_user`` and ``unseen_item``
        (ratings whose user, resp. item, is unseen, whatever the other side);
        ``unseen_both``; ``unseen_any`` (user or item unseen); ``new_users`` and
        ``new_items`` (distinct unseen ids that have a test rating).
    """
    user_known = train.users.index(train.users.coerce(test.users.ids), on_unknown="missing") >= 0
    item_known = train.items.index(train.items.coerce(test.items.ids), on_unknown="missing") >= 0
    new_users = np.bincount(test.user, minlength=test.n_users)[~user_known]
    new_items = np.bincount(test.item, minlength=test.n_items)[~item_known]
    counts = _counts(~user_known[test.user], ~item_known[test.item], len(test))
    return counts | {"new_users": int((new_users > 0).sum()),
                     "new_items": int((new_items > 0).sum())}


def _counts(unseen_user: np.ndarray, unseen_item: np.ndarray, n: int) -> dict[str, int]:
    return {"test_ratings": n, "unseen_user": int(unseen_user.sum()),
            "unseen_item": int(unseen_item.sum()),
            "unseen_both": int((unseen_user & unseen_item).sum()),
            "unseen_any": int((unseen_user | unseen_item).sum())}


def _timestamps(ratings: Ratings, method: str) -> np.ndarray:
    if ratings.timestamp is None:
        source = f" from {ratings.source!r}" if ratings.source else ""
        raise DataError(f"split method={method!r} needs timestamps, but the ratings{source} "
                        "have none", column="timestamp", hint="read the ratings with their "
                        "timestamp column, or use method='random' or method='user'")
    return ratings.timestamp


def _random_rows(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark convention; keep it byte-for-byte (benchmarks depend on the rows)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(test_size * n)
    return perm[: n - n_test], perm[n - n_test:]


def _split_rows(ratings: Ratings, method: str, test_size: float, seed: int,
                n_last: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of train and test for the methods other than ``"random"``."""
    n = len(ratings)
    if method == "time":
        order = np.argsort(_timestamps(ratings, method), kind="stable")
        test = np.zeros(n, dtype=bool)
        test[order[n - int(test_size * n):]] = True
        return np.flatnonzero(~test), np.flatnonzero(test)
    counts = np.bincount(ratings.user, minlength=ratings.n_users)
    if method == "user":
        key = np.random.default_rng(seed).permutation(n)
        held = np.minimum(np.floor(test_size * counts + 0.5), counts - 1)
    else:
        n_tail = n_last if method == "last" else 1
        if method == "last" or ratings.timestamp is not None:
            key = _timestamps(ratings, method)
        else:  # leave-one-out without timestamps: a seeded random order
            key = np.random.default_rng(seed).permutation(n)
        held = np.where(counts > n_tail, n_tail, 0)
    test = _user_tails(ratings.user, key, counts, held.astype(np.int64))
    return np.flatnonzero(~test), np.flatnonzero(test)


def _user_tails(user: np.ndarray, key: np.ndarray, counts: np.ndarray,
                held: np.ndarray) -> np.ndarray:
    """Mask of each user's last ``held[user]`` rows in ``key`` order (ties by row position).

    One stable sort by (user, key); a row's rank from the end of its user's run
    is its user's count minus its position in the run, minus one.
    """
    order = np.lexsort((key, user))  # lexsort is stable: equal keys keep row order
    sorted_user = user[order]
    starts = np.cumsum(counts) - counts
    from_end = counts[sorted_user] - 1 - (np.arange(len(user)) - starts[sorted_user])
    mask = np.zeros(len(user), dtype=bool)
    mask[order] = from_end < held[sorted_user]
    return mask


def _cold_start(ratings: Ratings, train_rows: np.ndarray, test_rows: np.ndarray,
                policy: str) -> np.ndarray:
    """Log the cold-start counts of ``test_rows``; drop those rows under ``"drop"``."""
    unseen_user = ~np.isin(ratings.user[test_rows], ratings.user[train_rows])
    unseen_item = ~np.isin(ratings.item[test_rows], ratings.item[train_rows])
    counts = _counts(unseen_user, unseen_item, len(test_rows))
    if policy == "drop":
        log.info("split: dropped %d of %d test ratings whose user (%d) or item (%d) is unseen "
                 "in train", counts["unseen_any"], len(test_rows), counts["unseen_user"],
                 counts["unseen_item"])
        return test_rows[~(unseen_user | unseen_item)]
    if counts["unseen_any"]:
        log.info("split: %d of %d test ratings are cold-start (unseen user %d, unseen item %d, "
                 "both %d); kept (cold_start='drop' removes them)", counts["unseen_any"],
                 len(test_rows), counts["unseen_user"], counts["unseen_item"],
                 counts["unseen_both"])
    return test_rows
