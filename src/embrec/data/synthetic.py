"""Synthetic MovieLens-like ratings with a planted answer.

Ratings are ``mean + user bias + item bias + <user factors, item factors> + noise``,
clipped to the scale and optionally rounded to whole or half stars; who rates what
follows power laws, as in MovieLens. ``noise_rmse``, the RMSE of the best possible
predictor, gives tests and benchmarks a known floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from embrec.config import require
from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings

__all__ = ["Synthetic", "generate"]

_CHUNK = 1 << 18  # rows per block when computing ratings (keeps the gathers in cache)
_DENSE_CELLS = 1 << 25  # largest user x item grid sampled exactly in one go
_MAX_ROUNDS = 200


@dataclass(frozen=True, slots=True, eq=False)
class Synthetic:
    """Generated ratings plus the truth behind them: the planted factors, biases and mean.

    Attributes:
        ratings: the observed (noisy, clipped, optionally rounded) ratings.
        expected: float32 noise-free score of each observed pair, before clipping and rounding.
        noise_rmse: RMSE of the observed ratings around :meth:`best_prediction`: the
            floor no model can beat on these data.
        noise: standard deviation of the Gaussian noise.
        step: rating grid step (1 or 0.5), or ``None`` for continuous ratings.
    """

    ratings: Ratings
    expected: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    mean: float
    noise_rmse: float
    noise: float = 0.0
    step: float | None = None

    def score(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Return the planted noise-free, unclipped float64 score of (user, item) index pairs."""
        return _score(self.user_factors, self.item_factors, self.user_bias, self.item_bias,
                      self.mean, np.asarray(user), np.asarray(item))

    def best_prediction(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Return the expected observed rating of (user, item) index pairs: the prediction
        with the lowest possible mean squared error, given the noise, clipping and rounding."""
        return _conditional_mean(self.score(user, item), self.noise, self.ratings.scale,
                                 self.step)


def _score(user_factors: np.ndarray, item_factors: np.ndarray, user_bias: np.ndarray,
           item_bias: np.ndarray, mean: float, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    dot = np.einsum("ij,ij->i", np.take(user_factors, user, axis=0),
                    np.take(item_factors, item, axis=0))
    result: np.ndarray = mean + np.take(user_bias, user) + np.take(item_bias, item) + dot
    return result


def _power_law_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    weights = (np.arange(1, n + 1, dtype=np.float64)) ** -exponent
    rng.shuffle(weights)
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def _conditional_mean(
    score: np.ndarray, noise: float, scale: tuple[float, float], step: float | None
) -> np.ndarray:
    """E[clip/round(score + N(0, noise^2))], in closed form through the normal CDF."""
    low, high = scale
    if noise == 0:
        out: np.ndarray = np.clip(score, low, high)
        if step:
            out = np.round(out / step) * step
        return out
    if step:  # E = low + step * sum_k P(x > threshold_k), thresholds halfway on the grid
        out = np.full(score.shape, low, dtype=np.float64)
        for threshold in np.arange(low + step / 2, high, step):
            out += step * ndtr((score - threshold) / noise)
        return out
    a, b = (low - score) / noise, (high - score) / noise
    cdf_a, cdf_b = ndtr(a), ndtr(b)
    pdf_a, pdf_b = np.exp(-0.5 * a * a), np.exp(-0.5 * b * b)
    inside = score * (cdf_b - cdf_a) + noise * (pdf_a - pdf_b) / np.sqrt(2 * np.pi)
    result: np.ndarray = low * cdf_a + high * (1 - cdf_b) + inside
    return result


def _conditional_mean_table(
    noise: float, scale: tuple[float, float], step: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Tabulate :func:`_conditional_mean` on a uniform grid, finely enough for linear
    interpolation to stay within 1e-5 (see :func:`_interpolate`)."""
    low, high = scale
    margin = 8 * noise
    size = int(min(max(4096, (high - low + 2 * margin) / (noise / 40)), 1 << 20))
    grid = np.linspace(low - margin, high + margin, size)
    return grid, _conditional_mean(grid, noise, scale, step)


def _interpolate(x: np.ndarray, table: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``np.interp(x, *table)`` for a uniform grid: an index computation, no search."""
    grid, values = table
    slope = np.append(np.diff(values), 0.0)
    position = (x - grid[0]) * ((len(grid) - 1) / (grid[-1] - grid[0]))
    np.clip(position, 0, len(grid) - 1, out=position)
    index = position.astype(np.intp)
    position -= index
    result: np.ndarray = values[index] + position * slope[index]
    return result


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Distinct values of ``keys``, sorted in place (faster than ``np.unique`` on int64)."""
    keys.sort()
    if len(keys) == 0:
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def _draw_keys(m: int, user_p: np.ndarray, item_p: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Draw ``m`` (user, item) pairs with replacement as int64 keys ``user * n_items + item``.

    Draws the multinomial counts of each user and each item, then pairs the two
    multisets at random: the same law as ``m`` independent draws, without a
    per-draw CDF search.
    """
    n_items = len(item_p)
    keys = np.repeat(np.arange(len(user_p), dtype=np.int64), rng.multinomial(m, user_p))
    item = np.repeat(np.arange(n_items, dtype=np.int32), rng.multinomial(m, item_p))
    rng.shuffle(item)
    keys *= n_items
    keys += item
    return keys


def _sample_sparse(n: int, user_p: np.ndarray, item_p: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Distinct pairs for sparse grids: draw, sort-dedup, then top up the shortfall."""
    keys = _sorted_unique(_draw_keys(n, user_p, item_p, rng))
    extra = np.empty(0, dtype=np.int64)  # sorted, disjoint from keys
    acceptance = len(keys) / n
    for _ in range(_MAX_ROUNDS):
        deficit = n - len(keys) - len(extra)
        if deficit == 0:
            return np.concatenate([keys, extra])
        drawn = int(deficit / max(acceptance, 1e-3) * 1.2) + 64
        new = _sorted_unique(_draw_keys(drawn, user_p, item_p, rng))
        for taken in (keys, extra):
            where = np.minimum(np.searchsorted(taken, new), max(len(taken) - 1, 0))
            if len(taken):
                new = new[taken[where] != new]
        acceptance = max(len(new) / drawn, 1e-6)
        if len(new) > deficit:
            new = np.sort(rng.choice(new, size=deficit, replace=False))
        extra = np.sort(np.concatenate([extra, new]))
    raise RuntimeError("could not draw enough distinct (user, item) pairs")  # pragma: no cover


def _sample_dense(n: int, user_p: np.ndarray, item_p: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Distinct pairs for small dense grids, exactly: weighted sampling without replacement.

    Efraimidis-Spirakis: every cell gets key ``Exp(1) / weight``; the ``n`` smallest win.
    """
    race = rng.standard_exponential((len(user_p), len(item_p)), dtype=np.float32)
    race /= item_p.astype(np.float32)[None, :]
    race /= user_p.astype(np.float32)[:, None]
    return np.argpartition(race.ravel(), n - 1)[:n].astype(np.int64)


def _sample_pairs(n: int, user_p: np.ndarray, item_p: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` distinct pair keys in random order."""
    cells = len(user_p) * len(item_p)
    if cells <= max(16 * n, 1 << 16) and cells <= _DENSE_CELLS:
        keys = _sample_dense(n, user_p, item_p, rng)
    else:
        keys = _sample_sparse(n, user_p, item_p, rng)
    rng.shuffle(keys)
    return keys


def _validate(n_users: int, n_items: int, n_ratings: int, rank: int, noise: float,
              scale: tuple[float, float], step: float | None) -> None:
    require(n_users >= 1, "n_users", n_users, "must be at least 1")
    require(n_items >= 1, "n_items", n_items, "must be at least 1")
    require(1 <= n_ratings <= n_users * n_items // 2, "n_ratings", n_ratings,
            f"must be between 1 and half of n_users * n_items ({n_users * n_items // 2})")
    require(rank >= 1, "rank", rank, "must be at least 1")
    require(noise >= 0, "noise", noise, "must be >= 0")
    require(scale[0] < scale[1], "scale", scale, "must be (min, max) with min < max")
    if step:
        on_grid = all(abs(round(end / step) * step - end) < 1e-9 for end in scale)
        require(on_grid, "scale", scale, f"ends must lie on the {step:g}-star grid")


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
        n_users: number of users (all of them are in the user index, even
            those that happen to draw no rating).
        n_items: number of items (likewise).
        n_ratings: number of distinct (user, item) ratings to draw, exactly.
        rank: dimension of the planted factors.
        noise: standard deviation of the Gaussian noise.
        scale: ``(min, max)`` rating scale; ratings are clipped to it.
        half_stars: round to halves instead of whole stars.
        round_ratings: round to the star grid (otherwise keep continuous values).
        popularity: power-law exponent of item popularity (0 is uniform).
        activity: power-law exponent of user activity (0 is uniform).
        seed: random seed; the same seed gives the same data.

    Returns:
        The ratings (in random order, with timestamps) and the planted truth.

    Raises:
        ConfigError: for sizes that cannot be satisfied or a bad scale.
    """
    step = (0.5 if half_stars else 1.0) if round_ratings else None
    _validate(n_users, n_items, n_ratings, rank, noise, scale, step)
    rng = np.random.default_rng(seed)
    low, high = float(scale[0]), float(scale[1])
    mean = (low + high) / 2 + 0.1 * (high - low)
    spread = (high - low) / 4
    user_factors = rng.normal(0, np.sqrt(spread / np.sqrt(rank)), (n_users, rank))
    item_factors = rng.normal(0, np.sqrt(spread / np.sqrt(rank)), (n_items, rank))
    user_bias = rng.normal(0, spread * 0.4, n_users)
    item_bias = rng.normal(0, spread * 0.6, n_items)
    user_p = _power_law_weights(n_users, activity, rng)
    item_p = _power_law_weights(n_items, popularity, rng)

    keys = _sample_pairs(n_ratings, user_p, item_p, rng)
    user64, item64 = np.divmod(keys, n_items)
    del keys
    user, item = user64.astype(np.int32), item64.astype(np.int32)
    del user64, item64
    planted = (user_factors, item_factors, user_bias, item_bias, float(mean))
    observed, expected, squared = _observe(planted, user, item, noise, (low, high), step, rng)
    timestamps = 1_000_000_000 + rng.integers(0, 10**8, n_ratings)
    ratings = Ratings(user, item, observed, IdIndex(np.arange(1, n_users + 1), kind="user"),
                      IdIndex(np.arange(1, n_items + 1), kind="item"), timestamps,
                      scale=(low, high), source="synthetic")
    return Synthetic(ratings, expected, user_factors, item_factors, user_bias, item_bias,
                     float(mean), float(np.sqrt(squared / n_ratings)), float(noise), step)


def _observe(planted: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float],
             user: np.ndarray, item: np.ndarray, noise: float, scale: tuple[float, float],
             step: float | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Score, add noise, clip and round block by block; return ratings, scores, sum of sq. error."""
    n = len(user)
    observed = np.empty(n, dtype=np.float32)
    expected = np.empty(n, dtype=np.float32)
    squared = 0.0
    table = _conditional_mean_table(noise, scale, step) if noise else None
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(start + _CHUNK, n))
        score = _score(*planted, user[rows], item[rows])
        value = score + rng.normal(0, noise, len(score)) if noise else score.copy()
        np.clip(value, scale[0], scale[1], out=value)
        if step:
            value = np.round(value / step) * step
        best = _conditional_mean(score, noise, scale, step) if table is None else \
            _interpolate(score, table)
        squared += float(np.sum((value - best) ** 2))
        observed[rows], expected[rows] = value, score
    return observed, expected, squared
