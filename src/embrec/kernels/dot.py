"""Per-rating training of biased matrix factorisation, compiled with Numba.

One call trains a contiguous range of an epoch's shuffled ratings, one rating at
a time, as LIBMF and Surprise do: predict, take the squared error's gradient,
update the user's row, the item's row and the global bias. A mini-batch step
through torch pays for gathers, de-duplication and write-backs; here a rating
costs the two rows' arithmetic.

The update is exactly the torch step at ``batch_size=1`` (the contract tests
prove it): the same per-use L2 (``2 * weight_decay * row`` on the factors), the
same row optimisers on the same buffers (:mod:`embrec.training.sparse`: rows
are ``[weights | optimiser state]``), the same dense optimiser on the global
bias, the schedule's learning rate of each step, and Adam's bias correction
counted in steps.

Optimiser codes: :data:`SGD`, :data:`ADAGRAD`, :data:`ROWWISE_ADAGRAD`,
:data:`ADAM` (lazy Adam for rows; plain Adam for the dense bias).
"""

from __future__ import annotations

import math

import numpy as np

from embrec.kernels.compiled import cached_njit

__all__ = ["ADAGRAD", "ADAM", "ROWWISE_ADAGRAD", "SGD", "biased_mf"]

SGD, ADAGRAD, ROWWISE_ADAGRAD, ADAM = 0, 1, 2, 3
BETA1, BETA2 = np.float32(0.9), np.float32(0.999)
FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
"""LLVM's fast-math flags short of assuming no NaN or infinity (a diverging fit must still
show a NaN): reassociation lets the dot product and the row updates use SIMD lanes."""
ONE, TWO = np.float32(1.0), np.float32(2.0)
Real = float | np.float32


@cached_njit(nogil=True, inline="always", fastmath=FAST, error_model="numpy")
def _update_row(rows: np.ndarray, r: int, grad: np.ndarray, kind: int, lr: Real,
                adam_size: Real, eps: Real) -> None:
    """One row-optimiser update of row ``r`` of a ``[weights | state]`` buffer."""
    w = grad.shape[0]
    if kind == SGD:
        for f in range(w):
            rows[r, f] -= lr * grad[f]
    elif kind == ADAGRAD:
        for f in range(w):
            total = rows[r, w + f] + grad[f] * grad[f]
            rows[r, w + f] = total
            rows[r, f] -= lr * grad[f] / (math.sqrt(total) + eps)
    elif kind == ROWWISE_ADAGRAD:
        mean = np.float32(0.0)
        for f in range(w):
            mean += grad[f] * grad[f]
        total = rows[r, w] + mean / np.float32(w)
        rows[r, w] = total
        step = lr / (math.sqrt(total) + eps)
        for f in range(w):
            rows[r, f] -= step * grad[f]
    else:
        for f in range(w):
            first = BETA1 * rows[r, w + f] + (ONE - BETA1) * grad[f]
            second = BETA2 * rows[r, 2 * w + f] + (ONE - BETA2) * grad[f] * grad[f]
            rows[r, w + f] = first
            rows[r, 2 * w + f] = second
            rows[r, f] -= adam_size * first / (math.sqrt(second) + eps)


@cached_njit(nogil=True, inline="always", fastmath=FAST, error_model="numpy")
def _update_dense(dense: np.ndarray, firsts: np.ndarray, seconds: np.ndarray, j: int,
                  grad: Real, kind: int, lr: Real, adam_size: Real, eps: Real,
                  momentum: Real) -> None:
    """Update dense parameter ``j`` as :class:`~embrec.training.optim.DenseOptimizer` does."""
    if kind == SGD:
        step = grad
        if momentum > 0:
            step = momentum * firsts[j] + grad
            firsts[j] = step
        dense[j] -= lr * step
    elif kind == ADAM:
        first = BETA1 * firsts[j] + (ONE - BETA1) * grad
        second = BETA2 * seconds[j] + (ONE - BETA2) * grad * grad
        firsts[j], seconds[j] = first, second
        dense[j] -= adam_size * first / (math.sqrt(second) + eps)
    else:  # adagrad (row-wise Adagrad is element-wise on dense parameters)
        total = seconds[j] + grad * grad
        seconds[j] = total
        dense[j] -= lr * grad / (math.sqrt(total) + eps)


