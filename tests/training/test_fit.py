"""fit(): history, validation, early stopping, NaN handling, schedules, optimisers, threads."""

from __future__ import annotations

import gc
import math
from typing import Any

import numpy as np
import pytest
import torch

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError, TrainingError, TrainingWarning
from embrec.models import BiasedMFConfig, MLPConfig, NeuMFConfig, PopularConfig
from embrec.recommender import Recommender
from embrec.training import optim, watch
from embrec.training.batches import validation_rows
from embrec.training.fit import fit
from embrec.training.optim import Engine, learning_rate
from embrec.training.process import flushes_denormals
from embrec.training.trainers import StepTrainer

MF = BiasedMFConfig(embedding_dim=4, init_std=0.05)
HISTORY_KEYS = {"epoch", "train_rmse", "train_mae", "validation_rmse", "validation_mae",
                "seconds", "lr"}


def test_returns_a_recommender_with_history(tiny: Ratings) -> None:
    rec = fit(MF, tiny, TrainConfig(epochs=3, batch_size=100, validation=0.2, seed=0))
    assert isinstance(rec, Recommender)
    assert [h["epoch"] for h in rec.history] == [1, 2, 3]
    assert set(rec.history[0]) == HISTORY_KEYS
    assert rec.metadata["seed"] == 0 and rec.metadata["fit_seconds"] > 0
    assert rec.metadata["diagnostics"] == []
    assert not rec.model.training


@pytest.mark.parametrize("model", [MF, PopularConfig()])
def test_a_device_this_machine_lacks_is_a_config_error(model: Any, tiny: Ratings) -> None:
    """torch alone stops with a bare AssertionError ("Torch not compiled with CUDA")."""
    with pytest.raises(ConfigError, match=r"device='cuda:99' is not available: .*CUDA"):
        fit(model, tiny, TrainConfig(device="cuda:99", epochs=1, batch_size=64))
    with pytest.raises(ConfigError, match=r"device='cuda:x' is not a device"):
        fit(model, tiny, TrainConfig(device="cuda:x", epochs=1, batch_size=64))


