"""The fused MLP step under Keras' dense Adam: taken where it applies, equal to the general loop."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import TrainingError
from embrec.models import MLPConfig
from embrec.presets import PRESETS
from embrec.training import progress
from embrec.training.checkpoint import RunState
from embrec.training.fit import fit
from embrec.training.fused import FusedKerasMLP
from embrec.training.process import flushes_denormals

KERAS = PRESETS["movielens-notebook"].train
NOTEBOOK = PRESETS["movielens-notebook"].model

# small networks at a high rate lose ReLU units; the diagnostics are not what is tested here
pytestmark = pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")


def _config(**changes: Any) -> TrainConfig:
    """The notebook preset's training at test size: Keras' Adam with dense table updates."""
    return TrainConfig(**{**KERAS.to_dict(), "epochs": 2, "batch_size": 32, "seed": 3,
                          "learning_rate": 0.01, **changes})


def _model(**changes: Any) -> MLPConfig:
    return MLPConfig(**{**NOTEBOOK.to_dict(), "embedding_dim": 6, "hidden": (5,), **changes})


def _both(model: MLPConfig, data: Ratings, config: TrainConfig,
          monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, list[int]]:
    """Fit with the fused path, then with the general loop; count the fused epochs run."""
    epochs: list[int] = []
    real = FusedKerasMLP.epoch
    monkeypatch.setattr(FusedKerasMLP, "epoch",
                        lambda self, *a: (epochs.append(1), real(self, *a))[1])
    fused = fit(model, data, config)
    monkeypatch.setattr(FusedKerasMLP, "ENABLED", False)
    general = fit(model, data, config)
    return fused, general, epochs


def _assert_same(a: Any, b: Any) -> None:
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(value, b.model.state_dict()[key], rtol=0, atol=0,
                                   msg=key)
    for x, y in zip(a.history, b.history, strict=True):
        assert x["train_rmse"] == y["train_rmse"]


@pytest.mark.parametrize(("model", "config"), [
    (_model(), _config()),  # the notebook's shape: relu, dropout before both layers
    (_model(activation="tanh", hidden=(7, 4), dropout=(0.0, 0.5, 0.2)), _config()),
    (_model(activation="linear", dropout=(0.1, 0.0)), _config(schedule="onecycle")),
    (_model(), _config(weight_decay=0.05, dense_weight_decay=0.01, batch_size=50)),
    (_model(hidden=(9, 6, 3), dropout=(0.3, 0.2, 0.0, 0.4)),
     _config(batch_size=7, schedule="cosine")),
    (_model(hidden=(), dropout=(0.3,)), _config(batch_size=5000, weight_decay=0.05)),  # 1 batch
    (_model(dropout=(0.0, 0.0)), _config(schedule="step", validation=0.1, early_stopping=1)),
])
def test_the_fused_step_trains_the_same_weights_as_the_general_loop(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch, model: MLPConfig,
        config: TrainConfig) -> None:
    fused, general, epochs = _both(model, tiny, config, monkeypatch)
    assert len(epochs) == config.epochs  # the fused path ran every epoch
    _assert_same(fused, general)
    assert fused.metadata["step_path"] == general.metadata["step_path"] == "fast"


def test_three_ratings_one_at_a_time_train_the_same_weights(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch) -> None:
    fused, general, epochs = _both(_model(), tiny.take(np.arange(3)), _config(batch_size=1),
                                   monkeypatch)
    assert len(epochs) == 2
    _assert_same(fused, general)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_fused_step_trains_the_weights_autograd_trains(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch, activation: str) -> None:
    model, config = _model(activation=activation, hidden=(7, 4), dropout=(0.3, 0.2, 0.5)), \
        _config(epochs=1, weight_decay=0.01)
    fused, _, epochs = _both(model, tiny, config, monkeypatch)
    reference = fit(model, tiny, TrainConfig(**{**config.to_dict(), "step_path": "autograd"}))
    assert len(epochs) == 1 and reference.metadata["step_path"] == "autograd"
    for key, value in fused.model.state_dict().items():  # 38 steps of float rounding apart
        torch.testing.assert_close(value, reference.model.state_dict()[key], rtol=1e-4,
                                   atol=1e-5, msg=key)


@pytest.mark.parametrize(("model", "config"), [
    (_model(biases=True), _config()),
    (_model(bounded=True), _config()),
    (_model(), _config(embedding_updates="sparse")),
    (_model(), _config(step_path="autograd")),
])
def test_the_general_loop_runs_where_the_fused_step_does_not_apply(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch, model: MLPConfig,
        config: TrainConfig) -> None:
    _, _, epochs = _both(model, tiny, config, monkeypatch)
    assert epochs == []


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize(("fused", "resumed_fused"),
                         [(True, True), (False, False), (True, False), (False, True)])
def test_a_keras_dense_run_killed_mid_epoch_resumes_to_the_same_weights(
        tiny: Ratings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fused: bool,
        resumed_fused: bool) -> None:
    """Either path resumes either path's checkpoint (they hold the same state)."""
    monkeypatch.setattr(FusedKerasMLP, "ENABLED", fused)
    config = _config(epochs=3, checkpoint_every=7)
    whole = fit(_model(), tiny, config)
    real, calls = RunState.after_step, [0]

    def crashing(self: RunState, k: int, steps: int) -> None:
        real(self, k, steps)
        calls[0] += 1
        if calls[0] == 45:  # mid-epoch 2 (38 steps an epoch), 3 steps after a checkpoint
            raise Crash

    monkeypatch.setattr(RunState, "after_step", crashing)
    with pytest.raises(Crash):
        fit(_model(), tiny, config, checkpoint_dir=tmp_path)
    monkeypatch.setattr(RunState, "after_step", real)
    monkeypatch.setattr(FusedKerasMLP, "ENABLED", resumed_fused)
    resumed = fit(_model(), tiny, config, checkpoint_dir=tmp_path, resume=True)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [h["train_rmse"] for h in resumed.history] == [h["train_rmse"] for h in whole.history]


