"""Gibbs sampling for the Bayesian factorization model: blocked, conjugate, vectorised.

The model (see :mod:`embrec.models.bayesian`) predicts
``w0 + <p_u, q_i> + b_u + b_i`` where ``[p_u, b_u] = X_U[u] V_U`` sums the user's
feature rows (id, rated items scaled by 1/sqrt(|N(u)|), side features) and
``[q_i, b_i] = X_I[i] V_I`` the item's (id, raters, side features). Every row of
``V`` has a normal prior whose mean and precision are shared by its group (one
group per kind of feature) and per column, with normal-gamma hyper-priors, and
the noise precision ``alpha`` a gamma prior, as in libFM's MCMC (Rendle 2012).

Given the item side, the user side is a Bayesian linear regression, so one sweep
samples all of ``V_U`` jointly from its normal conditional, then all of ``V_I``,
instead of libFM's one coordinate at a time (the same chain, blocked: it mixes at
least as well). A joint normal sample is ``A⁻¹ (b + noise)`` with the noise drawn
with covariance ``A`` (perturb and solve), and ``A`` is applied, never formed:
per user the ratings collapse into a ``K x K`` curvature ``C_u = Σ z zᵀ`` over
the items they rated, so one application is two sparse products and a batched
``K x K`` product. Block-Jacobi preconditioned conjugate gradients solve it to
``tolerance``; for id-only features the preconditioner is exact (one iteration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["Side", "Stacks", "run_chain", "sample_side"]

PRIOR_SHAPE, PRIOR_RATE, MEAN_STRENGTH = 1.0, 1.0, 1.0
"""libFM's hyper-prior: gamma(1, 1) on precisions, the group mean's prior worth one row."""


@dataclass(slots=True)
class Side:
    """One side's design and parameters.

    Attributes:
        design: ``(n_rows, n_features)`` CSR: each user's (or item's) feature row.
        group: ``(n_features,)`` the prior group of every feature.
        weights: ``(n_features, K)`` the factors and (last column) the linear weight.
        mean: ``(n_groups, K)`` prior means.
        precision: ``(n_groups, K)`` prior precisions.
    """

    design: sp.csr_matrix
    group: np.ndarray
    weights: np.ndarray
    mean: np.ndarray = field(init=False)
    precision: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n_groups = int(self.group.max()) + 1
        self.mean = np.zeros((n_groups, self.weights.shape[1]))
        self.precision = np.ones((n_groups, self.weights.shape[1]))

    def vectors(self) -> np.ndarray:
        """``(n_rows, K)``: every row's summed factors and bias."""
        out: np.ndarray = self.design @ self.weights
        return out


@dataclass(slots=True)
class Stacks:
    """Per-sample user and item vectors kept after burn-in (``(n, samples, k + 2)``)."""

    users: list[np.ndarray] = field(default_factory=list)
    items: list[np.ndarray] = field(default_factory=list)
    user_side: list[np.ndarray] = field(default_factory=list)
    item_side: list[np.ndarray] = field(default_factory=list)


