"""The optional hand-written steps' shared parts, and the per-use L2 penalty every path applies.

A model may offer a hand-written rating step (:class:`~embrec.models.base.HandStepModel`):
forward and mean-squared-error gradients without autograd, which for networks
this small costs more than the arithmetic. The contract suite
(``tests/models/test_contract.py``) proves every such step equal to autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from embrec.models.tower import Tower, TowerStep

if TYPE_CHECKING:
    from embrec.models.base import EmbeddingModel

__all__ = ["HandStep", "add_decay", "output_and_gradient", "tower_gradient_step"]

HandStep = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
"""A hand-written rating step: ``(user, item, rating) -> (predictions, user row gradients,
item row gradients)``, adding the dense parameters' gradients into their ``.grad``."""


def add_decay(grad: Tensor, rows: Tensor, bias_columns: int, weight_decay: float,
              bias_weight_decay: float, n: int) -> None:
    """Add the gradient of the per-use L2 penalty on ``(k, width)`` ``rows`` to ``grad``.

    The penalty is ``(weight_decay * |factors|² + bias_weight_decay * |biases|²) / n``
    (the last ``bias_columns`` columns are biases) summed over the rows a batch of
    ``n`` read, one row per use: a user with 500 ratings is penalised 500 times as
    often as one with 1, and rows outside the batch are not touched.
    """
    d = rows.shape[1] - bias_columns
    if weight_decay > 0:
        grad[:, :d].add_(rows[:, :d], alpha=2.0 * weight_decay / n)
    if bias_columns and bias_weight_decay > 0:
        grad[:, d:].add_(rows[:, d:], alpha=2.0 * bias_weight_decay / n)


def tower_gradient_step(model: EmbeddingModel, tower: Tower, bounds: tuple[float, float] | None,
                        join: Callable[[Tensor, Tensor], Tensor],
                        split: Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], None],
                        weight_decay: float, bias_weight_decay: float) -> HandStep:
    """Return the hand-written rating step of a model scoring ``tower(join(u, i))`` + biases.

    ``tower`` ends in one linear unit, ``bounds`` is ``(low, width)`` or ``None``;
    ``split(input gradient, u, i, user grad, item grad)`` fills the factor columns
    of both row gradients from the gradient of ``join``'s output.
    """
    users, items = model.user_embedding.weight.detach(), model.item_embedding.weight.detach()
    step_of, biased = TowerStep(tower), model.bias_columns
    d = users.shape[1] - biased

    def step(user: Tensor, item: Tensor, rating: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        u, i = users.index_select(0, user), items.index_select(0, item)  # (b, d [+ 1])
        z, saved = step_of.forward(join(u[:, :d], i[:, :d]))
        z = z.squeeze(1) + u[:, d] + i[:, d] if biased else z.squeeze(1)
        prediction, grad = output_and_gradient(z, rating, bounds)
        grad_x = step_of.backward(saved, grad.unsqueeze(1))  # (batch, tower inputs)
        grad_u, grad_i = torch.empty_like(u), torch.empty_like(i)
        split(grad_x, u[:, :d], i[:, :d], grad_u[:, :d], grad_i[:, :d])
        if biased:
            grad_u[:, d], grad_i[:, d] = grad, grad
        add_decay(grad_u, u, biased, weight_decay, bias_weight_decay, len(rating))
        add_decay(grad_i, i, biased, weight_decay, bias_weight_decay, len(rating))
        return prediction, grad_u, grad_i

    return step


def output_and_gradient(z: Tensor, rating: Tensor,
                        bounds: tuple[float, float] | None) -> tuple[Tensor, Tensor]:
    """Return ``(predictions, d loss / d z)`` of ``(batch,)`` raw scores ``z``, for
    ``loss = mean((prediction - rating) ** 2)`` and ``bounds`` ``(low, width)`` or ``None``."""
    scale = 2.0 / max(len(rating), 1)
    if bounds is None:
        return z, (z - rating).mul_(scale)
    low, width = bounds
    unit = torch.sigmoid(z)
    prediction = unit * width + low
    slope = unit * (1.0 - unit)
    return prediction, (prediction - rating).mul_(slope).mul_(scale * width)