def test_float64_tables_take_the_torch_step_and_say_so(
        tiny: Ratings, caplog: pytest.LogCaptureFixture) -> None:
    """The compiled kernels train float32 only (see KernelTrainer.build)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        rec = fit(MF, tiny, TrainConfig(epochs=1, batch_size=1, seed=0))
    finally:
        torch.set_default_dtype(before)
    assert rec.metadata["step_path"] == "fast" and "float32 kernel" in caplog.text
    assert rec.model.user_embedding.weight.dtype == torch.float64
    assert fit(MF, tiny, TrainConfig(epochs=1, batch_size=1, seed=0)).metadata["step_path"] \
        == "kernel"


def test_training_lowers_the_error(tiny: Ratings) -> None:
    rec = fit(MF, tiny, TrainConfig(epochs=10, batch_size=64, learning_rate=0.02, seed=0))
    assert rec.history[-1]["train_rmse"] < 0.7 * rec.history[0]["train_rmse"]


def test_parameters_get_their_own_storage_back(tiny: Ratings) -> None:
    rec = fit(MF, tiny, TrainConfig(epochs=1, seed=0))
    pointers = {p.data_ptr() for p in rec.model.parameters()}
    assert len(pointers) == len(list(rec.model.parameters()))
    assert all(p.grad is None for p in rec.model.parameters())


def test_no_seed_still_records_the_seed_used(tiny: Ratings) -> None:
    rec = fit(MF, tiny, TrainConfig(epochs=1))
    again = fit(MF, tiny, TrainConfig(epochs=1, seed=rec.metadata["seed"]))
    u, i = tiny.users.id_of(tiny.user[:20]), tiny.items.id_of(tiny.item[:20])
    np.testing.assert_array_equal(rec.predict(u, i), again.predict(u, i))


def test_given_validation_maps_raw_ids_and_counts_unknowns(tiny: Ratings) -> None:
    order = np.random.default_rng(0).permutation(len(tiny))
    train = tiny.take(order[:900])
    held = tiny.take(order[900:])  # its own id indexes, some ids unseen in train
    extra = Ratings.from_arrays(["nobody"], [held.items.ids[0]], [3.0], scale=(1.0, 5.0))
    rec = fit(MF, train, TrainConfig(epochs=2, seed=0), validation=held)
    assert "validation_rmse" in rec.history[-1]
    unknown = int(np.sum(~np.isin(held.users.id_of(held.user), train.users.ids)
                         | ~np.isin(held.items.id_of(held.item), train.items.ids)))
    assert rec.metadata["validation_unknown"] == unknown
    rec = fit(MF, train, TrainConfig(epochs=1, seed=0), validation=extra)
    assert rec.metadata["validation_unknown"] == 1


@pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")  # 9 ratings: may be constant
@pytest.mark.parametrize("mode", ["random", "last"])
def test_a_validation_share_of_no_rating_trains_without_validation(tiny: Ratings,
                                                                    mode: str) -> None:
    # ceil(9 * 0.9) = 9: every rating is fitted; _validate once crashed on the empty set
    nine = tiny.take(np.arange(9))
    rec = fit(BiasedMFConfig(embedding_dim=2, init_std=0.05), nine,
              TrainConfig(epochs=2, seed=0, validation=0.1, validation_mode=mode,
                          early_stopping=1))
    assert len(rec.history) == 2 and "validation_rmse" not in rec.history[-1]


def test_keras_validation_split_takes_the_last_rows(tiny: Ratings) -> None:
    """validation_mode="last": the model never trains on the final 20% of rows."""
    n = len(tiny)
    cut = math.ceil(n * 0.8)
    ratings = tiny.rating.copy()
    ratings[cut:] = 5.0  # the held-out tail differs wildly from the head
    ratings[:cut] = 1.0
    odd = Ratings(tiny.user, tiny.item, ratings, tiny.users, tiny.items, scale=(1.0, 5.0))
    config = TrainConfig(epochs=5, batch_size=64, learning_rate=0.05, validation=0.2,
                         validation_mode="last", seed=0)
    with pytest.warns(TrainingWarning):  # constant predictions, and a 4-star validation error
        rec = fit(MF, odd, config)
    assert rec.history[-1]["train_rmse"] < 0.2
    assert rec.history[-1]["validation_rmse"] > 3.5


def test_early_stopping_restores_the_best_weights(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 3 is made the best (every other epoch's validation errors are raised by 100):
    training stops two epochs later and returns epoch 3's weights, whatever the seed."""
    real, epochs = watch.validate, iter(range(1, 41))

    def validate(*args: Any, **kwargs: Any) -> dict[str, float]:
        record = real(*args, **kwargs)
        return record if next(epochs) == 3 else {k: v + 100 for k, v in record.items()}

    monkeypatch.setattr("embrec.training.fit.validate", validate)
    model = MLPConfig(embedding_dim=32, hidden=(64,), dropout=(0.0, 0.0), init="normal",
                      activation="tanh")
    config = TrainConfig(epochs=40, batch_size=32, learning_rate=0.02, validation=0.3,
                         early_stopping=2, seed=0)
    rec = fit(model, tiny, config)
    scores = [h["validation_rmse"] for h in rec.history]
    assert len(scores) == 5 and int(np.argmin(scores)) == 2
    _, held = validation_rows(len(tiny), 0.3, config.validation_mode,
                              np.random.default_rng(rec.metadata["seed"]))
    assert held is not None
    predictions = rec.predict(tiny.users.id_of(tiny.user[held]), tiny.items.id_of(tiny.item[held]))
    rmse = float(np.sqrt(np.mean((predictions - tiny.rating[held]) ** 2)))
    assert rmse == pytest.approx(scores[2], rel=1e-5)


def test_divergence_without_kept_weights_raises(tiny: Ratings) -> None:
    config = TrainConfig(epochs=5, batch_size=64, learning_rate=1e30, optimizer="sgd", seed=0)
    with pytest.raises(TrainingError, match=r"diverged in epoch 1: .*not finite.*\n.*hint: lower"):
        fit(MF, tiny, config)


