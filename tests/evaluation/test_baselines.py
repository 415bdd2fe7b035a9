"""evaluate(..., baselines=True): popular fitted on the model's own training rows, side by side."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.data.split import split
from embrec.evaluation.evaluate import evaluate
from embrec.models import BiasedMFConfig, EASEConfig, PopularConfig
from embrec.recommender import load
from embrec.training.fit import fit

RANKING = ("ndcg@10", "precision@10", "recall@10", "hit_rate@10", "coverage")


def _split(ratings: Ratings) -> tuple[Ratings, Ratings]:
    return split(ratings, test_size=0.25, seed=0)


def test_keys_and_ratios_against_a_separately_fitted_popular(tiny: Ratings) -> None:
    train, test = _split(tiny)
    rec = fit(BiasedMFConfig(embedding_dim=4, init_std=0.05), train, TrainConfig(epochs=2, seed=0))
    result = evaluate(rec, test, metrics=["rmse", "ndcg@5", "hit_rate@5"], baselines=True,
                      threshold=3.0)
    popular = evaluate(fit(PopularConfig(), train), test, metrics=["ndcg@5", "hit_rate@5"],
                       threshold=3.0)
    mine = evaluate(rec, test, metrics=["ndcg@5", "hit_rate@5"], threshold=3.0)
    assert "rmse" in result
    for key in ("ndcg@5", "hit_rate@5"):
        assert result[key] == mine[key]
        assert result[f"popular:{key}"] == pytest.approx(popular[key])
        assert result[f"{key}/popular"] == pytest.approx(mine[key] / popular[key])
    assert not any(key.startswith("popular:rmse") for key in result)


def test_default_ranking_set_is_added_and_survives_save_load(tiny: Ratings,
                                                             tmp_path: Path) -> None:
    train, test = _split(tiny)
    rec = fit(BiasedMFConfig(embedding_dim=4, init_std=0.05), train, TrainConfig(epochs=2, seed=0))
    fresh = evaluate(rec, test, baselines=True, threshold=3.0)  # rating metrics asked only
    for key in RANKING:
        assert {key, f"popular:{key}", f"{key}/popular"} <= set(fresh)
    loaded = evaluate(load(rec.save(tmp_path / "m")), test, baselines=True, threshold=3.0)
    assert {k: v for k, v in loaded.items() if k.startswith("popular:")} == {
        k: v for k, v in fresh.items() if k.startswith("popular:")}


def test_popular_against_itself_has_ratio_one(tiny: Ratings) -> None:
    train, test = _split(tiny)
    result = evaluate(fit(PopularConfig(), train), test, baselines=True, threshold=3.0)
    for key in RANKING:
        assert result[key] == pytest.approx(result[f"popular:{key}"])
        assert result[f"{key}/popular"] == pytest.approx(1.0)


def test_ranking_model_reports_ranking_metrics_only(tiny: Ratings) -> None:
    train, test = _split(tiny)
    rec = fit(EASEConfig(l2=5.0), train)
    result = evaluate(rec, test, threshold=3.0)  # the default asks for rmse, mae, mse
    assert not {"rmse", "mae", "mse"} & set(result)
    assert set(RANKING) <= set(result) and 0 < result["ndcg@10"] <= 1
    asked = evaluate(rec, test, metrics=["rmse", "ndcg@3"], threshold=3.0)
    assert "rmse" not in asked and "ndcg@3" in asked and "ndcg@10" not in asked


def test_ratio_is_nan_when_popular_scores_zero() -> None:
    # counts: a=4, b=2, c=1; mean ratings: b=1, c=5. User 1 (saw a) likes c in the test.
    train = Ratings.from_arrays([1, 2, 3, 4, 2, 3, 4], ["a", "a", "a", "a", "b", "b", "c"],
                                [3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 5.0], scale=(1.0, 5.0))
    test = Ratings.from_arrays([1], ["c"], [5.0], scale=(1.0, 5.0))
    rec = fit(PopularConfig(by="mean", damping=0.0), train)  # ranks c first: a hit
    result = evaluate(rec, test, metrics=["precision@1"], baselines=True)
    assert result["precision@1"] == 1.0 and result["popular:precision@1"] == 0.0  # b: a miss
    assert math.isnan(result["precision@1/popular"])
