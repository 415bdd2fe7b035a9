"""Presets reproduce the notebooks layer for layer; fit_preset checks its overrides."""

from __future__ import annotations

import math

import pytest
import torch

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models import BiasedMFConfig, GMFConfig, MLPConfig
from embrec.presets import PRESETS, fit_preset


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_movielens_notebook_matches_the_keras_summary() -> None:
    """The notebook's summary: 671 users and 9,066 movies with 50 factors."""
    preset = PRESETS["movielens-notebook"]
    model = preset.model.build(671, 9066, scale=(0.5, 5.0), mean=3.5)
    assert count(model.user_embedding) == 33_550
    assert count(model.item_embedding) == 453_300
    first, last = model.tower.layer(0), model.tower.layer(1)
    assert (first.in_features, first.out_features, last.in_features, last.out_features) == (
        100, 70, 70, 1)
    assert count(first) == 7_070 and count(last) == 71
    assert count(model) == 493_991  # keras.Model.count_params() of the notebook's network
    assert model.tower.dropout == (0.3, 0.75) and model.tower.activation == "relu"
    assert model.bounds is None
    assert preset.test_size == 0.2


def test_goodreads_notebook_matches_keras_parameter_count() -> None:
    """Embedding(99) x 2, Dense(1, relu), Dense(1): Keras counts 259,977 on ML-100K's 943 x 1682."""
    preset = PRESETS["goodreads-notebook"]
    model = preset.model.build(943, 1682, scale=(1.0, 5.0), mean=3.5)
    assert count(model) == 943 * 99 + 1682 * 99 + (99 + 1) + (1 + 1) == 259_977
    assert model.tower.dropout == (0.2, 0.0) and model.tower.activation == "relu"
    assert [model.tower.layer(k).out_features for k in range(2)] == [1, 1]
    assert model.bounds is None
    assert preset.test_size == 0.1


@pytest.mark.parametrize(("name", "batch", "epochs", "validation"),
                         [("movielens-notebook", 64, 2, 0.0), ("goodreads-notebook", 32, 10, 0.2)])
def test_notebook_training_settings_are_keras_defaults(name: str, batch: int, epochs: int,
                                                       validation: float) -> None:
    train = PRESETS[name].train
    assert (train.optimizer, train.learning_rate, train.adam_epsilon) == ("adam", 1e-3, 1e-7)
    assert (train.batch_size, train.epochs, train.validation) == (batch, epochs, validation)
    assert train.schedule == "constant" and train.weight_decay == 0.0
    if validation:
        assert train.validation_mode == "last"


def test_keras_initialisers() -> None:
    torch.manual_seed(0)
    model = PRESETS["movielens-notebook"].model.build(671, 9066, scale=(0.5, 5.0), mean=3.5)
    table = model.item_embedding.weight.detach()
    assert float(table.abs().max()) <= 0.05 and float(table.min()) < -0.049
    assert abs(float(table.mean())) < 1e-3
    assert float(table.std()) == pytest.approx(0.1 / math.sqrt(12), rel=0.02)  # uniform ±0.05
    for k, (fan_in, fan_out) in enumerate([(100, 70), (70, 1)]):
        layer = model.tower.layer(k).requires_grad_(False)
        limit = math.sqrt(6 / (fan_in + fan_out))  # Glorot-uniform
        assert float(layer.weight.abs().max()) <= limit
        assert float(layer.weight.abs().max()) > 0.8 * limit
        assert torch.count_nonzero(layer.bias) == 0


def test_default_preset_is_biased_mf() -> None:
    preset = PRESETS["default"]
    assert isinstance(preset.model, BiasedMFConfig)
    assert preset.test_size == 0.1


def test_fit_preset_applies_overrides(tiny: Ratings) -> None:
    rec = fit_preset("movielens-notebook", tiny, epochs=1, embedding_dim=8, seed=3,
                     init="normal")
    assert isinstance(rec.model_config, MLPConfig) and rec.model_config.embedding_dim == 8
    assert rec.train_config.epochs == 1 and rec.train_config.batch_size == 64
    assert rec.metadata["preset"] == "movielens-notebook" and len(rec.history) == 1


def test_fit_preset_default_runs(tiny: Ratings) -> None:
    rec = fit_preset("default", tiny, batch_size=128, seed=0)
    assert isinstance(rec.train_config, TrainConfig) and rec.history


def test_goodreads_preset_keeps_its_validation(tiny: Ratings) -> None:
    rec = fit_preset("goodreads-notebook", tiny, epochs=2, embedding_dim=8, hidden=(4,),
                     activation="tanh", init="normal", learning_rate=0.01, seed=0)
    assert isinstance(rec.model_config, GMFConfig)
    assert "validation_rmse" in rec.history[-1]


def test_unknown_override_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        fit_preset("default", None, epoch=3)  # type: ignore[arg-type]


def test_unknown_preset_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'default'"):
        fit_preset("defualt", None)  # type: ignore[arg-type]


def test_fit_finds_default_training_without_the_presets() -> None:
    """DEFAULT_TRAINING sits beside MODELS: fit imports no preset (presets import fit)."""
    import subprocess
    import sys

    code = ("import sys, embrec.training.fit, embrec.models\n"
            "assert 'embrec.presets' not in sys.modules, 'fit imported the presets'\n"
            "from embrec.presets import DEFAULT_TRAINING, PRESETS\n"
            "assert DEFAULT_TRAINING is embrec.models.DEFAULT_TRAINING\n"
            "assert PRESETS['default'].train is DEFAULT_TRAINING['biased-mf']\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
