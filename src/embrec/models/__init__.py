"""Rating models: one config class per model, listed in the explicit ``MODELS`` registry.

Each config is a frozen dataclass whose ``build(n_users, n_items, scale=, mean=)``
makes the :class:`~embrec.models.base.RatingModel`; ``MODELS[name]`` maps the
registry name (the ``--model`` flag of the CLI) to the config class, and
``DEFAULT_TRAINING[name]`` to what ``fit`` trains it with when given no ``TrainConfig``
(here, so ``fit`` finds it without importing the presets, which import ``fit``).
"""

from __future__ import annotations

from typing import Any

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
from embrec.models.registry import (
    COMPONENTS,
    DEFAULT_TRAINING,
    PER_RATING,
    config_from,
    default_training,
)

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
    **COMPONENTS,
    "blend": BlendConfig,  # fitted components and validation-chosen weights (blending.py)
}


def model_config_from_dict(name: str, data: dict[str, object]) -> ModelConfig:
    """Rebuild a registered model config from its registry name (a key of ``MODELS``) and
    ``to_dict()``.

    Raises:
        ConfigError: for an unknown model name (with the closest match) or bad fields.
    """
    return config_from(MODELS, name, data)