@cached_njit(nogil=True, fastmath=FAST, error_model="numpy")
def biased_mf(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, start: int, stop: int,
              lrs: np.ndarray, user_rows: np.ndarray,
              item_rows: np.ndarray, dense: np.ndarray, firsts: np.ndarray,
              seconds: np.ndarray, kinds: np.ndarray, settings: np.ndarray, t0: int,
              predictions: np.ndarray) -> None:
    """Train ratings ``start:stop`` of the epoch's order, one rating at a time.

    Args:
        users, items, ratings: the epoch's shuffled columns.
        start, stop: the range of positions to train.
        lrs: the learning rate of each position in the range (``lrs[j - start]``).
        user_rows, item_rows: ``[factors, bias | optimiser state]`` buffers.
        dense: ``[global bias]``; firsts, seconds: its optimiser's moments.
        kinds: ``[row optimiser, dense optimiser]`` codes.
        settings: ``[row epsilon, dense epsilon, weight_decay, bias_weight_decay,
            momentum, bounded (0/1), low, width]``.
        t0: steps taken before position 0 of this epoch (Adam's step is ``t0 + j + 1``).
        predictions: receives each rating's prediction before its update.
    """
    row_kind, dense_kind = kinds[0], kinds[1]
    f32 = np.float32
    row_eps, dense_eps, decay, bias_decay = f32(settings[0]), f32(settings[1]), \
        TWO * f32(settings[2]), TWO * f32(settings[3])
    momentum, bounded, low, span = f32(settings[4]), settings[5] > 0.0, f32(settings[6]), \
        f32(settings[7])
    width = user_rows.shape[1] if row_kind == SGD else \
        (user_rows.shape[1] - 1 if row_kind == ROWWISE_ADAGRAD else
         user_rows.shape[1] // (2 if row_kind == ADAGRAD else 3))
    k = width - 1
    grad_u = np.empty(width, dtype=np.float32)
    grad_i = np.empty(width, dtype=np.float32)
    adam_size = f32(0.0)
    decay1, decay2 = 0.9 ** (t0 + start), 0.999 ** (t0 + start)  # beta ** step, kept running
    for j in range(start, stop):
        u, i = users[j], items[j]
        lr = f32(lrs[j - start])
        z = dense[0] + user_rows[u, k] + item_rows[i, k]
        for f in range(k):
            z += user_rows[u, f] * item_rows[i, f]
        if bounded:
            unit = ONE / (ONE + math.exp(-z))
            prediction = low + span * unit
            grad = TWO * (prediction - ratings[j]) * unit * (ONE - unit) * span
        else:
            prediction = z
            grad = TWO * (z - ratings[j])
        predictions[j] = prediction
        if row_kind == SGD:  # LIBMF's loop: read both rows once, write both, no gradient rows
            for f in range(k):
                p, q = user_rows[u, f], item_rows[i, f]
                user_rows[u, f] = p - lr * (grad * q + decay * p)
                item_rows[i, f] = q - lr * (grad * p + decay * q)
            user_rows[u, k] -= lr * (grad + bias_decay * user_rows[u, k])
            item_rows[i, k] -= lr * (grad + bias_decay * item_rows[i, k])
            _update_dense(dense, firsts, seconds, 0, grad, dense_kind, lr, adam_size, dense_eps,
                          momentum)
            continue
        for f in range(k):
            grad_u[f] = grad * item_rows[i, f] + decay * user_rows[u, f]
            grad_i[f] = grad * user_rows[u, f] + decay * item_rows[i, f]
        grad_u[k] = grad + bias_decay * user_rows[u, k]
        grad_i[k] = grad + bias_decay * item_rows[i, k]
        if row_kind == ADAM or dense_kind == ADAM:  # step t0 + j + 1's bias correction
            decay1, decay2 = decay1 * 0.9, decay2 * 0.999
            adam_size = f32(lrs[j - start] * math.sqrt(1.0 - decay2) / (1.0 - decay1))
        _update_row(user_rows, u, grad_u, row_kind, lr, adam_size, row_eps)
        _update_row(item_rows, i, grad_i, row_kind, lr, adam_size, row_eps)
        _update_dense(dense, firsts, seconds, 0, grad, dense_kind, lr, adam_size, dense_eps,
                      momentum)
