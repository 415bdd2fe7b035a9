"""Synthetic MovieLens-like ratings with a planted answer.

Ratings are ``mean + user bias + item bias + <user factors, item factors> + noise``,
rounded to the scale, with power-law user activity and item popularity. The
generator reports the noise-only RMSE, the best any model can reach, so tests
and benchmarks can check a model against a known floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embrec.config import require
from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings

__all__ = ["Synthetic", "generate"]


@dataclass(frozen=True, slots=True, eq=False)
class Synthetic:
    """Generated ratings plus the truth behind them.

    Attributes:
        ratings: the observed (noisy, rounded, clipped) ratings.
        expected: the noise-free rating of each observed pair (before rounding).
        user_factors: planted user factors, ``(n_users, rank)``.
        item_factors: planted item factors, ``(n_items, rank)``.
        user_bias: planted user biases.
        item_bias: planted item biases.
        mean: planted global mean.
        noise_rmse: RMSE of the observed ratings around ``expected``: the floor
            no model can beat on these data.
    """

    ratings: Ratings
    expected: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    mean: float
    noise_rmse: float


def _power_law_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    weights = (np.arange(1, n + 1, dtype=np.float64)) ** -exponent
    rng.shuffle(weights)
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def generate(
    n_users: int = 1000,
    n_items: int = 500,
    n_ratings: int = 50_000,
    *,
    rank: int = 8,
    noise: float = 0.5,
    scale: tuple[float, float] = (1.0, 5.0),
    half_stars: bool = False,
    round_ratings: bool = True,
    popularity: float = 0.8,
    activity: float = 0.6,
    seed: int = 0,
) -> Synthetic:
    """Generate seeded ratings with low-rank structure, biases and Gaussian noise.

    Args:
        n_users: number of users.
        n_items: number of items.
        n_ratings: number of distinct (user, item) ratings to draw.
        rank: dimension of the planted factors.
        noise: standard deviation of the Gaussian noise.
        scale: ``(min, max)`` rating scale; ratings are clipped to it.
        half_stars: round to halves instead of whole stars.
        round_ratings: round to the star grid (otherwise keep continuous values).
        popularity: power-law exponent of item popularity (0 is uniform).
        activity: power-law exponent of user activity (0 is uniform).
        seed: random seed; the same seed gives the same data.

    Returns:
        The ratings and the planted truth.

    Raises:
        ConfigError: for sizes that cannot be satisfied.
    """
    require(n_users >= 1, "n_users", n_users, "must be at least 1")
    require(n_items >= 1, "n_items", n_items, "must be at least 1")
    require(1 <= n_ratings <= n_users * n_items // 2, "n_ratings", n_ratings,
            f"must be between 1 and half of n_users * n_items ({n_users * n_items // 2})")
    rng = np.random.default_rng(seed)
    low, high = scale
    mean = (low + high) / 2 + 0.1 * (high - low)
    spread = (high - low) / 4
    user_factors = rng.normal(0, np.sqrt(spread / np.sqrt(rank)), (n_users, rank))
    item_factors = rng.normal(0, np.sqrt(spread / np.sqrt(rank)), (n_items, rank))
    user_bias = rng.normal(0, spread * 0.4, n_users)
    item_bias = rng.normal(0, spread * 0.6, n_items)

    user_p = _power_law_weights(n_users, activity, rng)
    item_p = _power_law_weights(n_items, popularity, rng)
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_ratings:
        draw = int((n_ratings - len(keys)) * 1.3) + 16
        u = rng.choice(n_users, size=draw, p=user_p)
        i = rng.choice(n_items, size=draw, p=item_p)
        keys = np.concatenate([keys, u.astype(np.int64) * n_items + i])
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
    keys = keys[:n_ratings]
    user, item = keys // n_items, keys % n_items

    expected = (mean + user_bias[user] + item_bias[item]
                + np.einsum("ij,ij->i", user_factors[user], item_factors[item]))
    observed = expected + rng.normal(0, noise, n_ratings)
    if round_ratings:
        step = 0.5 if half_stars else 1.0
        observed = np.round(observed / step) * step
    observed = np.clip(observed, low, high)
    noise_rmse = float(np.sqrt(np.mean((observed - expected) ** 2)))

    timestamps = 1_000_000_000 + np.sort(rng.integers(0, 10**8, n_ratings))
    ratings = Ratings(
        user.astype(np.int32), item.astype(np.int32), observed.astype(np.float32),
        IdIndex(np.arange(1, n_users + 1), kind="user"),
        IdIndex(np.arange(1, n_items + 1), kind="item"),
        timestamps[rng.permutation(n_ratings)], scale=scale, source="synthetic",
    )
    return Synthetic(ratings, expected, user_factors, item_factors, user_bias, item_bias,
                     mean, noise_rmse)
