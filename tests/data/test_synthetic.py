"""Tests for the synthetic generator: determinism, exact sizes, scale, skew and the noise floor."""

from __future__ import annotations

import numpy as np
import pytest

from embrec.data.synthetic import (
    Synthetic,
    _conditional_mean,
    _sample_dense,
    _sample_sparse,
    generate,
)
from embrec.errors import ConfigError


def _pairs(sy: Synthetic) -> np.ndarray:
    return sy.ratings.user.astype(np.int64) * sy.ratings.n_items + sy.ratings.item


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b = generate(200, 100, 3000, seed=3), generate(200, 100, 3000, seed=3)
    c = generate(200, 100, 3000, seed=4)
    assert a.ratings.fingerprint() == b.ratings.fingerprint()
    np.testing.assert_array_equal(a.ratings.timestamp, b.ratings.timestamp)
    assert a.noise_rmse == b.noise_rmse
    assert a.ratings.fingerprint() != c.ratings.fingerprint()


@pytest.mark.parametrize(("n_users", "n_items", "n_ratings"),
                         [(60, 40, 1200), (943, 1682, 100_000), (5000, 3000, 20_000), (1, 2, 1)])
def test_sizes_are_exact_and_pairs_distinct(n_users: int, n_items: int, n_ratings: int) -> None:
    sy = generate(n_users, n_items, n_ratings, rank=2, seed=1)
    assert len(sy.ratings) == n_ratings == len(sy.expected)
    assert (sy.ratings.n_users, sy.ratings.n_items) == (n_users, n_items)
    assert sy.user_factors.shape == (n_users, 2) and sy.item_factors.shape == (n_items, 2)
    assert len(np.unique(_pairs(sy))) == n_ratings
    assert sy.ratings.timestamp is not None and len(sy.ratings.timestamp) == n_ratings


def test_conftest_tiny_call_keeps_working() -> None:
    sy = generate(n_users=60, n_items=40, n_ratings=1200, rank=3, noise=0.1, seed=7)
    assert len(sy.ratings) == 1200 and sy.user_factors.shape == (60, 3)
    assert sy.item_factors.shape == (40, 3) and 0 < sy.noise_rmse < 0.5