def _curvature(ratings: sp.csr_matrix, other: np.ndarray, offset: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per own row: ``C = Σ z zᵀ``, ``d = Σ t z`` and ``z`` over its rated partners.

    ``ratings`` holds ``y - w0 - other bias`` per (own, partner) pair; ``z = [q, 1]``.
    """
    k = other.shape[1] - 1
    z = np.hstack([other[:, :k], np.ones((len(other), 1))])  # (n_other, K)
    outer = (z[:, :, None] * z[:, None, :]).reshape(len(z), -1)
    pattern = sp.csr_matrix((np.ones_like(ratings.data), ratings.indices, ratings.indptr),
                            shape=ratings.shape)
    curvature = np.asarray(pattern @ outer).reshape(-1, k + 1, k + 1)
    shifted = sp.csr_matrix((ratings.data - offset[ratings.indices], ratings.indices,
                             ratings.indptr), shape=ratings.shape)
    return curvature, np.asarray(shifted @ z), z


def _apply(side: Side, curvature: np.ndarray, alpha: float, row_precision: np.ndarray,
           weights: np.ndarray) -> np.ndarray:
    """``A V``: the conditional precision applied to ``weights`` (``(n_features, K)``)."""
    vectors = side.design @ weights
    out: np.ndarray = alpha * (side.design.T @ np.einsum("nkl,nl->nk", curvature, vectors))
    out += row_precision * weights
    return out


def _solve(side: Side, curvature: np.ndarray, alpha: float, row_precision: np.ndarray,
           rhs: np.ndarray, start: np.ndarray, tolerance: float, max_iter: int) -> np.ndarray:
    """Block-Jacobi preconditioned conjugate gradients for ``A V = rhs``."""
    k1 = rhs.shape[1]
    squared = side.design.multiply(side.design).tocsr()
    blocks = alpha * np.asarray(squared.T @ curvature.reshape(len(curvature), -1))
    blocks = blocks.reshape(-1, k1, k1) + row_precision[:, :, None] * np.eye(k1)
    inverse = np.linalg.inv(blocks)
    x = start.copy()
    residual = rhs - _apply(side, curvature, alpha, row_precision, x)
    z = np.einsum("nkl,nl->nk", inverse, residual)
    direction, rz = z.copy(), float((residual * z).sum())
    limit = tolerance ** 2 * float((rhs * rhs).sum())  # squared norms: no BLAS call
    for _ in range(max_iter):
        if float((residual * residual).sum()) <= limit:
            break
        applied = _apply(side, curvature, alpha, row_precision, direction)
        step = rz / float((direction * applied).sum())
        x += step * direction
        residual -= step * applied
        z = np.einsum("nkl,nl->nk", inverse, residual)
        rz, previous = float((residual * z).sum()), rz
        direction = z + (rz / previous) * direction
    return x


def sample_side(side: Side, ratings: sp.csr_matrix, other: np.ndarray, offset: np.ndarray,
                alpha: float, rng: np.random.Generator | None, *, tolerance: float = 1e-2,
                max_iter: int = 200) -> None:
    """Draw ``side.weights`` from its normal conditional given the other side (in place).

    ``ratings``: ``(n_rows, n_other)`` CSR of ``y - w0`` for every training pair; ``other``:
    ``(n_other, K)`` the other side's summed vectors, ``offset`` ``(n_other,)`` its bias
    (subtracted from the ratings); ``alpha``: the noise precision; ``rng=None`` gives the
    conditional mean. Conjugate gradients stop at relative residual ``tolerance`` or after
    ``max_iter`` iterations.
    """
    curvature, targets, z = _curvature(ratings, other, offset)
    row_mean, row_precision = side.mean[side.group], side.precision[side.group]
    rhs = side.design.T @ (alpha * targets) + row_precision * row_mean
    if rng is not None:
        pattern = sp.csr_matrix((rng.standard_normal(len(ratings.data)), ratings.indices,
                                 ratings.indptr), shape=ratings.shape)
        rhs += np.sqrt(alpha) * (side.design.T @ np.asarray(pattern @ z))
        rhs += np.sqrt(row_precision) * rng.standard_normal(row_precision.shape)
    side.weights = _solve(side, curvature, alpha, row_precision, np.asarray(rhs),
                          side.weights, tolerance, max_iter)


def sample_priors(side: Side, rng: np.random.Generator) -> None:
    """Draw each group's prior mean and precision given its rows (normal-gamma)."""
    n_groups = side.mean.shape[0]
    counts = np.bincount(side.group, minlength=n_groups)[:, None].astype(np.float64)
    sums = np.zeros_like(side.mean)
    np.add.at(sums, side.group, side.weights)
    mean = sums / (counts + MEAN_STRENGTH)  # the hyper-prior's mean is 0
    side.mean = rng.normal(mean, 1.0 / np.sqrt((counts + MEAN_STRENGTH) * side.precision))
    squares = np.zeros_like(side.mean)
    np.add.at(squares, side.group, (side.weights - side.mean[side.group]) ** 2)
    shape = (PRIOR_SHAPE + counts + 1.0) / 2.0
    rate = (PRIOR_RATE + MEAN_STRENGTH * side.mean ** 2 + squares) / 2.0
    side.precision = rng.gamma(shape, 1.0 / rate)


def _errors(y: np.ndarray, user: np.ndarray, item: np.ndarray, p: np.ndarray, q: np.ndarray,
            w0: float) -> np.ndarray:
    k = p.shape[1] - 1
    dot = np.einsum("rk,rk->r", p[user, :k], q[item, :k])
    out: np.ndarray = y - w0 - dot - p[user, k] - q[item, k]
    return out


def run_chain(users: Side, items: Side, user: np.ndarray, item: np.ndarray, y: np.ndarray,
              *, sweeps: int, burn_in: int, seed: int, side_rows: tuple[int, int],
              tolerance: float = 1e-2) -> Stacks:
    """Run the chain and keep every sample after burn-in.

    ``user``, ``item`` and ``y`` are the training ratings' ``(n,)`` indices and values;
    the first ``burn_in`` of ``sweeps`` sweeps are discarded; ``side_rows`` says where the
    side features start in each side's design (for cold start); ``tolerance`` is
    :func:`sample_side`'s.

    Returns:
        The per-sample vectors ``[p, b_u, 1]`` and ``[q, 1, b_i + w0]``, and the side
        features' rows under each side's average id-and-history row (the vectors of a
        cold user or item).
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = users.design.shape[0], items.design.shape[0]
    w0, alpha, stacks = float(y.mean()), 1.0, Stacks()
    by_user = sp.csr_matrix((y, (user, item)), shape=(n_users, n_items))
    by_item = by_user.T.tocsr()
    for sweep in range(sweeps):
        p, q = users.vectors(), items.vectors()
        e = _errors(y, user, item, p, q, w0)
        alpha = float(rng.gamma(PRIOR_SHAPE + len(y) / 2, 1.0 / (PRIOR_RATE + e @ e / 2)))
        precision = alpha * len(y) + 1.0
        w0 = float(rng.normal(alpha * float((e + w0).sum()) / precision, precision ** -0.5))
        sample_priors(users, rng)
        sample_priors(items, rng)
        k = p.shape[1] - 1
        sample_side(users, _shifted(by_user, w0), q, q[:, k], alpha, rng, tolerance=tolerance)
        p = users.vectors()
        sample_side(items, _shifted(by_item, w0), p, p[:, k], alpha, rng, tolerance=tolerance)
        if sweep >= burn_in:
            _keep(stacks, users, items, w0, side_rows)
    return stacks


def _shifted(ratings: sp.csr_matrix, w0: float) -> sp.csr_matrix:
    return sp.csr_matrix((ratings.data - w0, ratings.indices, ratings.indptr), shape=ratings.shape)


def _keep(stacks: Stacks, users: Side, items: Side, w0: float, side_rows: tuple[int, int]) -> None:
    p, q = users.vectors(), items.vectors()
    k = p.shape[1] - 1
    stacks.users.append(np.hstack([p, np.ones((len(p), 1))]))
    stacks.items.append(np.hstack([q[:, :k], np.ones((len(q), 1)), q[:, k:] + w0]))
    for side, start, out, bias_last in ((users, side_rows[0], stacks.user_side, False),
                                        (items, side_rows[1], stacks.item_side, True)):
        # an unseen id's guess before its features: the average trained row's id and
        # history part (a new user has no history, but the chain fitted q_i to users who do)
        base = np.asarray(side.design[:, :start] @ side.weights[:start]).mean(0)
        rows = np.vstack([base, side.weights[start:]])
        constant = np.zeros((len(rows), 1))
        constant[0] = 1.0
        if bias_last:  # items: [q, 1, b + w0]; w0 rides on the base row
            bias = rows[:, k:].copy()
            bias[0] += w0
            out.append(np.hstack([rows[:, :k], constant, bias]))
        else:
            out.append(np.hstack([rows, constant]))
