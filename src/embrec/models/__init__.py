"""Rating models: one config class per model, listed in the explicit ``MODELS`` registry.

Each config is a frozen dataclass whose ``build(n_users, n_items, scale=, mean=)``
makes the :class:`~embrec.models.base.RatingModel`; ``MODELS[name]`` maps the
registry name (the ``--model`` flag of the CLI) to the config class.
"""

from __future__ import annotations

from typing import Any

from embrec.models.autorec import AutoRecConfig
from embrec.models.base import ModelConfig, RatingModel
from embrec.models.bayesian import BayesianFMConfig
from embrec.models.biased_mf import BiasedMFConfig
from embrec.models.blend import BlendConfig
from embrec.models.defaults import DEFAULT_TRAINING
from embrec.models.ease import EASEConfig
from embrec.models.edlae import EDLAEConfig
from embrec.models.gmf import GMFConfig
from embrec.models.mlp import MLPConfig
from embrec.models.neumf import NeuMFConfig
from embrec.models.popular import PopularConfig

__all__ = [
    "DEFAULT_TRAINING",
    "MODELS",
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
    from embrec.config import require_choice

    require_choice("model", name, MODELS)
    config: ModelConfig = MODELS[name].from_dict(data)
    return config
