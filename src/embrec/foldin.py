"""Fold a new user in without retraining: fit one user vector with the item side frozen.

The fit is a maximum a posteriori estimate: squared error on the given ratings
plus a Gaussian prior centred on the mean user vector, with the per-dimension
variance of the trained users' vectors. When the model's score is affine in
the user vector (a dot product with biases, such as biased MF) the estimate is
an exact ridge least-squares solve; the affinity is *measured*, not assumed,
by probing the model. Otherwise a few L-BFGS steps on a single ``(1, user_dim)``
vector do the job. Both take milliseconds.
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
    """Return the mean and per-dimension variance of every trained user's vector.

    Args:
        model: the trained model.
        chunk: users per ``user_vectors`` call.

    Returns:
        ``(mean, variance)``, each ``(1, user_dim)`` float64 on the model's device.
    """
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


def _affine_map(model: RatingModel, item_vectors: Tensor, prior: UserPrior,
                generator: torch.Generator) -> tuple[Tensor, Tensor] | None:
    """Measure ``scores = A @ u + c``; ``None`` when the model is not affine in ``u``."""
    mean, variance = prior
    width = mean.shape[1]
    device = mean.device
    noise = torch.randn(2, width, generator=generator, dtype=torch.float64).to(device)
    probes = mean + noise * variance.sqrt()
    points = torch.cat([torch.zeros(1, width, dtype=torch.float64, device=device),
                        torch.eye(width, dtype=torch.float64, device=device), probes])
    scores = _scores(model, points, item_vectors)
    offset = scores[0]  # (n_items,)
    slope = (scores[1:width + 1] - offset).T  # (n_items, width)
    predicted = probes @ slope.T + offset
    size = float(scores.abs().max()) + 1.0
    if not torch.allclose(predicted, scores[width + 1:], atol=AFFINE_TOLERANCE * size, rtol=0):
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


def _gradient(model: RatingModel, item_vectors: Tensor, ratings: Tensor, prior: UserPrior,
              regularization: float, steps: int) -> Tensor:
    """Minimise the same objective with L-BFGS from the mean user vector."""
    mean, variance = prior
    vector = mean.clone().float().requires_grad_(True)
    optimizer = torch.optim.LBFGS([vector], max_iter=steps, line_search_fn="strong_wolfe")
    targets = ratings.float()
    precision = (regularization / variance).float()
    start = mean.float()

    def closure() -> Tensor:
        users = vector.expand(item_vectors.shape[0], -1)
        error = model.score(users, item_vectors).float() - targets
        loss = (error**2).sum() + (precision * (vector - start) ** 2).sum()
        (vector.grad,) = torch.autograd.grad(loss, [vector])  # leaves model .grad untouched
        return loss.detach()

    with torch.enable_grad():
        optimizer.step(closure)  # type: ignore[no-untyped-call]
    return vector.detach().double()


def fold_in(
    model: RatingModel,
    item_vectors: Tensor,
    ratings: Tensor,
    prior: UserPrior,
    *,
    regularization: float = 1.0,
    steps: int = 50,
    seed: int = 0,
) -> Tensor:
    """Fit the user vector that best explains ``ratings`` of items with ``item_vectors``.

    Args:
        model: the trained model, in eval mode; its weights are not changed.
        item_vectors: vectors of the rated items, ``(m, item_dim)``, not requiring grad.
        ratings: the ratings, ``(m,)``.
        prior: ``(mean, variance)`` from :func:`user_prior`.
        regularization: the noise variance of a rating, in squared rating
            units: larger values pull the vector towards the mean user.
        steps: most L-BFGS iterations for models that are not affine in the
            user vector.
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
            check = _scores(model, vector, item_vectors)[0]
            if torch.allclose(check, vector[0] @ affine[0].T + affine[1],
                              atol=AFFINE_TOLERANCE * (float(check.abs().max()) + 1.0)):
                return vector.to(dtype)
    return _gradient(model, item_vectors, ratings, prior, regularization, steps).to(dtype)


def rated_items(items: IdIndex, ratings: Mapping[Any, float], *,
                on_unknown: str = "error") -> tuple[np.ndarray, np.ndarray]:
    """Turn a new user's ``{raw item id: rating}`` into item indices and float64 ratings.

    Args:
        items: the model's item index (ids that arrive as text are coerced).
        ratings: raw item id -> rating.
        on_unknown: ``"error"`` raises for unknown items, ``"ignore"`` drops them.

    Returns:
        ``(indices, ratings)`` of the known items.

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
