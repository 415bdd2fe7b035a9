"""Every model but the blend, by registry name, and each model's default training.

A blend is made of these models (never of another blend), so :mod:`embrec.models.blend`
looks its components up here; :mod:`embrec.models` adds the blend to make ``MODELS``.
``DEFAULT_TRAINING`` lives here, beside the registry, so ``fit`` finds it without
importing the presets (which import ``fit``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from embrec.config import TrainConfig, require, require_choice
from embrec.models.autorec import AutoRecConfig
from embrec.models.base import ModelConfig
from embrec.models.bayesian import BayesianFMConfig
from embrec.models.biased_mf import BiasedMFConfig
from embrec.models.ease import EASEConfig
from embrec.models.edlae import EDLAEConfig
from embrec.models.gmf import GMFConfig
from embrec.models.mlp import MLPConfig
from embrec.models.neumf import NeuMFConfig
from embrec.models.popular import PopularConfig

__all__ = ["COMPONENTS", "DEFAULT_TRAINING", "MINI_BATCH", "PER_RATING",
           "component_configs", "config_from", "default_training"]

COMPONENTS: dict[str, type[Any]] = {
    "biased-mf": BiasedMFConfig,
    "gmf": GMFConfig,
    "mlp": MLPConfig,
    "neumf": NeuMFConfig,
    "popular": PopularConfig,  # closed-form yardsticks: ranking scores, not ratings
    "ease": EASEConfig,
    "bayesian-fm": BayesianFMConfig,  # Gibbs-sampled, posterior-averaged ratings
    "edlae": EDLAEConfig,
    "autorec": AutoRecConfig,  # trained by its own loop (training/autorec.py)
}


def config_from(registry: Mapping[str, type[Any]], name: str,
                data: dict[str, object]) -> ModelConfig:
    """Rebuild the config registered as ``name`` in ``registry`` from its ``to_dict()``.

    Raises:
        ConfigError: for an unknown model name (with the closest match) or bad fields.
    """
    require_choice("model", name, registry)
    return cast(ModelConfig, registry[name].from_dict(data))



SPEC_KEYS = {"model", "config", "train"}
"""The keys of a blend component's JSON spec."""


def component_configs(spec: dict[str, Any]) -> tuple[ModelConfig, Any]:
    """The (model config, train config or ``None``) of one component's JSON spec.

    Raises:
        ConfigError: for an unknown key, model name or field.
    """
    unknown = set(spec) - SPEC_KEYS
    require(not unknown and "model" in spec, "components", spec,
            "must be {'model': name, 'config': {...}, 'train': {...}}")
    require(spec["model"] != "blend", "components", spec["model"], "cannot be a blend")
    model = config_from(COMPONENTS, str(spec["model"]), dict(spec.get("config") or {}))
    train = spec.get("train")
    return model, None if train is None else TrainConfig.from_dict(train)


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
