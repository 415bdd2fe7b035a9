"""Diagnostics: each check is triggered on purpose, and quiet on a healthy model."""

from __future__ import annotations

import pytest
import torch

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.data.synthetic import generate
from embrec.errors import TrainingWarning
from embrec.models import BiasedMFConfig, GMFConfig, MLPConfig
from embrec.training.batches import columns
from embrec.training.diagnostics import OVERFIT_RATIO, diagnose, error_metrics
from embrec.training.fit import fit


def kinds(findings: list[dict[str, object]]) -> list[object]:
    return [finding["kind"] for finding in findings]


def test_dead_relu_unit_is_reported(tiny: Ratings, dead_gmf_unit: None) -> None:
    """The Goodreads network's one-unit ReLU, dead: reported, and the model is a constant."""
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=0.05, seed=1)
    with pytest.warns(TrainingWarning) as caught:
        rec = fit(GMFConfig(embedding_dim=8, hidden=(1,), dropout=0.2, init="keras",
                            biases=False), tiny, config)
    assert kinds(rec.metadata["diagnostics"]) == ["dead_units", "constant_predictions"]
    messages = [str(w.message) for w in caught]
    assert any("1 of 1 ReLU units of tower layer 0 are never active" in m for m in messages)
    assert any("predicts (almost) one constant" in m for m in messages)


def test_bias_terms_keep_a_dead_unit_from_making_the_model_constant(
        tiny: Ratings, dead_gmf_unit: None) -> None:
    """The same network with user and item biases still tells pairs apart."""
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=0.05, seed=1)
    with pytest.warns(TrainingWarning):
        rec = fit(GMFConfig(embedding_dim=8, hidden=(1,), dropout=0.2, init="keras",
                            biases=True), tiny, config)
    assert kinds(rec.metadata["diagnostics"]) == ["dead_units"]


def test_dead_units_found_directly(tiny: Ratings) -> None:
    model = MLPConfig(embedding_dim=4, hidden=(6,), dropout=(0.0, 0.0)).build(
        tiny.n_users, tiny.n_items)
    with torch.no_grad():
        model.tower.layer(0).bias[:2] = -100.0  # two units can never fire
    data = columns(tiny, None, torch.device("cpu"))
    with pytest.warns(TrainingWarning) as caught:  # untrained, so constant too
        findings = diagnose(model, data, None, [{"epoch": 1.0}], tiny.scale)
    assert "2 of 6 ReLU units of tower layer 0" in str(caught[0].message)
    dead = findings[0]
    assert dead["kind"] == "dead_units" and dead["dead"] == 2 and dead["units"] == 6


def test_constant_predictions_are_reported(tiny: Ratings) -> None:
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=0.005, optimizer="sgd",
                         weight_decay=1000.0, bias_weight_decay=1000.0, seed=0)
    with pytest.warns(TrainingWarning, match="one constant"):
        rec = fit(BiasedMFConfig(embedding_dim=4), tiny, config)
    assert kinds(rec.metadata["diagnostics"]) == ["constant_predictions"]


def test_one_pair_is_never_called_constant(tiny: Ratings) -> None:
    """A rank's one-row shard (or a one-rating set) cannot show that a model is constant."""
    model = BiasedMFConfig(embedding_dim=4).build(tiny.n_users, tiny.n_items, scale=tiny.scale,
                                                  mean=3.0)
    data = columns(tiny, None, torch.device("cpu"))
    history = [{"epoch": 1.0, "train_rmse": 1.0}]
    one = type(data)(data.user[:1], data.item[:1], data.rating[:1])
    assert diagnose(model, one, None, history, tiny.scale) == []
    two = type(data)(data.user[:2], data.item[:2], data.rating[:2])
    with torch.no_grad():  # all rows equal: two pairs with one prediction are a constant
        model.user_embedding.weight.zero_()
        model.item_embedding.weight.zero_()
    with pytest.warns(TrainingWarning, match="one constant"):
        assert kinds(diagnose(model, two, None, history, tiny.scale)) == ["constant_predictions"]


def test_overfitting_is_reported(tiny: Ratings) -> None:
    config = TrainConfig(epochs=30, batch_size=32, learning_rate=0.02, validation=0.3, seed=0)
    with pytest.warns(TrainingWarning, match=r"over-fitting: validation RMSE .* is .*x the train"):
        rec = fit(BiasedMFConfig(embedding_dim=64, init_std=0.5), tiny, config)
    finding = rec.metadata["diagnostics"][0]
    assert finding["kind"] == "overfitting" and finding["ratio"] > OVERFIT_RATIO


def test_healthy_model_has_no_findings() -> None:
    ratings = generate(n_users=200, n_items=100, n_ratings=8000, rank=3, noise=0.8, seed=3).ratings
    config = TrainConfig(epochs=10, batch_size=256, learning_rate=0.02, weight_decay=0.05,
                         validation=0.2, schedule="onecycle", seed=0)
    rec = fit(BiasedMFConfig(embedding_dim=4), ratings, config)
    assert rec.metadata["diagnostics"] == []


def test_error_metrics() -> None:
    result = error_metrics(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 2.0]), "x")
    assert result["x_rmse"] == pytest.approx((5 / 3) ** 0.5)
    assert result["x_mae"] == pytest.approx(1.0)
