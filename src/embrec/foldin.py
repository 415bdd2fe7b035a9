"""Fold a new user in without retraining: fit one user vector with the item side frozen.

The fit is a maximum a posteriori estimate: squared error on the given ratings plus a
Gaussian prior with the mean and per-dimension variance of the trained users' vectors.
When the model's score is affine in the user vector (measured by probing, not assumed)
it is an exact ridge solve; otherwise a few Levenberg-Marquardt steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from embrec.data.ids import IdIndex
from embrec.errors import DataError, UnknownIdError
from embrec.models.base import RatingModel

__all__ = ["UserPrior", "fold_in", "rated_items", "user_prior"]

UserPrior = tuple[Tensor, Tensor]
"""``(mean, variance)`` of the trained users' vectors, each ``(1, user_dim)``."""

AFFINE_TOLERANCE = 1e-3


def user_prior(model: RatingModel, *, chunk: int = 65_536) -> UserPrior:
    """Return the mean and per-dimension variance of every trained user's vector, each
    ``(1, user_dim)`` float64 on the model's device (``chunk`` users at a time)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        width = model.user_vectors(torch.zeros(1, dtype=torch.long, device=device)).shape[1]
        total = torch.zeros(1, width, dtype=torch.float64, device=device)
        squares = torch.zeros_like(total)
        for start in range(0, model.n_users, chunk):
            users = torch.arange(start, min(start + chunk, model.n_users), device=device)
            vectors = model.user_vectors(users).double()
            total += vectors.sum(0, keepdim=True)
            squares += (vectors**2).sum(0, keepdim=True)
    count = max(model.n_users, 1)
    mean = total / count
    variance = (squares / count - mean**2).clamp_min(0.0)
    floor = 1e-6 * float(variance.mean()) + 1e-12
    return mean, variance.clamp_min(floor)


def _scores(model: RatingModel, points: Tensor, item_vectors: Tensor) -> Tensor:
    """Score every point against every item: ``(n_points, n_items)`` float64."""
    n_points, n_items = points.shape[0], item_vectors.shape[0]
    users = points.float().repeat_interleave(n_items, dim=0)
    items = item_vectors.repeat(n_points, 1)
    return model.score(users, items).double().reshape(n_points, n_items)


def _close(expected: Tensor, actual: Tensor) -> bool:
    size = float(actual.abs().max()) + 1.0 if actual.numel() else 1.0
    return torch.allclose(expected, actual, atol=AFFINE_TOLERANCE * size, rtol=0)


@torch.no_grad()
def _affine_map(model: RatingModel, item_vectors: Tensor, prior: UserPrior,
                generator: torch.Generator) -> tuple[Tensor, Tensor] | None:
    """Measure ``scores = A @ u + c``; ``None`` when the model is not affine in ``u``.

    Five points first (the origin, two random users, their midpoint and a
    reflection) rule most non-affine models out cheaply; only then is the
    model probed along every axis to read ``A`` off.
    """
    mean, variance = prior
    width, device = mean.shape[1], mean.device
    noise = torch.randn(2, width, generator=generator, dtype=torch.float64).to(device)
    a, b = mean + noise * variance.sqrt()  # two plausible users, (width,) each
    origin = torch.zeros(width, dtype=torch.float64, device=device)
    quick = _scores(model, torch.stack([origin, a, b, (a + b) / 2, 2 * a - b]), item_vectors)
    if not (_close((quick[1] + quick[2]) / 2, quick[3])
            and _close(2 * quick[1] - quick[2], quick[4])):
        return None
    axes = _scores(model, torch.eye(width, dtype=torch.float64, device=device), item_vectors)
    offset = quick[0]  # (n_items,)
    slope = (axes - offset).T  # (n_items, width)
    if not _close(torch.stack([a, b]) @ slope.T + offset, quick[1:3]):
        return None
    return slope, offset


def _ridge(slope: Tensor, offset: Tensor, ratings: Tensor, prior: UserPrior,
           regularization: float) -> Tensor:
    """Solve ``min |slope u + offset - r|^2 + reg * sum((u - mean)^2 / var)`` exactly."""
    mean, variance = prior
    precision = regularization / variance[0]  # (width,)
    lhs = slope.T @ slope + torch.diag(precision)
    rhs = slope.T @ (ratings - offset) + precision * mean[0]
    solution: Tensor = torch.linalg.solve(lhs, rhs)
    return solution.unsqueeze(0)


def _jacobian(model: RatingModel, vector: Tensor, item_vectors: Tensor,
              ratings: Tensor) -> tuple[Tensor, Tensor]:
    """Residuals ``(m,)`` and their Jacobian ``(m, user_dim)`` at ``vector``, in one backward.

    Each item gets its own copy of the user vector, so the gradient of the
    summed scores with respect to the copies is the Jacobian, row by row.
    ``autograd.grad`` leaves the model's ``.grad`` untouched.
    """
    with torch.enable_grad():
        users = vector.float().expand(item_vectors.shape[0], -1).clone().requires_grad_(True)
        scores = model.score(users, item_vectors)
        (jacobian,) = torch.autograd.grad(scores.sum(), [users])
    return scores.detach().double() - ratings, jacobian.double()


@torch.no_grad()
def _levenberg_marquardt(model: RatingModel, item_vectors: Tensor, ratings: Tensor,
                         prior: UserPrior, regularization: float, steps: int) -> Tensor:
    """Minimise the same objective by damped Gauss-Newton from the mean user vector."""
    mean, variance = prior
    precision = regularization / variance[0]  # (width,)
    vector = mean[0].clone()

    def cost(point: Tensor, residual: Tensor) -> float:
        return float(residual @ residual + (precision * (point - mean[0]) ** 2).sum())

    residual, jacobian = _jacobian(model, vector, item_vectors, ratings)
    current, damping = cost(vector, residual), 1e-3
    for _ in range(steps):
        hessian = jacobian.T @ jacobian + torch.diag(precision)
        gradient = jacobian.T @ residual + precision * (vector - mean[0])
        step = torch.linalg.solve(hessian + damping * torch.diag(hessian.diagonal()), -gradient)
        candidate = vector + step
        scores = model.score(candidate.float().expand(item_vectors.shape[0], -1), item_vectors)
        trial = cost(candidate, scores.double() - ratings)
        if trial < current:
            converged = current - trial <= 1e-9 * (current + 1e-12)
            vector, current, damping = candidate, trial, max(damping / 3, 1e-9)
            if converged:
                break
            residual, jacobian = _jacobian(model, vector, item_vectors, ratings)
        elif damping > 1e8:
            break
        else:
            damping *= 4
    return vector.unsqueeze(0)


def fold_in(model: RatingModel, item_vectors: Tensor, ratings: Tensor, prior: UserPrior, *,
            regularization: float = 1.0, steps: int = 20, seed: int = 0) -> Tensor:
    """Fit the user vector that best explains ``ratings`` of items with ``item_vectors``.

    Args:
        model: the trained model, in eval mode; its weights are not changed.
        item_vectors: vectors of the rated items, ``(m, item_dim)``, not requiring grad.
        ratings: the ratings, ``(m,)``.
        prior: ``(mean, variance)`` from :func:`user_prior`.
        regularization: the noise variance of a rating, in squared rating
            units: larger values pull the vector towards the mean user.
        steps: most Levenberg-Marquardt iterations for models that are not
            affine in the user vector.
        seed: seeds the probes of the affinity check.

    Returns:
        The user vector, ``(1, user_dim)``, in the model's dtype and device.
    """
    mean, _ = prior
    dtype = item_vectors.dtype
    if item_vectors.shape[0] == 0:
        return mean.to(dtype)
    ratings = ratings.to(device=mean.device, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        affine = _affine_map(model, item_vectors, prior, generator)
        if affine is not None:
            vector = _ridge(*affine, ratings, prior, regularization)
            if _close(vector[0] @ affine[0].T + affine[1], _scores(model, vector, item_vectors)[0]):
                return vector.to(dtype)
        vector = _levenberg_marquardt(model, item_vectors, ratings, prior, regularization,
                                      steps)
    return vector.to(dtype)


def rated_items(items: IdIndex, ratings: Mapping[Any, float], *,
                on_unknown: str = "error") -> tuple[np.ndarray, np.ndarray]:
    """Turn a new user's ``{raw item id: rating}`` into item indices and float64 ratings.

    Ids that arrive as text are coerced; unknown items raise, or are dropped under
    ``on_unknown="ignore"``.

    Raises:
        DataError: for a rating that is not a finite number.
        UnknownIdError: for unknown items when ``on_unknown="error"``.
    """
    keys = pd.Series(list(ratings.keys()), dtype=object).to_numpy()
    raw_values = list(ratings.values())
    numbers = pd.to_numeric(pd.Series(raw_values, dtype=object), errors="coerce")
    values = numbers.to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(f"rating of item {keys[bad[0]]!r} is not a finite number: "
                        f"{raw_values[bad[0]]!r}", value=raw_values[bad[0]],
                        hint="give every rated item a number on the rating scale")
    index = items.index(items.coerce(keys), on_unknown="missing")
    unknown = index < 0
    if unknown.any() and on_unknown == "error":
        raise UnknownIdError("item", pd.unique(keys[unknown]).tolist(),
                             hint="the model knows only its training items; pass "
                             "on_unknown='ignore' to skip unknown ones")
    return index[~unknown], values[~unknown]