def test_divergence_with_early_stopping_keeps_the_best_weights(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Good epochs, then a learning rate that explodes: the best epoch's weights stay."""
    config = TrainConfig(epochs=6, batch_size=64, learning_rate=0.01, validation=0.2,
                         early_stopping=3, seed=0)
    rates = iter([0.01] * 30 + [1e30] * 1000)  # 15 steps an epoch: the third epoch explodes
    monkeypatch.setattr(optim, "learning_rate", lambda *args: next(rates))
    with pytest.warns(TrainingWarning, match="kept the weights of the best epoch"):
        rec = fit(MF, tiny, config)
    assert len(rec.history) == 2
    assert all(torch.isfinite(p).all() for p in rec.model.parameters())
    assert np.isfinite(rec.predict(tiny.users.ids[:5], tiny.items.ids[:5])).all()


def test_a_non_finite_table_row_the_loss_never_saw_fails_the_fit(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables are checked once, after the last epoch: a bad row no prediction used still fails."""
    engine = Engine
    release = engine.release

    def poisoned(self: object) -> None:
        self.modules[0].weight.data[0, 0] = float("inf")  # type: ignore[attr-defined]
        release(self)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "release", poisoned)
    with pytest.raises(TrainingError, match="non-finite weights"):
        fit(MF, tiny, TrainConfig(epochs=1, batch_size=64, seed=0))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "adagrad", "rowwise-adagrad"])
def test_every_optimiser_trains(tiny: Ratings, optimizer: str) -> None:
    lr = {"adam": 0.02, "adamw": 0.02, "sgd": 0.5, "adagrad": 0.1,
          "rowwise-adagrad": 0.3}[optimizer]
    epochs = 30 if optimizer == "sgd" else 8  # plain SGD on embedding rows is slow
    config = TrainConfig(epochs=epochs, batch_size=64, learning_rate=lr, optimizer=optimizer,
                         momentum=0.9 if optimizer == "sgd" else 0.0, weight_decay=1e-3,
                         seed=0)
    rec = fit(MF, tiny, config)
    assert rec.history[-1]["train_rmse"] < 0.6 * rec.history[0]["train_rmse"]


def test_autograd_path_trains(tiny: Ratings) -> None:
    model = NeuMFConfig(embedding_dim=4, mlp_embedding_dim=4, hidden=(8,), activation="tanh")
    rec = fit(model, tiny, TrainConfig(epochs=6, batch_size=64, learning_rate=0.02,
                                       weight_decay=0.01, seed=0))
    assert rec.history[-1]["train_rmse"] < 0.8 * rec.history[0]["train_rmse"]


@pytest.mark.parametrize("schedule", ["constant", "onecycle", "cosine", "step"])
def test_schedules(schedule: str) -> None:
    config = TrainConfig(learning_rate=0.1, schedule=schedule)
    rates = [learning_rate(config, step, 100) for step in range(100)]
    assert max(rates) == pytest.approx(0.1, rel=1e-3)
    if schedule == "constant":
        assert set(rates) == {0.1}
    elif schedule == "onecycle":
        assert rates[0] == pytest.approx(0.004) and np.argmax(rates) == 25 and rates[-1] < 1e-3
    elif schedule == "cosine":
        assert rates[0] == 0.1 and rates[-1] < 1e-3 and np.all(np.diff(rates) <= 0)
    else:
        assert rates[49] == 0.1 and rates[50] == pytest.approx(0.01)
        assert rates[75] == pytest.approx(0.001)


def test_history_records_the_schedule(tiny: Ratings) -> None:
    rec = fit(MF, tiny, TrainConfig(epochs=3, schedule="cosine", learning_rate=0.01, seed=0))
    assert rec.history[0]["lr"] > rec.history[1]["lr"] > rec.history[2]["lr"]


def test_process_state_is_left_as_found(tiny: Ratings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads set once and restored, flush-to-zero restored either way, global RNG untouched."""

    model = MLPConfig(embedding_dim=8, hidden=(6,), dropout=(0.1, 0.1), init="normal")
    calls: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    before = torch.get_num_threads()
    for flushing in (False, True):
        torch.set_flush_denormal(flushing)
        state = torch.get_rng_state()
        try:
            fit(model, tiny, TrainConfig(epochs=2, batch_size=32, seed=0, num_threads=before + 1))
            assert torch.equal(torch.get_rng_state(), state)
            assert flushes_denormals() == flushing
        finally:
            torch.set_flush_denormal(False)
    assert torch.get_num_threads() == before
    assert calls == [before + 1, before] * 2  # set and restored once per fit, never per batch


def test_the_cycle_collector_is_paused_in_the_loop_and_left_as_found(
        tiny: Ratings, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = StepTrainer.epoch
    monkeypatch.setattr(StepTrainer, "epoch", lambda *a: (seen.append(gc.isenabled()),
                                                          real(*a)))
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            fit(MF, tiny, TrainConfig(epochs=1, batch_size=64, seed=0))
            assert gc.isenabled() == enabled
            with pytest.raises(TrainingError):  # restored on the error path too
                fit(MF, tiny, TrainConfig(epochs=1, learning_rate=1e30, optimizer="sgd", seed=0))
            assert gc.isenabled() == enabled
    finally:
        gc.enable()
    assert seen == [False] * 4


def test_seeded_fit_does_not_depend_on_the_global_generator(tiny: Ratings) -> None:
    model = MLPConfig(embedding_dim=8, hidden=(6,), dropout=(0.3, 0.3), init="normal")
    config = TrainConfig(epochs=1, batch_size=32, seed=7)
    torch.manual_seed(1)
    first = fit(model, tiny, config)
    torch.manual_seed(2)
    second = fit(model, tiny, config)
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_progress_bar(tiny: Ratings, capsys: Any, monkeypatch: Any) -> None:
    from embrec.training import progress

    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    fit(MF, tiny, TrainConfig(epochs=2, batch_size=8, progress=True, seed=0))
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "loss=" in err and "train_rmse=" in err
    monkeypatch.setattr(progress, "on_terminal", lambda: False)  # a log: one line an epoch
    fit(MF, tiny, TrainConfig(epochs=2, batch_size=8, progress=True, seed=0))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2: ") and "train_rmse=" in lines[1]


def test_metadata_is_kept(tiny: Ratings) -> None:
    rec = fit(MF, tiny, TrainConfig(epochs=1, seed=0), metadata={"split": {"seed": 3}})
    assert rec.metadata["split"] == {"seed": 3} and rec.metadata["device"] == "cpu"
