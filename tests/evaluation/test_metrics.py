"""Metrics: hand-computed cases, NaN + MetricWarning for empty truth, and oracles
(scikit-learn for MSE/MAE/NDCG, a slow per-user loop for precision/recall/MAP/hit rate)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_absolute_error, mean_squared_error, ndcg_score

from embrec.errors import ConfigError, DataError, MetricWarning
from embrec.evaluation import metrics as m

PROPERTY = settings(max_examples=50, deadline=None)
PER_USER = {
    "precision": m.precision_at_k_per_user, "recall": m.recall_at_k_per_user,
    "ndcg": m.ndcg_at_k_per_user, "map": m.map_at_k_per_user,
    "hit_rate": m.hit_rate_at_k_per_user,
}
MEAN = {
    "precision": m.precision_at_k, "recall": m.recall_at_k, "ndcg": m.ndcg_at_k,
    "map": m.map_at_k, "hit_rate": m.hit_rate_at_k,
}


def truth(rows: list[list[int]], n_items: int, gains: list[list[float]] | None = None):  # type: ignore[no-untyped-def]
    """CSR whose row u stores the items rows[u] (with gains[u], default 1)."""
    user = [u for u, items in enumerate(rows) for _ in items]
    item = [i for items in rows for i in items]
    data = [g for row in gains for g in row] if gains else [1.0] * len(item)
    return sp.csr_matrix((data, (user, item)), shape=(len(rows), n_items))


LOG3 = math.log2(3)


# ---------------------------------------------------------------- rating metrics
def test_rating_metrics_by_hand() -> None:
    y_true, y_pred = [4.0, 2.0, 5.0, 3.0], [3.0, 2.0, 5.5, 5.0]
    # errors -1, 0, 0.5, 2 -> squares 1, 0, 0.25, 4; absolute 1, 0, 0.5, 2
    assert m.mse(y_true, y_pred) == pytest.approx(5.25 / 4)
    assert m.rmse(y_true, y_pred) == pytest.approx(math.sqrt(5.25 / 4))
    assert m.mae(y_true, y_pred) == pytest.approx(3.5 / 4)
    assert m.rmse(y_true, y_true) == 0.0


@PROPERTY
@given(st.lists(st.tuples(st.floats(-10, 10), st.floats(-10, 10)), min_size=1, max_size=60))
def test_rating_metrics_match_sklearn(values: list[tuple[float, float]]) -> None:
    y_true, y_pred = np.array(values).T
    expected = mean_squared_error(y_true, y_pred)
    assert m.mse(y_true, y_pred) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert m.rmse(y_true, y_pred) == pytest.approx(math.sqrt(expected), rel=1e-9, abs=1e-12)
    assert m.mae(y_true, y_pred) == pytest.approx(mean_absolute_error(y_true, y_pred),
                                                  rel=1e-9, abs=1e-12)


def test_rating_metrics_reject_mismatched_lengths_and_warn_on_empty() -> None:
    with pytest.raises(DataError, match="y_true has 2 values but y_pred has 3"):
        m.rmse([1, 2], [1, 2, 3])
    with pytest.warns(MetricWarning, match="mae of no ratings"):
        assert math.isnan(m.mae([], []))


# ---------------------------------------------------------------- hand-made ranking cases
def test_perfect_ranking_scores_one() -> None:
    relevant = truth([[2, 0], [1]], n_items=4)
    recommended = np.array([[0, 2], [1, 3]])
    assert m.ndcg_at_k(recommended, relevant) == pytest.approx(1.0)
    assert m.map_at_k(recommended, relevant) == pytest.approx(1.0)
    assert m.recall_at_k(recommended, relevant) == pytest.approx(1.0)
    assert m.hit_rate_at_k(recommended, relevant) == pytest.approx(1.0)
    assert m.precision_at_k(recommended, relevant, 1) == pytest.approx(1.0)


def test_no_hit_scores_zero() -> None:
    relevant = truth([[2, 0], [1]], n_items=4)
    recommended = np.array([[1, 3], [0, 2]])
    for name, metric in MEAN.items():
        assert metric(recommended, relevant) == 0.0, name


def test_partial_ranking_worked_by_hand() -> None:
    relevant = truth([[1, 3, 5]], n_items=6)
    recommended = np.array([[3, 0, 5, 2, -1]])  # hits at ranks 1 and 3; one padded slot
    per_user = {name: float(f(recommended, relevant)[0]) for name, f in PER_USER.items()}
    assert per_user["precision"] == pytest.approx(2 / 5)  # padding counts as a miss
    assert per_user["recall"] == pytest.approx(2 / 3)
    assert per_user["hit_rate"] == 1.0
    assert per_user["map"] == pytest.approx((1 / 1 + 2 / 3) / 3)  # / min(k=5, 3 relevant)
    # DCG = 1/log2(2) + 1/log2(4); IDCG = 1 + 1/log2(3) + 1/log2(4)
    assert per_user["ndcg"] == pytest.approx(1.5 / (1.5 + 1 / LOG3))
    # at k=2 only rank 1 hits: AP = 1 / min(2, 3); IDCG takes the top-2 gains
    assert m.map_at_k(recommended, relevant, 2) == pytest.approx(1 / 2)
    assert m.recall_at_k(recommended, relevant, 2) == pytest.approx(1 / 3)
    assert m.ndcg_at_k(recommended, relevant, 2) == pytest.approx(1 / (1 + 1 / LOG3))


def test_graded_gains_for_ndcg() -> None:
    relevant = truth([[0, 1]], n_items=3, gains=[[5.0, 3.0]])
    # ranked [1, 0]: DCG = 3 + 5/log2(3); ideal [0, 1]: 5 + 3/log2(3)
    assert m.ndcg_at_k(np.array([[1, 0]]), relevant) == pytest.approx(
        (3 + 5 / LOG3) / (5 + 3 / LOG3))
    assert m.ndcg_at_k(np.array([[0, 1]]), relevant) == pytest.approx(1.0)
    # at k=1 the ideal holds only the largest gain
    assert m.ndcg_at_k(np.array([[1, 2]]), relevant, 1) == pytest.approx(3 / 5)


def test_padding_and_k_beyond_the_list() -> None:
    relevant = truth([[0], [1, 2]], n_items=3)
    recommended = np.array([[-1, -1], [2, -1]])
    assert m.precision_at_k_per_user(recommended, relevant).tolist() == [0.0, 0.5]
    assert m.precision_at_k_per_user(recommended, relevant, 4).tolist() == [0.0, 0.25]
    assert m.recall_at_k_per_user(recommended, relevant, 4).tolist() == [0.0, 0.5]
    assert m.hit_rate_at_k(recommended[:, :1], relevant) == 0.5
    # a hit after padding still counts at its rank
    assert m.map_at_k_per_user(np.array([[-1, 0], [-1, 1]]), relevant).tolist() == [
        pytest.approx(0.5), pytest.approx(0.25)]


def test_users_without_relevant_items_are_nan_with_one_warning() -> None:
    relevant = truth([[0], [], [1], []], n_items=3)
    recommended = np.array([[0, 1], [0, 1], [2, 0], [1, 2]])
    for name, per_user in PER_USER.items():
        values = per_user(recommended, relevant)
        assert np.isnan(values[[1, 3]]).all() and not np.isnan(values[[0, 2]]).any(), name
    with pytest.warns(MetricWarning, match=r"ndcg@2: 2 of 4 users have no relevant items") as w:
        assert m.ndcg_at_k(recommended, relevant) == pytest.approx(0.5)  # users 0 and 2: 1, 0
    assert len(w) == 1
    with pytest.warns(MetricWarning, match="recall@1: 4 of 4 users"):
        assert math.isnan(m.recall_at_k(recommended[:, :1], truth([[], [], [], []], 3)))


def test_coverage() -> None:
    assert m.coverage(np.array([[0, 1], [1, -1]]), n_items=4) == 0.5
    assert m.coverage(np.full((2, 3), -1), n_items=4) == 0.0
    with pytest.raises(DataError, match="outside 0..n_items-1"):
        m.coverage(np.array([[0, 4]]), n_items=4)
    with pytest.raises(ConfigError, match="n_items=0"):
        m.coverage(np.array([[0]]), n_items=0)


# ---------------------------------------------------------------- relevance matrix
def test_relevance_matrix_keeps_ratings_at_or_above_threshold() -> None:
    relevant = m.relevance_matrix([0, 0, 1, 1], [2, 0, 1, 2], [4.0, 3.5, 5.0, 4.5], 2, 3)
    assert relevant.toarray().tolist() == [[0, 0, 1], [0, 1, 1]]
    graded = m.relevance_matrix([0, 1], [1, 0], [4.5, 2.0], 2, 2, threshold=2.0, graded=True)
    assert graded.toarray().tolist() == [[0, 4.5], [2.0, 0]]


def test_relevance_matrix_errors() -> None:
    with pytest.raises(DataError, match="1 .user, item. pairs appear more than once"):
        m.relevance_matrix([0, 0], [1, 1], [5, 5], 1, 2)
    with pytest.raises(DataError, match=r"item_idx\[1\] = 7 is outside 0..n_items-1"):
        m.relevance_matrix([0, 0], [1, 7], [5, 5], 1, 2)
    with pytest.raises(DataError, match="differ in length"):
        m.relevance_matrix([0], [1, 0], [5, 5], 1, 2)


# ---------------------------------------------------------------- input validation
def test_bad_ranking_inputs_are_reported() -> None:
    relevant = truth([[0], [1]], n_items=3)
    with pytest.raises(DataError, match=r"recommended\[1\] holds item 3 outside 0..2"):
        m.ndcg_at_k(np.array([[0, 1], [3, 1]]), relevant)
    with pytest.raises(DataError, match=r"recommended\[0\] lists an item twice"):
        m.recall_at_k(np.array([[1, 1], [0, 1]]), relevant)
    with pytest.raises(DataError, match=r"shape \(3, 2\)"):
        m.precision_at_k(np.zeros((3, 2), dtype=int), relevant)
    with pytest.raises(DataError, match="float64"):
        m.precision_at_k(np.zeros((2, 2)), relevant)
    with pytest.raises(DataError, match="scipy sparse matrix"):
        m.precision_at_k(np.zeros((2, 2), dtype=int), relevant.toarray())
    with pytest.raises(ConfigError, match="k=0 must be a positive integer"):
        m.map_at_k(np.zeros((2, 2), dtype=int), relevant, 0)
    with pytest.raises(DataError, match="negative or non-finite gains"):
        m.ndcg_at_k(np.zeros((2, 1), dtype=int), truth([[0], [1]], 3, gains=[[-1.0], [1.0]]))


def test_non_canonical_input_is_read_not_changed() -> None:
    # duplicates summed, unsorted indices and an explicit zero (not relevant)
    relevant = sp.csr_matrix((np.array([1.0, 0.0, 1.0]), np.array([2, 0, 2]),
                              np.array([0, 3, 3])), shape=(2, 3))
    before = (relevant.data.copy(), relevant.indices.copy())
    values = m.ndcg_at_k_per_user(np.array([[2, 0], [0, 1]]), relevant)
    assert values[0] == pytest.approx(1.0) and math.isnan(values[1])
    assert m.recall_at_k_per_user(np.array([[0, 1], [0, 1]]), relevant)[0] == 0.0
    assert (relevant.data.tolist(), relevant.indices.tolist()) == (
        before[0].tolist(), before[1].tolist())
    assert m.ndcg_at_k_per_user(np.array([[2]]), sp.csr_array(relevant[:1]))[0] == 1.0


# ---------------------------------------------------------------- oracles
@st.composite
def ranking_case(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    """Lists of distinct items padded with -1, relevance sets (some empty), and a k."""
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 10))
    width = draw(st.integers(1, n_items + 2))
    lists, rows = [], []
    for _ in range(n_users):
        length = draw(st.integers(0, min(width, n_items)))
        ranked = draw(st.permutations(range(n_items)))[:length]
        lists.append(list(ranked) + [-1] * (width - length))
        rows.append(sorted(draw(st.sets(st.integers(0, n_items - 1)))))
    k = draw(st.one_of(st.none(), st.integers(1, width + 2)))
    return np.array(lists), rows, n_items, k


def slow_reference(ranked: list[int], relevant: set[int], k: int) -> dict[str, float]:
    if not relevant:
        return dict.fromkeys(PER_USER, math.nan)
    top = (ranked + [-1] * k)[:k]
    hits = [item >= 0 and item in relevant for item in top]
    precisions = [sum(hits[: r + 1]) / (r + 1) for r in range(k) if hits[r]]
    dcg = sum(1 / math.log2(r + 2) for r in range(k) if hits[r])
    ideal = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
    return {"precision": sum(hits) / k, "recall": sum(hits) / len(relevant),
            "map": sum(precisions) / min(k, len(relevant)), "hit_rate": float(any(hits)),
            "ndcg": dcg / ideal}


@PROPERTY
@given(ranking_case())
def test_ranking_metrics_match_a_slow_reference(case) -> None:  # type: ignore[no-untyped-def]
    recommended, rows, n_items, k = case
    relevant = truth(rows, n_items)
    depth = recommended.shape[1] if k is None else k
    expected = [slow_reference(list(r), set(items), depth)
                for r, items in zip(recommended.tolist(), rows, strict=True)]
    for name, per_user in PER_USER.items():
        got = per_user(recommended, relevant, k)
        want = np.array([e[name] for e in expected])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetricWarning)
            mean = MEAN[name](recommended, relevant, k)
        assert (math.isnan(mean) and np.isnan(want).all()) or mean == pytest.approx(
            np.nanmean(want) if not np.isnan(want).all() else math.nan)


@PROPERTY
@given(st.integers(1, 5), st.integers(2, 9), st.data())
def test_ndcg_matches_sklearn(n_users: int, n_items: int, data: st.DataObject) -> None:
    gains = np.array(data.draw(st.lists(st.lists(st.sampled_from([0, 0, 1, 2, 3]),
                                                 min_size=n_items, max_size=n_items),
                                        min_size=n_users, max_size=n_users)), dtype=float)
    width = data.draw(st.integers(1, n_items))
    k = data.draw(st.integers(1, width))  # beyond the list sklearn would average tied gains
    order = np.array([data.draw(st.permutations(range(n_items))) for _ in range(n_users)])
    recommended = order[:, :width]
    scores = np.full((n_users, n_items), -1e9)  # unlisted items rank below every listed one
    np.put_along_axis(scores, recommended, np.arange(width, 0, -1, dtype=float)[None, :], 1)
    ours = m.ndcg_at_k_per_user(recommended, sp.csr_matrix(gains), k)
    for user in range(n_users):
        if gains[user].any():
            expected = ndcg_score(gains[[user]], scores[[user]], k=k)
            assert ours[user] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        else:
            assert math.isnan(ours[user])
