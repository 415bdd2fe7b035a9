"""What ``fit`` watches: held-out rows, their error each epoch, the best epoch, divergence.

Validation rows are either given or carved from the training rows by the run's
seed; each epoch's validation RMSE and MAE use predictions clipped to the scale,
as ``predict`` gives them. :class:`Best` keeps the best epoch (and, with early
stopping, a copy of its weights to restore); :func:`diverged` turns a non-finite
loss into a warning (good weights were kept) or a :class:`TrainingError`.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch
from torch import Tensor

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import TrainingError, TrainingWarning
from embrec.models.base import EmbeddingModel
from embrec.training.batches import Columns, columns, known_rows, validation_rows
from embrec.training.diagnostics import clipped, error_metrics
from embrec.training.process import training_device

__all__ = ["Best", "diverged", "finite", "validate", "validation_columns"]

log = logging.getLogger(__name__)


def validation_columns(train: Ratings, validation: Ratings | None, config: TrainConfig,
                seed: int) -> tuple[np.ndarray | None, Columns | None, int]:
    """Return the fitted rows of ``train``, the validation columns and the unknown count."""
    device = training_device(config)
    if validation is not None:
        known, dropped = known_rows(validation, train)
        if len(known) == 0:
            log.warning("no validation rating has a user and an item seen in training; "
                        "training without validation")
            return None, None, dropped
        return None, columns(known, None, device), dropped
    fit_rows, held = validation_rows(len(train), config.validation, config.validation_mode,
                                     np.random.default_rng(seed))
    if held is not None and len(held) == 0:
        log.warning("validation=%s of %d ratings is no rating; training without validation",
                    config.validation, len(train))
        return None, None, 0
    return fit_rows, None if held is None else columns(train, held, device), 0


def finite(tensors: list[Tensor]) -> bool:
    """Whether every value is finite: one sum per tensor (NaN and inf survive a sum).

    Each epoch checks the dense layers only, the tables once after the last epoch: a
    row changes only through updates driven by predictions, and a non-finite
    prediction already fails the epoch's train RMSE.
    """
    return all(math.isfinite(float(t.detach().sum())) for t in tensors)


class Best:
    """The best validation RMSE so far, its epoch and (with early stopping only) a copy of its
    weights."""

    def __init__(self, model: EmbeddingModel, keep: bool) -> None:
        self.rmse, self.epoch = math.inf, 0
        self.params = [p.detach().clone() for p in model.parameters()] if keep else None

    def update(self, record: dict[str, float], model: EmbeddingModel, epoch: int,
               patience: int | None) -> bool:
        """Record ``epoch``; return whether early stopping says to stop."""
        rmse = record.get("validation_rmse", math.inf)
        if rmse < self.rmse:
            self.rmse, self.epoch = rmse, epoch
            if self.params is not None:
                for kept, p in zip(self.params, model.parameters(), strict=True):
                    kept.copy_(p.detach())
        if patience is None or not math.isfinite(self.rmse) or epoch - self.epoch < patience:
            return False
        log.info("early stopping after epoch %d; best epoch %d", epoch, self.epoch)
        return True

    def restore(self, model: EmbeddingModel) -> None:
        """Put the best weights back, when a copy was kept and some epoch validated."""
        if self.params is None or self.epoch == 0:
            return
        with torch.no_grad():
            for kept, p in zip(self.params, model.parameters(), strict=True):
                p.copy_(kept)


def diverged(epoch: int, rmse: float, config: TrainConfig, best: Best) -> None:
    """Warn (early stopping kept good weights) or raise: the loss became non-finite."""
    hint = (f"lower learning_rate={config.learning_rate} or use a schedule such as 'onecycle'")
    message = f"training diverged in epoch {epoch}: the loss became {rmse ** 2} (not finite)"
    if best.params is None or best.epoch == 0:
        raise TrainingError(message, hint=hint)
    warnings.warn(f"{message}; kept the weights of the best epoch ({best.epoch})\n  hint: {hint}",
                  TrainingWarning, stacklevel=4)


def validate(model: EmbeddingModel, held: Columns, scale: tuple[float, float]) -> dict[str, float]:
    """Validation RMSE and MAE of predictions clipped to the scale, as ``predict`` gives."""
    return error_metrics(clipped(model, held, scale), held.rating, "validation")
