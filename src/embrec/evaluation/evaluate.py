"""evaluate(): score a Recommender on held-out ratings, by rating error and by top-N ranking.

Rating metrics compare predictions with every test rating; pairs with an unknown id
get the fallback of ``predict(on_unknown="mean")`` and are counted in ``unknown``.
Ranking metrics rank the full catalogue (less the training items) for every known
test user with a test item rated at or above ``threshold``; a ranking-only model
(``rec.scores == "ranking"``) gets ranking metrics only.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

import embrec.evaluation.metrics as m
from embrec.config import require
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError, MetricWarning
from embrec.recommender import Recommender

__all__ = ["METRICS", "evaluate"]

RATING: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": m.rmse, "mae": m.mae, "mse": m.mse,
}
RANKING: dict[str, Callable[..., float]] = {
    "precision": m.precision_at_k, "recall": m.recall_at_k, "ndcg": m.ndcg_at_k,
    "map": m.map_at_k, "hit_rate": m.hit_rate_at_k,
}
METRICS = (*RATING, *(f"{name}@K" for name in RANKING), "coverage")
"""Every metric name ``evaluate`` accepts (``@K`` takes a list length, e.g. ``ndcg@10``)."""

RANKING_DEFAULT = ("ndcg", "precision", "recall", "hit_rate", "coverage")
"""The ranking metrics a ranking-only model, or a comparison with baselines, reports by default."""


@dataclass(frozen=True, slots=True)
class _Metric:
    key: str  # the name in the result, e.g. "ndcg@10"
    name: str  # the family, e.g. "ndcg"
    k: int


def _parse(names: Iterable[str] | str, k: int) -> list[_Metric]:
    """Turn metric names into specs; ``ndcg`` means ``ndcg@k``; unknown names raise."""
    require(isinstance(k, int) and k >= 1, "k", k, "must be a positive integer")
    families = [*RATING, *RANKING, "coverage"]
    specs: list[_Metric] = []
    for raw in [names] if isinstance(names, str) else list(names):
        text = str(raw).strip().lower()
        family, _, size_text = text.partition("@")
        family = family.replace("-", "_")
        size = int(size_text) if size_text.isdigit() else k
        if family not in families or (size_text and not size_text.isdigit()) or (
                family in RATING and size_text) or size < 1:
            close = difflib.get_close_matches(family, families, n=1)
            suggestion = close and (close[0] if close[0] in RATING else f"{close[0]}@{size}")
            hint = (f"did you mean {suggestion!r}?" if suggestion
                    else f"known metrics: {list(METRICS)}")
            raise ConfigError("metrics", raw, "is not a known metric", hint=hint)
        key = family if family in RATING or (family == "coverage" and not size_text) \
            else f"{family}@{size}"
        specs.append(_Metric(key, family, size))
    return specs


def evaluate(
    rec: Recommender,
    test: Ratings,
    metrics: Iterable[str] | str = ("rmse", "mae", "mse"),
    *,
    k: int = 10,
    threshold: float = 4.0,
    clip: bool = True,
    segments: bool = False,
    cold_threshold: int = 5,
    baselines: bool = False,
) -> dict[str, Any]:
    """Evaluate ``rec`` on the test ratings.

    Args:
        rec: the trained recommender.
        test: held-out ratings (raw ids may include ids unknown to ``rec``).
        metrics: names from :data:`METRICS`, e.g. ``("rmse", "ndcg@10", "coverage")``;
            a ranking name without ``@K`` uses ``k``.
        k: default list length for ranking metrics.
        threshold: a test rating at or above it makes the item relevant.
        clip: clip predictions to the rating scale.
        segments: add ``"segments"``: the same metrics for test ratings of
            ``cold`` users (at most ``cold_threshold`` training ratings),
            ``warm`` users, ``unknown-user`` and ``unknown-item`` pairs.
        cold_threshold: the most training ratings a cold user has.
        baselines: also fit ``popular`` on ``rec``'s training rows and add, for
            each ranking metric (``ndcg@10``...), ``popular:ndcg@10`` and the
            ratio ``ndcg@10/popular`` (NaN where popular scores 0). Without a
            ranking metric in ``metrics``, the default ranking set is added.

    Returns:
        ``{"n": ..., "unknown": ..., <metric>: value, ...}``; with ranking
        metrics also ``users_ranked``; with ``segments`` also ``segments``.
        For a ranking-only model (``rec.scores == "ranking"``) rating metrics
        are left out, and replaced by the default ranking set if none is asked for.

    Raises:
        ConfigError: for an unknown metric name (with a suggestion) or a bad ``k``.
    """
    specs = _parse(metrics, k)
    require(cold_threshold >= 0, "cold_threshold", cold_threshold, "must be >= 0")
    ranking = [s for s in specs if s.name not in RATING] or _parse(RANKING_DEFAULT, k)
    if rec.scores == "ranking":
        specs = ranking
    elif baselines:
        specs = [*specs, *(s for s in ranking if s not in specs)]
    user, item = _indices(rec, test)
    rating = np.asarray(test.rating, dtype=np.float64)
    result: dict[str, Any] = {"n": len(test), "unknown": int(((user < 0) | (item < 0)).sum())}
    result.update(_scores(rec, user, item, rating, specs, threshold, clip, warn=True))
    if segments:
        counts = np.diff(rec.seen.indptr)
        result["segments"] = {}
        for name, mask in _segment_masks(user, item, counts, cold_threshold).items():
            part = _scores(rec, user[mask], item[mask], rating[mask], specs, threshold, clip,
                           warn=False)
            result["segments"][name] = {"n": int(mask.sum()), **part}
    if baselines:
        result.update(_compare_with_popular(rec, user, item, rating, ranking, result, threshold))
    return result


def _compare_with_popular(rec: Recommender, user: np.ndarray, item: np.ndarray,
                          rating: np.ndarray, specs: list[_Metric], result: dict[str, Any],
                          threshold: float) -> dict[str, float]:
    """``popular:<metric>`` and ``<metric>/popular`` for each ranking metric in ``specs``."""
    popular = popular_like(rec)
    base = _ranking(popular, user, item, rating, specs, threshold, warn=False)
    out: dict[str, float] = {}
    for spec in specs:
        theirs, ours = float(base[spec.key]), float(result[spec.key])
        out[f"popular:{spec.key}"] = theirs
        out[f"{spec.key}/popular"] = ours / theirs if theirs > 0 else float("nan")
    return out


def popular_like(rec: Recommender) -> Recommender:
    """The ``popular`` yardstick fitted on ``rec``'s training rows (``seen``), on the CPU."""
    from embrec.config import TrainConfig
    from embrec.models.popular import PopularConfig

    rows, config = rec.seen.tocoo(), PopularConfig()
    train = Ratings(rows.row, rows.col, rows.data, rec.users, rec.items, scale=rec.scale,
                    source=str(rec.metadata.get("data") or ""))
    model = config.build(train.n_users, train.n_items)
    model.solve(train)  # solved here, not through training/: evaluation does not depend on it
    return Recommender.from_training(model, config, TrainConfig(device="cpu"), train)