def test_the_fused_path_reports_progress(tiny: Ratings, capsys: Any, monkeypatch: Any) -> None:
    from embrec.training import progress

    monkeypatch.setattr(progress, "on_terminal", lambda: True)  # a bar, with its running loss
    fit(_model(), tiny, _config(epochs=1, batch_size=8, progress=True))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err


def test_the_fused_path_reports_the_rows_and_losses_the_general_loop_does(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch) -> None:
    reports: list[tuple[int, int, float]] = []
    real = progress.report

    def report(bar: Any, predictions: torch.Tensor, rating: torch.Tensor, stop: int,
               size: int) -> None:
        real(bar, predictions, rating, stop, size)
        reports.append((stop, size, float(predictions[:stop].sum())))

    for module in ("fused", "trainers"):  # each path's own reference to it
        monkeypatch.setattr(f"embrec.training.{module}.report", report)
    config = _config(epochs=2, batch_size=7, progress=True)
    _both(_model(), tiny, config, monkeypatch)
    half = len(reports) // 2
    assert half == 2 * (-(-len(tiny) // 7) // 50) and reports[:half] == reports[half:]


def test_a_float64_model_takes_the_general_loop(tiny: Ratings,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Under float64 the fused step's in-place write into the float32 predictions crashed."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        fused, general, epochs = _both(_model(), tiny, _config(epochs=1), monkeypatch)
    finally:
        torch.set_default_dtype(before)
    assert epochs == [] and fused.model.tower.layer(0).weight.dtype == torch.float64
    _assert_same(fused, general)


def test_the_fused_path_runs_in_fits_process_state_and_leaves_it_as_found(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread, flush-to-zero, collector paused inside; all restored, global RNGs untouched."""
    flushes = flushes_denormals
    seen: list[tuple[bool, int, bool]] = []
    real = FusedKerasMLP.epoch
    monkeypatch.setattr(FusedKerasMLP, "epoch", lambda self, *a: (
        seen.append((gc.isenabled(), torch.get_num_threads(), flushes())), real(self, *a))[1])
    threads, torch_rng, numpy_rng = torch.get_num_threads(), torch.get_rng_state(), \
        np.random.get_state()[1].copy()
    try:
        torch.set_flush_denormal(False)
        fit(_model(), tiny, _config(epochs=1, num_threads=threads + 1))
        with pytest.raises(TrainingError):  # restored on the error path too
            fit(_model(), tiny, _config(epochs=1, learning_rate=1e30))
        assert (gc.isenabled(), torch.get_num_threads(), flushes()) == (True, threads, False)
    finally:
        gc.enable()
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)
    assert seen == [(False, threads + 1, True), (False, 1, True)]
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert np.array_equal(np.random.get_state()[1], numpy_rng)
