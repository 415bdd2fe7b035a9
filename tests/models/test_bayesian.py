"""The Gibbs-sampled factorization model: conditionals, planted answers, save/load, cold start."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import embrec
from embrec.data.features import features_from_frame
from embrec.data.synthetic import generate
from embrec.models import BayesianFMConfig
from embrec.models.bayesian import _sides
from embrec.training.gibbs import Side, _curvature, sample_side
from tests.synthetic_files import group_tastes

FAST = {"embedding_dim": 4, "sweeps": 30, "burn_in": 10}


def conditional_mean(side: Side, ratings: sp.csr_matrix, other: np.ndarray, offset: np.ndarray,
                     alpha: float) -> np.ndarray:
    """The conditional mean of ``side.weights`` by a dense solve: the oracle for sample_side."""
    curvature, targets, _ = _curvature(ratings, other, offset)
    n, k1 = side.weights.shape
    dense = side.design.toarray()
    # A = alpha Σ_u (x_u x_uᵀ) ⊗ C_u + diag(row precision), V flattened row-major
    a = alpha * np.einsum("uj,ul,ukm->jklm", dense, dense, curvature).reshape(n * k1, n * k1)
    a += np.diag((side.precision[side.group]).ravel())
    rhs = dense.T @ (alpha * targets) + side.precision[side.group] * side.mean[side.group]
    solved: np.ndarray = np.linalg.solve(a, rhs.ravel()).reshape(n, k1)
    return solved


def test_conditional_update_is_the_normal_posterior_mean_without_noise(tiny: embrec.Ratings
                                                                       ) -> None:
    """With the sampling noise off, the CG update equals a dense solve of the same posterior."""
    users, items, _, _ = _sides(BayesianFMConfig(embedding_dim=3, seed=2), tiny)
    rng = np.random.default_rng(0)
    users.mean = rng.normal(0, 0.1, users.mean.shape)
    users.precision = rng.gamma(2.0, 1.0, users.precision.shape)
    items.weights = rng.normal(0, 0.5, items.weights.shape)
    ratings = sp.csr_matrix((tiny.rating - 3.5, (tiny.user, tiny.item)),
                            shape=(tiny.n_users, tiny.n_items))
    q = items.vectors()
    expected = conditional_mean(users, ratings, q, q[:, -1], alpha=2.0)
    sample_side(users, ratings, q, q[:, -1], 2.0, None, tolerance=1e-12, max_iter=2000)
    np.testing.assert_allclose(users.weights, expected, rtol=1e-6, atol=1e-8)


def test_posterior_mean_beats_the_global_mean_on_planted_data() -> None:
    data = generate(n_users=150, n_items=80, n_ratings=6000, rank=3, noise=0.3,
                    round_ratings=False, seed=4)
    train, test = embrec.split(data.ratings, test_size=0.2, seed=0)
    rec = embrec.fit(BayesianFMConfig(**FAST), train)
    rmse = embrec.evaluate(rec, test, metrics=["rmse"])["rmse"]
    baseline = float(np.sqrt(np.mean((test.rating - train.rating.mean()) ** 2)))
    assert rmse < 0.6 * baseline, (rmse, baseline)


def test_save_load_round_trip_keeps_averaged_predictions_and_cold_start(
        tiny: embrec.Ratings, tmp_path: Path) -> None:
    features = features_from_frame(pd.DataFrame(
        {"group": np.where(tiny.users.ids % 2 == 0, "even", "odd")},
        index=tiny.users.ids), kind="user")
    train = dataclasses.replace(tiny, user_features=features)
    rec = embrec.fit(BayesianFMConfig(**FAST), train)
    loaded = embrec.load(rec.save(tmp_path / "bfm"))
    u, i = tiny.users.id_of(tiny.user[:50]), tiny.items.id_of(tiny.item[:50])
    np.testing.assert_array_equal(rec.predict(u, i), loaded.predict(u, i))
    assert loaded.model.feature_schema("user") == features.schema
    assert loaded.model.feature_schema("item") is None
    rows = features.schema.encode(pd.DataFrame({"group": ["even", "odd"]}))
    np.testing.assert_array_equal(rec.model.cold_vectors("user", rows).numpy(),
                                  loaded.model.cold_vectors("user", rows).numpy())
    pd.testing.assert_frame_equal(rec.similar_items(tiny.items.ids[0], n=3),
                                  loaded.similar_items(tiny.items.ids[0], n=3))


def test_averaged_prediction_is_the_mean_over_samples(tiny: embrec.Ratings) -> None:
    rec = embrec.fit(BayesianFMConfig(embedding_dim=2, sweeps=5, burn_in=2), tiny)
    model = rec.model
    users = model.user_table.reshape(tiny.n_users, 3, 4).numpy() * 3  # undo the 1/S
    items = model.item_table.reshape(tiny.n_items, 3, 4).numpy()
    per_sample = np.einsum("usk,isk->uis", users, items)  # (users, items, samples)
    got = rec.predict_indices(np.arange(tiny.n_users).repeat(tiny.n_items),
                              np.tile(np.arange(tiny.n_items), tiny.n_users), clip=False)
    np.testing.assert_allclose(got, per_sample.mean(2).ravel(), rtol=1e-4, atol=1e-4)


def test_cold_start_uses_features(tmp_path: Path) -> None:
    """Users whose group decides their ratings: unseen users are predicted from the group."""
    n_users = 120
    ratings = group_tastes(n_users, 40)
    new = np.isin(ratings.user, np.arange(100, n_users))
    train, test = ratings.take(~new), ratings.take(new)
    rec = embrec.fit(BayesianFMConfig(embedding_dim=3, sweeps=40, burn_in=10), train)
    from embrec.coldstart import evaluate_cold, predict_with_features

    result = evaluate_cold(rec, test)
    assert result["n"] == int(new.sum())
    assert result["rmse_features"] < 0.6 * result["rmse_mean"], result
    assert result["rmse_features"] < 0.6 * result["rmse_item_mean"], result
    both = predict_with_features(rec, [100, 100], [0, 0], user_features=ratings.user_features)
    without = predict_with_features(rec, [100], [0])  # no features: the id group's mean
    assert both[0] == both[1] and abs(both[0] - without[0]) > 0.2
    top_a = rec.recommend_for_features({"group": "a"}, n=5)
    top_b = rec.recommend_for_features({"group": "b"}, n=5)
    assert set(top_a["item"]).isdisjoint(top_b["item"])
    loaded = embrec.load(rec.save(tmp_path / "cold"))
    pd.testing.assert_frame_equal(loaded.recommend_for_features({"group": "a"}, n=5), top_a)
    with pytest.raises(embrec.errors.ConfigError, match="no item features"):
        predict_with_features(rec, [0], ["unseen"])