def _indices(rec: Recommender, test: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Map the test ratings to ``rec``'s indices (-1 for unknown), one lookup per distinct id."""
    users = rec.users.index(rec.users.coerce(test.users.ids), on_unknown="missing")
    items = rec.items.index(rec.items.coerce(test.items.ids), on_unknown="missing")
    return users[test.user], items[test.item]


def _segment_masks(user: np.ndarray, item: np.ndarray, counts: np.ndarray,
                   cold_threshold: int) -> dict[str, np.ndarray]:
    known = (user >= 0) & (item >= 0)
    cold = known & (counts[np.maximum(user, 0)] <= cold_threshold)
    return {"cold": cold, "warm": known & ~cold, "unknown-user": user < 0,
            "unknown-item": (user >= 0) & (item < 0)}


def _scores(rec: Recommender, user: np.ndarray, item: np.ndarray, rating: np.ndarray,
            specs: list[_Metric], threshold: float, clip: bool, *,
            warn: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rating_specs = [s for s in specs if s.name in RATING]
    if rating_specs:
        predicted = rec.predict_with_fallback(user, item, on_unknown="mean", clip=clip)
        for spec in rating_specs:
            out[spec.key] = float(RATING[spec.name](rating, predicted)) if len(rating) else math.nan
    ranking_specs = [s for s in specs if s.name not in RATING]
    if ranking_specs:
        out.update(_ranking(rec, user, item, rating, ranking_specs, threshold, warn=warn))
    return out


def _ranking(rec: Recommender, user: np.ndarray, item: np.ndarray, rating: np.ndarray,
             specs: list[_Metric], threshold: float, *, warn: bool) -> dict[str, Any]:
    """Full-catalogue top-K for users with a relevant test item; NaN when there are none."""
    known = (user >= 0) & (item >= 0)
    ranked = np.unique(user[known & (rating >= threshold)])
    out: dict[str, Any] = {"users_ranked": len(ranked)}
    if len(ranked) == 0:
        if warn:
            warnings.warn(f"no test user has an item rated >= {threshold:g}; ranking metrics "
                          "are NaN (lower threshold=?)", MetricWarning, stacklevel=3)
        return out | {spec.key: float("nan") for spec in specs}
    recommended, _ = rec.top_n_indices(ranked, n=max(spec.k for spec in specs))
    take = known & np.isin(user, ranked)
    rows = np.searchsorted(ranked, user[take])
    relevant = m.relevance_matrix(rows, item[take], rating[take], len(ranked), rec.n_items,
                                  threshold=threshold)
    for spec in specs:
        top = recommended[:, : spec.k]
        out[spec.key] = float(m.coverage(top, rec.n_items) if spec.name == "coverage"
                              else RANKING[spec.name](top, relevant))
    return out
