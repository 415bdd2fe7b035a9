"""evaluate(): rating errors against hand and scikit-learn, fallbacks counted, ranking by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embrec.data.ratings import Ratings
from embrec.errors import ConfigError, MetricWarning
from embrec.evaluation.evaluate import evaluate
from tests.test_recommender import make_rec, random_rec


def test_rating_metrics_match_a_hand_computation_and_sklearn() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    rec = random_rec(seed=3)
    users = [1, 2, 3, 4, 99, 5, 98]
    items = [1, 5, 9, 77, 2, 3, 78]  # item 77 and 78, users 98 and 99 are unknown
    truth = np.array([4.0, 2.0, 5.0, 3.0, 1.0, 3.5, 4.0])
    test = Ratings.from_arrays(users, items, truth, scale=(1.0, 5.0))
    result = evaluate(rec, test)
    predicted = rec.predict(users, items, on_unknown="mean").astype(np.float64)
    assert result["n"] == 7 and result["unknown"] == 3
    assert result["rmse"] == pytest.approx(math.sqrt(np.mean((predicted - truth) ** 2)), rel=1e-6)
    assert result["mae"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-6)
    assert result["mse"] == pytest.approx(mean_squared_error(truth, predicted), rel=1e-6)


def test_textual_test_ids_map_to_the_same_users() -> None:
    rec = random_rec(seed=3)
    numbers = Ratings.from_arrays([1, 2], [3, 4], [4.0, 2.0])
    text = Ratings.from_arrays(["1", "2"], ["3", "4"], [4.0, 2.0])
    assert evaluate(rec, text) == evaluate(rec, numbers)


def _ranking_case():  # type: ignore[no-untyped-def]
    # user 1's scores rank items 1 > 2 > 3 > 4 > 5; item 5 was seen in training
    items = np.array([[5.0, 0], [4.0, 0], [3.0, 0], [2.0, 0], [9.0, 0]])
    rec = make_rec(np.array([[1.0, 0], [1.0, 0]]), items, [(0, 4, 5.0)])
    # relevant to user 1: items 2 and 4; item 3 rated below the threshold; user 2 has no
    # relevant item, so is not ranked
    test = Ratings.from_arrays([1, 1, 1, 2], [2, 4, 3, 1], [5.0, 4.0, 2.0, 3.0])
    return rec, test


def test_ranking_metrics_on_a_hand_made_case() -> None:
    rec, test = _ranking_case()
    result = evaluate(rec, test, metrics=["precision@2", "recall@2", "hit_rate@2", "ndcg@2",
                                          "map@2", "coverage", "recall@4"], k=2)
    assert result["users_ranked"] == 1
    assert result["precision@2"] == pytest.approx(0.5)  # top-2 is [1, 2]
    assert result["recall@2"] == pytest.approx(0.5)
    assert result["hit_rate@2"] == pytest.approx(1.0)
    assert result["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert result["map@2"] == pytest.approx(0.25)  # (1/2) / min(2, 2 relevant)
    assert result["coverage"] == pytest.approx(2 / 5)
    assert result["recall@4"] == pytest.approx(1.0)  # [1, 2, 3, 4]: item 5 was seen


def test_ranking_name_without_k_uses_k() -> None:
    rec, test = _ranking_case()
    assert set(evaluate(rec, test, metrics=["ndcg", "coverage@3"], k=3)) == {
        "n", "unknown", "users_ranked", "ndcg@3", "coverage@3"}


def test_no_relevant_item_gives_nan_with_a_warning() -> None:
    rec, test = _ranking_case()
    with pytest.warns(MetricWarning, match="no test user has an item rated >= 5.5"):
        result = evaluate(rec, test, metrics=["ndcg@2"], threshold=5.5)
    assert math.isnan(result["ndcg@2"]) and result["users_ranked"] == 0


@pytest.mark.parametrize(("name", "suggestion"), [
    ("ndgc@10", "ndcg@10"), ("rmes", "rmse"), ("precison", "precision@10"), ("rmse@3", "rmse"),
])
def test_unknown_metric_names_suggest_a_fix(name: str, suggestion: str) -> None:
    rec, test = _ranking_case()
    with pytest.raises(ConfigError, match=f"(?s){name!r} is not a known metric.*{suggestion}"):
        evaluate(rec, test, metrics=[name])


def test_segments_break_the_errors_down() -> None:
    seen = [(0, i, 3.0) for i in range(8)] + [(1, 0, 4.0)]
    rec = make_rec(np.zeros((3, 2)), np.zeros((10, 2)), seen, mean=3.0)
    # user 1: warm (8 ratings), user 2: cold (1 rating), user 3: cold (none)
    test = Ratings.from_arrays([1, 1, 2, 3, 99, 1, 2], [9, 10, 9, 9, 9, 77, 78],
                               [4.0, 2.0, 5.0, 1.0, 3.0, 4.0, 5.0], scale=(1.0, 5.0))
    result = evaluate(rec, test, metrics=["rmse", "mae", "recall@2"], segments=True,
                      cold_threshold=5)
    parts = result["segments"]
    assert {name: part["n"] for name, part in parts.items()} == {
        "cold": 2, "warm": 2, "unknown-user": 1, "unknown-item": 2}
    assert parts["warm"]["mae"] == pytest.approx(1.0)  # the model predicts 3.0 everywhere
    assert parts["cold"]["rmse"] == pytest.approx(2.0)
    assert math.isnan(parts["unknown-user"]["recall@2"])
    assert sum(part["n"] for part in parts.values()) == result["n"]
    assert result["unknown"] == 3
    assert evaluate(rec, test, segments=True, cold_threshold=0)["segments"]["cold"]["n"] == 1


def test_evaluation_does_not_import_training() -> None:
    """evaluation/ scores models; fitting them (training/) is not its work."""
    import ast
    from pathlib import Path

    import embrec.evaluation

    for path in Path(embrec.evaluation.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                     [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            assert not any(name.startswith("embrec.training") for name in names), path
