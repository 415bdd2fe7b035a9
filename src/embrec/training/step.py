"""One training step interface: a batch in, predictions and row-sparse gradients out.

A step reads the embedding rows a batch needs, computes the loss and returns
the gradient of each row it read (one row per occurrence, as ``(index, rows)``),
having added the dense layers' gradients into their ``.grad``. What happens to
those gradients next (a row-sparse optimiser; an exchange between processes) is
the caller's business, so a new loss, a new model or a new way of training
plugs into the same loop. Autograd (:func:`autograd_step`) is the reference; a
model's hand-written rating step is proven equal to it. Every path adds the same
per-use L2 penalty, whatever the objective (:func:`~embrec.models.base.add_decay`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from embrec.config import TrainConfig
from embrec.models.base import EmbeddingModel, HandStepModel, add_decay
from embrec.training.batches import Columns
from embrec.training.losses import Objective, RatingLoss

__all__ = ["Objective", "RatingLoss", "Step", "StepOutput", "autograd_step", "make_step"]


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


def autograd_step(model: EmbeddingModel, objective: Objective, config: TrainConfig) -> Step:
    """Return the reference step: the objective's loss through autograd, plus the penalty
    (``config.weight_decay``, ``bias_weight_decay``); dense parameters need ``.grad`` buffers."""
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
            loss.backward()  # type: ignore[no-untyped-call]
        user_grad = users.grad if users.grad is not None else torch.zeros_like(users)
        item_grad = items.grad if items.grad is not None else torch.zeros_like(items)
        for grad, rows in ((user_grad, users), (item_grad, items)):
            add_decay(grad, rows.detach(), bias_columns, decay, bias_decay, len(batch))
        return StepOutput(prediction.detach(), user_index, user_grad, item_index, item_grad)

    return step


def make_step(model: EmbeddingModel, config: TrainConfig,
              objective: Objective | None = None) -> tuple[Step, str]:
    """Return the step for ``model`` and which path it takes (``fast`` or ``autograd``).

    The hand-written path is taken for the rating loss (the default ``objective``)
    when the model has one and ``config.step_path`` allows it.
    """
    objective = objective or RatingLoss()
    if not isinstance(model, HandStepModel) or config.step_path == "autograd" \
            or not isinstance(objective, RatingLoss):
        return autograd_step(model, objective, config), "autograd"
    hand = model.gradient_step(config.weight_decay, config.bias_weight_decay)

    def step(batch: Columns) -> StepOutput:
        with torch.no_grad():
            prediction, user_grad, item_grad = hand(batch.user, batch.item, batch.rating)
        return StepOutput(prediction, batch.user, user_grad, batch.item, item_grad)

    return step, "fast"
