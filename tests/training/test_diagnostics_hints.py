"""Diagnostic hints fit the model at hand: no ReLU or dropout advice for biased MF."""

from __future__ import annotations

import pytest

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import TrainingWarning
from embrec.models import BiasedMFConfig, GMFConfig
from embrec.training.fit import fit


def _messages(caught: pytest.WarningsRecorder) -> str:
    return "\n".join(str(w.message) for w in caught)


def test_biased_mf_hints_mention_no_relu_and_no_dropout(tiny: Ratings) -> None:
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=0.005, optimizer="sgd",
                         weight_decay=1000.0, bias_weight_decay=1000.0, seed=0)
    with pytest.warns(TrainingWarning, match="one constant") as caught:
        fit(BiasedMFConfig(embedding_dim=4), tiny, config)
    text = _messages(caught)
    assert "hint: too much regularisation" in text and "ReLU" not in text
    config = TrainConfig(epochs=30, batch_size=32, learning_rate=0.02, validation=0.3, seed=0)
    with pytest.warns(TrainingWarning, match="over-fitting") as caught:
        fit(BiasedMFConfig(embedding_dim=64, init_std=0.5), tiny, config)
    assert "raise weight_decay, or stop earlier" in _messages(caught)


def test_a_relu_tower_keeps_its_dead_unit_hint(tiny: Ratings, dead_gmf_unit: None) -> None:
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=0.05, seed=1)
    with pytest.warns(TrainingWarning) as caught:
        fit(GMFConfig(embedding_dim=8, hidden=(1,), dropout=0.2, init="keras", biases=False),
            tiny, config)
    assert "hint: a dead ReLU unit or too much regularisation" in _messages(caught)
