"""Each registered model's default training: what ``fit`` uses when given no ``TrainConfig``.

It sits beside the ``MODELS`` registry, so ``fit`` finds a model's defaults without
importing the presets (which import ``fit``); :mod:`embrec.presets` re-uses it.
"""

from __future__ import annotations

import dataclasses

from embrec.config import TrainConfig
from embrec.models.base import ModelConfig

__all__ = ["DEFAULT_TRAINING", "PER_RATING", "default_training"]

PER_RATING = TrainConfig(epochs=10, batch_size=1, learning_rate=0.002, weight_decay=0.02,
                         schedule="onecycle")
"""Biased MF trained per rating by the compiled kernel: the ``default`` preset's training,
chosen on validation rows (``benchmarks/results/default.md``)."""

MINI_BATCH = TrainConfig(epochs=20, batch_size=2048, learning_rate=0.005, weight_decay=0.08,
                         schedule="onecycle")
"""Lazy Adam over mini-batches with a one-cycle schedule: the neural models' training (no kernel
trains them; at batch 1 a torch step per rating would be slow)."""

DEFAULT_TRAINING: dict[str, TrainConfig] = {
    "biased-mf": PER_RATING,
    # per-use L2 chosen on validation rows of ML-100K's training part
    # (benchmarks/results/neural.md): GMF's learned output weight can scale its factors back
    # up, so it needs more
    "gmf": dataclasses.replace(MINI_BATCH, weight_decay=0.2),
    "mlp": dataclasses.replace(MINI_BATCH, weight_decay=0.12),
    "neumf": dataclasses.replace(MINI_BATCH, weight_decay=0.12),
}
"""Each model's default training: what ``fit(XConfig(), train)`` and ``embrec train --model x``
use when no training settings are given (``TrainConfig()`` for a model not listed)."""


def default_training(model_config: ModelConfig) -> TrainConfig:
    """Return ``DEFAULT_TRAINING[model_config.name]``, or ``TrainConfig()`` for a model
    without an entry."""
    return DEFAULT_TRAINING.get(str(model_config.name), TrainConfig())
