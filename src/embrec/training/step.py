"""One training step interface: a batch in, predictions and row-sparse gradients out.

A step reads the embedding rows a batch needs, computes the loss and returns
the gradient of each row it read (one row per occurrence, as ``(index, rows)``),
having added the dense layers' gradients into their ``.grad``. What happens to
those gradients next (a row-sparse optimiser; an exchange between processes) is
the caller's business, so a new loss, a new model or a new way of training
plugs into the same loop.

Autograd is the reference: :func:`autograd_step` needs only the model's
``score`` and an :class:`Objective`. A model may also offer a hand-written
``gradient_step`` for the rating loss (biased MF, GMF and MLP do; for networks
this small autograd's bookkeeping costs more than the arithmetic); the contract
suite proves it equal to autograd, gradients and trained weights alike, and
:func:`make_step` uses it unless ``TrainConfig.step_path="autograd"``.

The penalty every step adds is the same, whatever the objective::

    weight_decay * mean_over_batch(|factors of the rows used|²)
    + bias_weight_decay * mean_over_batch(|bias columns of the rows used|²)

so a user with 500 ratings is penalised 500 times as often as one with 1 (as
Surprise's ``reg``), and rows outside the batch are not touched at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from embrec.config import TrainConfig
from embrec.models.base import EmbeddingModel
from embrec.training.batches import Columns
from embrec.training.losses import Objective, RatingLoss

__all__ = ["Objective", "RatingLoss", "Step", "StepOutput", "autograd_step", "make_step",
           "penalty"]


@dataclass(frozen=True, slots=True)
class StepOutput:
    """What one step produced.

    Attributes:
        prediction: ``(batch,)`` the model's outputs for the batch's pairs (for
            the running train error).
        user_index: ``(k,)`` user rows the step read (repeats allowed).
        user_grad: ``(k, width)`` the loss gradient of each of those rows.
        item_index: ``(m,)`` item rows the step read.
        item_grad: ``(m, width)`` their gradients.
    """

    prediction: Tensor
    user_index: Tensor
    user_grad: Tensor
    item_index: Tensor
    item_grad: Tensor


Step = Callable[[Columns], StepOutput]


def penalty(rows: Tensor, bias_columns: int, weight_decay: float, bias_weight_decay: float,
            n: int) -> Tensor:
    """Return the L2 penalty on ``rows`` (one per use), divided by the batch size ``n``."""
    factors = rows[:, :rows.shape[1] - bias_columns] if bias_columns else rows
    total = factors.square().sum() * (weight_decay / n)
    if bias_columns and bias_weight_decay:
        total = total + rows[:, -bias_columns:].square().sum() * (bias_weight_decay / n)
    return total


def autograd_step(model: EmbeddingModel, objective: Objective, config: TrainConfig) -> Step:
    """Return the reference step: the objective's loss plus the penalty, through autograd.

    Args:
        model: the model; its dense parameters need ``.grad`` buffers to add into.
        objective: the loss.
        config: ``weight_decay`` and ``bias_weight_decay``.

    Returns:
        The step.
    """
    user_table = model.user_embedding.weight.detach()
    item_table = model.item_embedding.weight.detach()
    decay, bias_decay = config.weight_decay, config.bias_weight_decay
    bias_columns = model.bias_columns

    def step(batch: Columns) -> StepOutput:
        user_index, item_index = objective.rows(batch)
        users = user_table.index_select(0, user_index).requires_grad_()
        items = item_table.index_select(0, item_index).requires_grad_()
        with torch.enable_grad():
            loss, prediction = objective.loss(model, users, items, batch, item_index)
            if decay or bias_decay:
                n = len(batch)
                loss = loss + penalty(users, bias_columns, decay, bias_decay, n) \
                    + penalty(items, bias_columns, decay, bias_decay, n)
            loss.backward()  # type: ignore[no-untyped-call]
        user_grad = users.grad if users.grad is not None else torch.zeros_like(users)
        item_grad = items.grad if items.grad is not None else torch.zeros_like(items)
        return StepOutput(prediction.detach(), user_index, user_grad, item_index, item_grad)

    return step


def make_step(model: EmbeddingModel, config: TrainConfig,
              objective: Objective | None = None) -> tuple[Step, str]:
    """Return the step for ``model`` and which path it takes (``fast`` or ``autograd``).

    The hand-written path is taken for the rating loss when the model has one
    and ``config.step_path`` allows it.

    Args:
        model: the model, with ``.grad`` buffers on its dense parameters.
        config: the training settings.
        objective: the loss; the rating loss when omitted.

    Returns:
        ``(step, path)``.
    """
    objective = objective or RatingLoss()
    build = getattr(model, "gradient_step", None)
    if build is None or config.step_path == "autograd" or not isinstance(objective, RatingLoss):
        return autograd_step(model, objective, config), "autograd"
    hand = build(config.weight_decay, config.bias_weight_decay)

    def step(batch: Columns) -> StepOutput:
        with torch.no_grad():
            prediction, user_grad, item_grad = hand(batch.user, batch.item, batch.rating)
        return StepOutput(prediction, batch.user, user_grad, batch.item, item_grad)

    return step, "fast"
