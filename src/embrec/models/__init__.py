"""Rating models: one config class per model, listed in the explicit ``MODELS`` registry.

Each config is a frozen dataclass whose ``build(n_users, n_items, scale=, mean=)``
makes the :class:`~embrec.models.base.RatingModel`; ``MODELS[name]`` maps the
registry name (the ``--model`` flag of the CLI) to the config class, and
``DEFAULT_TRAINING[name]`` to what ``fit`` trains it with when given no ``TrainConfig``
(here, so ``fit`` finds it without importing the presets, which import ``fit``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from embrec.config import TrainConfig, require_choice
from embrec.models.autorec import AutoRecConfig
from embrec.models.base import ModelConfig, RatingModel
from embrec.models.bayesian import BayesianFMConfig
from embrec.models.biased_mf import BiasedMFConfig
from embrec.models.blend import BlendConfig
from embrec.models.ease import EASEConfig
from embrec.models.edlae import EDLAEConfig
from embrec.models.gmf import GMFConfig
from embrec.models.mlp import MLPConfig
from embrec.models.neumf import NeuMFConfig
from embrec.models.popular import PopularConfig

__all__ = [
    "DEFAULT_TRAINING",
    "MODELS",
    "PER_RATING",
    "AutoRecConfig",
    "BayesianFMConfig",
    "BiasedMFConfig",
    "BlendConfig",
    "EASEConfig",
    "EDLAEConfig",
    "GMFConfig",
    "MLPConfig",
    "ModelConfig",
    "NeuMFConfig",
    "PopularConfig",
    "RatingModel",
    "default_training",
    "model_config_from_dict",
]

MODELS: dict[str, type[Any]] = {
    "biased-mf": BiasedMFConfig,
    "gmf": GMFConfig,
    "mlp": MLPConfig,
    "neumf": NeuMFConfig,
    "popular": PopularConfig,  # closed-form yardsticks: ranking scores, not ratings
    "ease": EASEConfig,
    "bayesian-fm": BayesianFMConfig,  # Gibbs-sampled, posterior-averaged ratings
    "edlae": EDLAEConfig,
    "autorec": AutoRecConfig,  # trained by its own loop (training/autorec.py)
    "blend": BlendConfig,  # fitted components and validation-chosen weights (blending.py)
}


def model_config_from_dict(name: str, data: dict[str, object]) -> ModelConfig:
    """Rebuild a registered model config from its registry name (a key of ``MODELS``) and
    ``to_dict()``.

    Raises:
        ConfigError: for an unknown model name (with the closest match) or bad fields.
    """
    require_choice("model", name, MODELS)
    return cast(ModelConfig, MODELS[name].from_dict(data))


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
