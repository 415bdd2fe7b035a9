"""TrainConfig validation and the JSON round trip shared by every config."""

from __future__ import annotations

import dataclasses
import json

import pytest

from embrec.config import TrainConfig
from embrec.errors import ConfigError


def test_round_trip_through_json() -> None:
    config = TrainConfig(epochs=3, batch_size=64, adam_epsilon=1e-7, seed=5)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("epochs", 0, "epochs=0 must be at least 1"), ("batch_size", -1, "batch_size=-1"),
     ("learning_rate", 0.0, "must be > 0"),
    ("learning_rate", float("inf"), "must be finite"),
    ("validation", 1.0, r"must be in \[0, 1\)"),
     ("device", "tpu", "must be 'auto'"), ("early_stopping", 0, "must be None or at least 1")],
)
def test_invalid_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_replace_revalidates() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        dataclasses.replace(TrainConfig(), epochs=0)


def test_unknown_choice_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        TrainConfig(optimizer="adma")


def test_from_dict_rejects_unknown_key_with_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        TrainConfig.from_dict({"batchsize": 3})
