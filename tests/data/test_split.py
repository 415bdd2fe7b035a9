"""Splits: property tests (no overlap, sizes, per-user guarantees, seeds) and error messages."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embrec.data.ratings import Ratings
from embrec.data.split import METHODS, cold_start_report, kfold, split
from embrec.errors import ConfigError, DataError

PROPERTY = settings(max_examples=50, deadline=None)


@st.composite
def ratings_strategy(draw: st.DrawFn, with_timestamps: bool = True) -> Ratings:
    """Up to 40 distinct (user, item) ratings with raw ids unlike their indices and tied times."""
    n_users, n_items = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    cells = draw(st.sets(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
                         min_size=1, max_size=40))
    cells_list = draw(st.permutations(sorted(cells)))
    n = len(cells_list)
    stars = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)) if with_timestamps else None
    users = [100 + 7 * u for u, _ in cells_list]
    items = [f"i{i}" for _, i in cells_list]
    return Ratings.from_arrays(users, items, np.array(stars, dtype=float), times)


def rows(r: Ratings) -> list[tuple[object, ...]]:
    """The ratings as raw (user, item, rating, timestamp) tuples, in row order."""
    ts = r.timestamp.tolist() if r.timestamp is not None else [None] * len(r)
    return list(zip(r.users.id_of(r.user).tolist(), r.items.id_of(r.item).tolist(),
                    r.rating.tolist(), ts, strict=True))


def pairs(r: Ratings) -> list[tuple[object, object]]:
    return [(u, i) for u, i, _, _ in rows(r)]


def assert_partition(ratings: Ratings, train: Ratings, test: Ratings) -> None:
    """Every row lands on exactly one side, no (user, item) on both, indexes hold only own ids."""
    assert Counter(rows(train)) + Counter(rows(test)) == Counter(rows(ratings))
    assert not set(pairs(train)) & set(pairs(test))
    for side in (train, test):
        assert side.n_users == len(np.unique(side.user))
        assert side.n_items == len(np.unique(side.item))


def per_user(r: Ratings) -> Counter[object]:
    return Counter(r.users.id_of(r.user).tolist())


# ---------------------------------------------------------------- every method
@PROPERTY
@given(ratings_strategy(), st.sampled_from(METHODS), st.floats(0.05, 0.95), st.integers(0, 9),
       st.integers(1, 3))
def test_every_method_partitions_the_rows(ratings: Ratings, method: str, test_size: float,
                                          seed: int, n_last: int) -> None:
    train, test = split(ratings, test_size=test_size, seed=seed, method=method, n_last=n_last)
    assert_partition(ratings, train, test)
    again = split(ratings, test_size=test_size, seed=seed, method=method, n_last=n_last)
    assert rows(again[0]) == rows(train) and rows(again[1]) == rows(test)


@PROPERTY
@given(ratings_strategy(), st.floats(0.01, 0.99), st.integers(0, 2**32))
def test_random_split_is_the_benchmark_permutation(ratings: Ratings, test_size: float,
                                                  seed: int) -> None:
    train, test = split(ratings, test_size=test_size, seed=seed)
    n = len(ratings)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(test_size * n)
    everything = pairs(ratings)
    assert pairs(train) == [everything[i] for i in perm[: n - n_test]]
    assert pairs(test) == [everything[i] for i in perm[n - n_test:]]
    assert abs(len(test) - test_size * n) < 1


@PROPERTY
@given(ratings_strategy(), st.floats(0.05, 0.95), st.integers(0, 9))
def test_user_split_keeps_every_user_in_train(ratings: Ratings, test_size: float,
                                              seed: int) -> None:
    train, test = split(ratings, test_size=test_size, seed=seed, method="user")
    counts, held, kept = per_user(ratings), per_user(test), per_user(train)
    assert set(held) <= set(kept)
    for user, count in counts.items():
        assert kept[user] >= 1
        assert abs(held[user] - test_size * count) <= 1
        assert held[user] == min(int(np.floor(test_size * count + 0.5)), count - 1)


@PROPERTY
@given(ratings_strategy(), st.floats(0.05, 0.95))
def test_time_split_cuts_at_one_time(ratings: Ratings, test_size: float) -> None:
    train, test = split(ratings, test_size=test_size, method="time")
    assert len(test) == int(test_size * len(ratings))
    if len(train) and len(test):
        assert train.timestamp is not None and test.timestamp is not None
        assert train.timestamp.max() <= test.timestamp.min()


@PROPERTY
@given(ratings_strategy(), st.integers(1, 3))
def test_last_holds_out_each_users_latest(ratings: Ratings, n_last: int) -> None:
    train, test = split(ratings, method="last", n_last=n_last)
    held = per_user(test)
    for user, count in per_user(ratings).items():
        assert held[user] == (n_last if count > n_last else 0)
    latest_train: dict[object, int] = {}
    for user, _, _, ts in rows(train):
        latest_train[user] = max(latest_train.get(user, -1), int(ts))  # type: ignore[arg-type]
    for user, _, _, ts in rows(test):
        assert int(ts) >= latest_train[user]  # type: ignore[arg-type]


@PROPERTY
@given(ratings_strategy(with_timestamps=False), st.integers(0, 9))
def test_leave_one_out_without_timestamps_is_seeded(ratings: Ratings, seed: int) -> None:
    _, test = split(ratings, method="leave-one-out", seed=seed)
    held = per_user(test)
    assert all(held[u] == (1 if c > 1 else 0) for u, c in per_user(ratings).items())
    assert rows(split(ratings, method="leave-one-out", seed=seed)[1]) == rows(test)


def test_leave_one_out_takes_the_latest_and_breaks_ties_by_row() -> None:
    ratings = Ratings.from_arrays([1, 1, 1, 2, 2, 3], [10, 11, 12, 10, 11, 10],
                                  [5, 4, 3, 2, 1, 5], [5, 9, 9, 1, 0, 7])
    train, test = split(ratings, method="leave-one-out")
    # user 1: items 11 and 12 tie at t=9, the later row (12) is last; user 2: item 10 at t=1;
    # user 3 has one rating and stays in train
    assert sorted(pairs(test)) == [(1, 12), (2, 10)]
    assert pairs(train) == [(1, 10), (1, 11), (2, 11), (3, 10)]


def test_different_seeds_give_different_splits(tiny: Ratings) -> None:
    for method in ("random", "user"):
        first = set(pairs(split(tiny, seed=0, method=method)[1]))
        assert first != set(pairs(split(tiny, seed=1, method=method)[1]))
        assert first == set(pairs(split(tiny, seed=0, method=method)[1]))


def test_notebook_splits_on_tiny(tiny: Ratings) -> None:
    for test_size, n_test in ((0.2, 240), (0.1, 120)):
        train, test = split(tiny, test_size=test_size, seed=42)
        assert (len(train), len(test)) == (len(tiny) - n_test, n_test)
        assert train.n_users <= tiny.n_users and train.n_items <= tiny.n_items


# ---------------------------------------------------------------- k-fold
@PROPERTY
@given(ratings_strategy(), st.integers(2, 6), st.integers(0, 9))
def test_kfold_tests_each_row_exactly_once(ratings: Ratings, k: int, seed: int) -> None:
    if len(ratings) < k:
        with pytest.raises(ConfigError, match="at most the number of ratings"):
            kfold(ratings, k, seed=seed)
        return
    folds = list(kfold(ratings, k, seed=seed))
    assert len(folds) == k
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    tested: Counter[tuple[object, ...]] = Counter()
    for train, test in folds:
        assert_partition(ratings, train, test)
        tested += Counter(rows(test))
    assert tested == Counter(rows(ratings))
    assert [rows(t) for _, t in kfold(ratings, k, seed=seed)] == [rows(t) for _, t in folds]


def test_kfold_rejects_bad_k_at_the_call(tiny: Ratings) -> None:
    with pytest.raises(ConfigError, match="k=1 must be an integer of at least 2"):
        kfold(tiny, 1)
    with pytest.raises(ConfigError, match=r"at most the number of ratings \(1200\)"):
        kfold(tiny, 5000)


# ---------------------------------------------------------------- cold start
def cold_case() -> Ratings:
    # user 3 and item 30 appear once each, in the two latest ratings
    return Ratings.from_arrays([1, 1, 2, 2, 3, 1], [10, 20, 10, 20, 10, 30],
                               [5, 4, 3, 2, 1, 5], [1, 2, 3, 4, 5, 6])


def test_cold_start_report_counts_unseen_users_and_items() -> None:
    train = Ratings.from_arrays([1, 1, 2], [10, 20, 10], [5, 4, 3])
    test = Ratings.from_arrays([1, 3, 3, 2, 4], [30, 10, 40, 20, 40], [1, 2, 3, 4, 5])
    assert cold_start_report(train, test) == {
        "test_ratings": 5, "unseen_user": 3, "unseen_item": 3, "unseen_both": 2,
        "unseen_any": 4, "new_users": 2, "new_items": 2,
    }


def test_cold_start_keep_logs_and_drop_removes(caplog: pytest.LogCaptureFixture) -> None:
    ratings = cold_case()
    with caplog.at_level(logging.INFO, logger="embrec.data.split"):
        train, test = split(ratings, method="time", test_size=0.34)  # the last 2 by time
    assert pairs(test) == [(3, 10), (1, 30)]
    report = cold_start_report(train, test)
    assert (report["unseen_user"], report["unseen_item"], report["unseen_any"]) == (1, 1, 2)
    assert "2 of 2 test ratings are cold-start" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="embrec.data.split"):
        train, test = split(ratings, method="time", test_size=0.34, cold_start="drop")
    assert len(test) == 0 and len(train) == 4
    assert "dropped 2 of 2 test ratings" in caplog.text


@PROPERTY
@given(ratings_strategy(), st.sampled_from(METHODS), st.floats(0.05, 0.95), st.integers(0, 9))
def test_drop_leaves_no_cold_start(ratings: Ratings, method: str, test_size: float,
                                   seed: int) -> None:
    train, test = split(ratings, test_size=test_size, seed=seed, method=method,
                        cold_start="drop")
    assert cold_start_report(train, test)["unseen_any"] == 0
    assert set(pairs(train)) | set(pairs(test)) <= set(pairs(ratings))
    kept_train, _ = split(ratings, test_size=test_size, seed=seed, method=method)
    assert rows(kept_train) == rows(train)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1])
def test_bad_test_size(tiny: Ratings, test_size: float) -> None:
    with pytest.raises(ConfigError, match=rf"test_size={test_size!r} must be in \(0, 1\)"):
        split(tiny, test_size=test_size)


def test_unknown_method_suggests_the_closest(tiny: Ratings) -> None:
    with pytest.raises(ConfigError, match="(?s)method='randm' must be one of.*'random'"):
        split(tiny, method="randm")
    with pytest.raises(ConfigError, match="did you mean 'drop'"):
        split(tiny, cold_start="dorp")
    with pytest.raises(ConfigError, match="n_last=0"):
        split(tiny, method="last", n_last=0)


@pytest.mark.parametrize("method", ["time", "last"])
def test_time_methods_need_timestamps(method: str) -> None:
    ratings = Ratings.from_arrays([1, 2], [3, 4], [5.0, 4.0], source="plain.csv")
    with pytest.raises(DataError, match=f"method='{method}' needs timestamps, but the ratings "
                                        "from 'plain.csv' have none"):
        split(ratings, method=method)
