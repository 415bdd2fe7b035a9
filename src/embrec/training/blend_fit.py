"""Fitting a blend: components on most of the training ratings, weights on the rest.

A seeded fraction of the *training* ratings is carved out, every component is fitted on
the rest (with the ``fit`` it is handed, so this module never imports the training loop
that trains the blend), and the weights are chosen on the carved rows (never on test rows):
non-negative least squares for ratings, the best NDCG@k on a weight simplex for top-N.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.optimize
import torch

from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.evaluation.metrics import ndcg_at_k_per_user, relevance_matrix
from embrec.models.base import RatingModel
from embrec.models.registry import component_configs, default_training

if TYPE_CHECKING:
    from embrec.models.blend import Blend
    from embrec.recommender import Recommender

__all__ = ["MAX_VALIDATION_USERS", "fit_blend", "nonnegative_weights", "ranking_weights",
           "simplex"]

MAX_VALIDATION_USERS = 5_000
"""Users whose validation rankings choose the ranking weights (a seeded sample beyond it)."""


def fit_blend(model: Blend, train: Ratings, fit: Callable[..., Recommender]) -> None:
    """Fit ``model``'s components (with ``fit``) and weights on ``train`` (torch's generator
    seeds it).

    Raises:
        ConfigError: if a rating blend holds a component whose scores are not
            ratings, or the carve leaves no validation row.
    """
    config = model.config
    order = torch.randperm(len(train)).numpy()
    n_held = int(config.validation * len(train))
    if n_held == 0 or n_held == len(train):
        raise ConfigError("validation", config.validation,
                          f"leaves no validation or no training row of {len(train)} ratings",
                          hint="blend more ratings, or change validation")
    fit_part = train.take(np.sort(order[n_held:]), reindex=False)
    held = train.take(np.sort(order[:n_held]), reindex=False)
    seeds = [int(s) for s in torch.randint(0, 2**31 - 1, (len(config.specs),))]
    recs = [_fit_component(spec, fit_part, seed, model, fit) for spec, seed in
            zip(config.specs, seeds, strict=True)]
    if config.target == "rating":
        columns = np.stack([r.predict_indices(held.user, held.item) for r in recs], 1)
        weights, intercept = nonnegative_weights(columns, held.rating)
        fitted = columns @ weights + intercept
        model.report = {"validation_rmse": [_rmse(c, held.rating) for c in columns.T],
                        "blend_validation_rmse": _rmse(fitted, held.rating)}
    else:
        weights, intercept, model.report = _choose_ranking(model, recs, held)
    if config.refit:
        recs = [_fit_component(spec, train, seed, model, fit) for spec, seed in
                zip(config.specs, seeds, strict=True)]
    for k, rec in enumerate(recs):
        model.parts[k] = rec.model
    model.report["weights"] = weights.tolist()
    with torch.no_grad():
        model.weights.copy_(torch.as_tensor(weights))
        model.intercept.fill_(float(intercept))


def _rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def _fit_component(spec: dict[str, Any], train: Ratings, seed: int, blend: Blend,
                   fit: Callable[..., Recommender]) -> Recommender:
    model_config, train_config = component_configs(spec)
    config = train_config or default_training(model_config)
    device = str(blend.weights.device)
    config = dataclasses.replace(config, device=device,
                                 seed=seed if config.seed is None else config.seed)
    rec = fit(model_config, train, config)
    if blend.config.target == "rating" and rec.scores != "rating":
        raise ConfigError("components", spec["model"], "gives ranking scores, not ratings",
                          hint="blend it with target='ranking', or leave it out")
    return rec


def nonnegative_weights(columns: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares ``target ≈ columns @ w + b`` with ``w ≥ 0`` and a free intercept ``b``.

    ``columns`` are ``(n, k)`` component predictions of the ``(n,)`` ratings. Centring
    both sides removes the intercept exactly; the rest is SciPy's NNLS.
    """
    x = np.asarray(columns, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    means = x.mean(0)
    weights, _ = scipy.optimize.nnls(x - means, y - y.mean())
    return weights, float(y.mean() - means @ weights)


def simplex(k: int, steps: int) -> np.ndarray:
    """Every weight vector of ``k`` non-negative multiples of ``1 / steps`` summing to 1."""
    points = [c for c in itertools.product(range(steps + 1), repeat=k - 1) if sum(c) <= steps]
    grid = np.array([[*c, steps - sum(c)] for c in points], dtype=np.float64)
    return grid / steps


def ranking_weights(scores: torch.Tensor, relevant: Any, k: int,
                    steps: int) -> tuple[np.ndarray, float]:
    """The :func:`simplex` point whose mix of standardised ``scores`` (``(n_components,
    n_users, n_items)``, seen items at ``-inf``) has the best mean NDCG@k over the users
    with a ``relevant`` item; returns the weights and that NDCG."""
    judged = np.diff(relevant.indptr) > 0
    grid = simplex(scores.shape[0], steps)
    best: tuple[float, np.ndarray] = (-np.inf, grid[0])
    for point in grid:
        w = torch.as_tensor(point, dtype=scores.dtype, device=scores.device)
        mixed = torch.einsum("c,cui->ui", w, torch.nan_to_num(scores, neginf=-1e30))
        top = torch.topk(mixed, min(k, mixed.shape[1]), dim=1).indices.cpu().numpy()
        value = float(np.mean(ndcg_at_k_per_user(top, relevant, k)[judged]))
        if value > best[0] + 1e-12:
            best = (value, point)
    return best[1], best[0]


def _choose_ranking(model: Blend, recs: list[Recommender],
                    held: Ratings) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Standardised validation scores of every component, then the best simplex point."""
    users = np.unique(held.user)
    if len(users) > MAX_VALIDATION_USERS:
        users = np.sort(users[torch.randperm(len(users))[:MAX_VALIDATION_USERS].numpy()])
    position = np.full(model.n_users, -1)
    position[users] = np.arange(len(users))
    keep = position[held.user] >= 0
    relevant = relevance_matrix(position[held.user[keep]], held.item[keep], held.rating[keep],
                                len(users), model.n_items)
    blocks = [_standardised(rec, users) for rec in recs]
    scores = torch.stack(blocks)  # (components, users, items)
    singles = [ranking_weights(scores[c:c + 1], relevant, model.config.k, 1)[1]
               for c in range(len(recs))]
    weights, value = ranking_weights(scores, relevant, model.config.k, model.config.steps)
    return weights, 0.0, {"validation_ndcg": singles, "blend_validation_ndcg": value}


@torch.no_grad()
def _standardised(rec: Recommender, users: np.ndarray) -> torch.Tensor:
    """The users' scores of every item, standardised per user, training items at ``-inf``."""
    part: RatingModel = rec.model
    device = rec.device
    index = torch.as_tensor(users, device=device)
    catalogue = part.item_vectors(torch.arange(rec.n_items, device=device))
    scores = part.score_matrix(part.user_vectors(index), catalogue).float()
    z = (scores - scores.mean(1, keepdim=True)) / scores.std(1, keepdim=True).clamp_min(1e-12)
    seen = rec.seen[users].tocoo()
    z[torch.as_tensor(seen.row, device=device), torch.as_tensor(seen.col, device=device)] = \
        -torch.inf
    return z.cpu()