def test_whole_stars_stay_on_the_scale() -> None:
    ratings = generate(300, 200, 5000, seed=0).ratings
    assert set(np.unique(ratings.rating).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ratings.scale == (1.0, 5.0)


def test_half_stars_on_the_movielens_scale() -> None:
    ratings = generate(300, 200, 5000, scale=(0.5, 5.0), half_stars=True, seed=0).ratings
    values = set(np.unique(ratings.rating).tolist())
    assert values <= {x / 2 for x in range(1, 11)}
    assert {3.5, 4.5} <= values  # halves really occur
    assert ratings.rating.min() >= 0.5 and ratings.rating.max() <= 5.0


def test_continuous_ratings_are_clipped_only() -> None:
    ratings = generate(300, 200, 5000, round_ratings=False, seed=0).ratings
    assert len(np.unique(ratings.rating)) > 1000
    assert ratings.rating.min() >= 1.0 and ratings.rating.max() <= 5.0


def test_power_law_skew_like_movielens() -> None:
    ratings = generate(943, 1682, 100_000, seed=0).ratings
    per_item = np.bincount(ratings.item, minlength=1682)
    per_user = np.bincount(ratings.user, minlength=943)
    assert per_item.max() > 10 * np.median(per_item)
    assert per_user.max() > 5 * np.median(per_user)


def test_uniform_exponents_give_flat_popularity() -> None:
    ratings = generate(500, 400, 20_000, popularity=0.0, activity=0.0, seed=0).ratings
    per_item = np.bincount(ratings.item, minlength=400)
    assert per_item.max() < 2 * np.median(per_item)


def test_noise_rmse_matches_noise_for_continuous_ratings() -> None:
    sy = generate(500, 300, 30_000, noise=0.3, round_ratings=False, seed=2)
    assert 0.8 * 0.3 < sy.noise_rmse <= 0.3  # clipping at 1 and 5 only removes error
    inside = (sy.expected > 1.0 + 1.2) & (sy.expected < 5.0 - 1.2)  # 4 sigma from both ends
    residual = (sy.ratings.rating - sy.expected)[inside]
    assert inside.sum() > 10_000
    assert np.sqrt(np.mean(residual**2)) == pytest.approx(0.3, rel=0.03)


def test_planted_truth_reaches_noise_rmse_and_beats_baselines() -> None:
    sy = generate(400, 300, 30_000, noise=0.5, half_stars=True, scale=(0.5, 5.0), seed=5)
    r = sy.ratings
    best = sy.best_prediction(r.user, r.item)
    rmse = float(np.sqrt(np.mean((r.rating - best) ** 2)))
    assert rmse == pytest.approx(sy.noise_rmse, rel=1e-4)
    mean_rmse = float(np.sqrt(np.mean((r.rating - r.rating.mean()) ** 2)))
    assert rmse < 0.7 * mean_rmse
    clipped = np.clip(sy.score(r.user, r.item), 0.5, 5.0)  # a plain model of the truth
    assert float(np.sqrt(np.mean((r.rating - clipped) ** 2))) >= rmse


def _als(user: np.ndarray, item: np.ndarray, y: np.ndarray, n_users: int, n_items: int,
         rank: int, epochs: int = 15, reg: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Alternating least squares with a bias column: a small oracle fitter for tests."""
    rng = np.random.default_rng(0)
    p, q = rng.normal(0, 0.1, (n_users, rank + 2)), rng.normal(0, 0.1, (n_items, rank + 2))
    p[:, 0], q[:, 1] = 1.0, 1.0  # p = [1, b_u, f_u], q = [b_i, 1, f_i]
    for _ in range(epochs):
        for fixed, solve, rows, cols, keep in ((q, p, user, item, 0), (p, q, item, user, 1)):
            for r in range(len(solve)):
                mask = rows == r
                x, t = fixed[cols[mask]], y[mask].astype(np.float64)
                free = [k for k in range(rank + 2) if k != keep]
                a = x[:, free]
                rhs = a.T @ (t - x[:, keep])
                solve[r, free] = np.linalg.solve(a.T @ a + reg * np.eye(rank + 1), rhs)
    return p, q


def test_low_rank_fit_oracle_reaches_the_noise_floor() -> None:
    sy = generate(120, 80, 4800, rank=2, noise=0.4, round_ratings=False, seed=11)
    r = sy.ratings
    order = np.random.default_rng(0).permutation(len(r))
    train, test = order[: len(r) * 4 // 5], order[len(r) * 4 // 5:]
    p, q = _als(r.user[train], r.item[train], r.rating[train] - sy.mean, 120, 80, rank=2)
    pred = np.clip(sy.mean + np.einsum("ij,ij->i", p[r.user[test]], q[r.item[test]]), 1, 5)
    rmse = float(np.sqrt(np.mean((r.rating[test] - pred) ** 2)))
    baseline = float(np.sqrt(np.mean((r.rating[test] - r.rating[train].mean()) ** 2)))
    # a rank-2 fit gets close to the floor (not to it: clipping bends the truth)
    assert sy.noise_rmse * 0.95 < rmse < sy.noise_rmse * 1.25 < baseline * 0.5


def test_conditional_mean_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    score = np.array([0.2, 1.3, 3.01, 4.8, 6.0])
    draws = score[:, None] + rng.normal(0, 0.6, (5, 200_000))
    for step, low in ((None, 0.5), (0.5, 0.5), (1.0, 1.0)):
        observed = np.clip(draws, low, 5.0)
        if step:
            observed = np.round(observed / step) * step
        exact = _conditional_mean(score, 0.6, (low, 5.0), step)
        np.testing.assert_allclose(exact, observed.mean(axis=1), atol=0.01)


def test_dense_and_sparse_samplers_draw_distinct_pairs() -> None:
    rng = np.random.default_rng(0)
    user_p, item_p = np.full(50, 1 / 50), np.full(30, 1 / 30)
    for sampler in (_sample_dense, _sample_sparse):
        keys = sampler(700, user_p, item_p, rng)
        assert len(keys) == 700 == len(np.unique(keys))
        assert keys.min() >= 0 and keys.max() < 1500


def test_bad_sizes_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="n_ratings"):
        generate(10, 10, 51)
    with pytest.raises(ConfigError, match="n_users"):
        generate(0, 10, 1)
    with pytest.raises(ConfigError, match="grid"):
        generate(10, 10, 20, scale=(0.5, 5.0))
    with pytest.raises(ConfigError, match="noise"):
        generate(10, 10, 20, noise=-1)
