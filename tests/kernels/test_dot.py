"""The compiled kernels against the autograd reference at batch size 1, and their threads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from embrec.config import TrainConfig
from embrec.data.split import split
from embrec.data.synthetic import generate
from embrec.errors import ConfigError
from embrec.evaluation.evaluate import evaluate
from embrec.models import MODELS, BiasedMFConfig
from embrec.training import trainers
from embrec.training.checkpoint import RunState
from embrec.training.fit import fit
from embrec.training.optim import Schedule, learning_rate

KERNEL_MODELS = [name for name, config in MODELS.items()
                 if hasattr(config, "build") and not getattr(config, "closed_form", False)
                 and hasattr(config().build(3, 3), "rating_kernel")]


@pytest.fixture(scope="module")
def few() -> Any:
    """300 ratings: a batch-1 autograd epoch over them takes a fraction of a second."""
    return generate(n_users=30, n_items=20, n_ratings=300, rank=3, seed=5).ratings


def trained(name: str, data: Any, path: str, model: dict[str, Any], **train: Any) -> Any:
    config = TrainConfig(batch_size=1, epochs=2, seed=3, num_threads=1, step_path=path, **train)
    return fit(MODELS[name](embedding_dim=4, **model), data, config)


def test_biased_mf_offers_a_kernel() -> None:
    assert "biased-mf" in KERNEL_MODELS


@pytest.mark.parametrize("name", KERNEL_MODELS)
@pytest.mark.parametrize(("optimizer", "schedule", "extra"), [
    ("adam", "onecycle", {"weight_decay": 0.05, "bias_weight_decay": 0.02}),
    ("adam", "constant", {"adam_epsilon": 1e-3}),
    ("sgd", "cosine", {"weight_decay": 0.1, "momentum": 0.5}),
    ("sgd", "step", {}),
    ("adagrad", "onecycle", {"weight_decay": 0.02}),
    ("rowwise-adagrad", "constant", {"bias_weight_decay": 0.1}),
])
@pytest.mark.parametrize("bounded", [False, True])
def test_kernel_equals_autograd_at_batch_size_1(name: str, optimizer: str, schedule: str,
                                                extra: dict[str, Any], bounded: bool,
                                                few: Any) -> None:
    lr = 0.05 if optimizer in ("sgd", "adagrad", "rowwise-adagrad") else 0.01
    runs = [trained(name, few, path, {"bounded": bounded}, optimizer=optimizer, learning_rate=lr,
                    schedule=schedule, **extra) for path in ("auto", "autograd")]
    assert [r.metadata["step_path"] for r in runs] == ["kernel", "autograd"]
    kernel, reference = (r.model.state_dict() for r in runs)
    for key, value in reference.items():
        torch.testing.assert_close(kernel[key], value, rtol=1e-4, atol=2e-5)
    for a, b in zip(runs[0].history, runs[1].history, strict=True):
        assert a["train_rmse"] == pytest.approx(b["train_rmse"], rel=1e-5)
    assert runs[0].history[-1]["train_rmse"] < runs[0].history[0]["train_rmse"] + 0.5


def test_kernel_is_reproducible_on_one_thread(few: Any) -> None:
    runs = [trained("biased-mf", few, "auto", {}, learning_rate=0.01) for _ in range(2)]
    for key, value in runs[0].model.state_dict().items():
        assert torch.equal(value, runs[1].model.state_dict()[key])


def test_larger_batches_take_the_torch_step(few: Any) -> None:
    config = TrainConfig(batch_size=2, epochs=1, seed=0)
    assert fit(BiasedMFConfig(embedding_dim=4), few, config).metadata["step_path"] == "fast"


def test_threads_reach_the_one_thread_rmse() -> None:
    data = generate(n_users=2000, n_items=500, n_ratings=120_000, rank=4, seed=1)
    train, test = split(data.ratings, test_size=0.1, seed=0)
    rmse = {}
    for threads in (1, 2, 4):
        config = TrainConfig(batch_size=1, epochs=4, seed=0, learning_rate=0.005,
                             weight_decay=0.02, num_threads=threads)
        rec = fit(BiasedMFConfig(embedding_dim=8), train, config)
        assert rec.metadata["step_path"] == "kernel"
        rmse[threads] = evaluate(rec, test)["rmse"]
    assert abs(rmse[2] - rmse[1]) < 0.003 and abs(rmse[4] - rmse[1]) < 0.003, rmse


@pytest.mark.parametrize("schedule", ["constant", "onecycle", "cosine", "step"])
def test_vectorised_rates_equal_the_schedule(schedule: str) -> None:
    config = TrainConfig(epochs=3, batch_size=1, learning_rate=0.02, schedule=schedule)
    plan = Schedule(config, 40)
    rates = plan.rates(0, 120)
    expected = [learning_rate(config, k, 120) for k in range(120)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    plan.advance(37)
    assert plan.done == 37 and plan.last == pytest.approx(expected[36])


class Crash(RuntimeError):
    pass


@pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")  # over-fitting, some seeds
@pytest.mark.parametrize("blocks", [1, 3])  # the epoch's order, and LIBMF's grid of it
@pytest.mark.parametrize("at", [3, 11])  # mid-epoch, and just after an epoch's end
def test_a_resumed_kernel_run_equals_the_uninterrupted_run(few: Any, tmp_path: Any,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           at: int, blocks: int) -> None:
    monkeypatch.setattr(trainers, "grid_size", lambda *args: blocks)
    config = TrainConfig(batch_size=1, epochs=3, seed=2, num_threads=1, learning_rate=0.01,
                         validation=0.1, checkpoint_every=100, schedule="onecycle")
    model = BiasedMFConfig(embedding_dim=4)
    whole = fit(model, few, config)
    real, calls = RunState.after_step, [0]

    def crashing(self: RunState, k: int, steps: int) -> None:
        real(self, k, steps)
        calls[0] += 1
        if calls[0] == at:
            raise Crash

    monkeypatch.setattr(RunState, "after_step", crashing)
    with pytest.raises(Crash):
        fit(model, few, config, checkpoint_dir=tmp_path)
    monkeypatch.setattr(RunState, "after_step", real)
    resumed = fit(model, few, config, checkpoint_dir=tmp_path, resume=True)
    assert resumed.metadata["step_path"] == "kernel"
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [h["train_rmse"] for h in resumed.history] == [h["train_rmse"] for h in whole.history]


def test_auto_trains_per_rating_on_the_cpu_kernel_even_with_a_gpu(
        few: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    config = TrainConfig(batch_size=1, epochs=1, seed=0, num_threads=1)
    rec = fit(BiasedMFConfig(embedding_dim=4), few, config)
    assert rec.metadata["device"] == "cpu" and rec.metadata["step_path"] == "kernel"


def test_per_rating_training_under_torchrun_is_refused_before_training(
        few: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    class Rank:  # what join() returns on a rank of a torchrun job
        device = torch.device("cpu")

        def leave(self) -> None:
            pass

    monkeypatch.setattr("embrec.training.fit.join", lambda device: Rank())
    with pytest.raises(ConfigError, match="batch-size 2048"):
        fit(BiasedMFConfig(embedding_dim=4), few, TrainConfig(batch_size=1, epochs=1, seed=0))
