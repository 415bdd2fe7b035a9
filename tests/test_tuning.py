"""embrec.tune and `embrec tune`: validation rows from the training side only, resumable
SQLite studies shared by processes, and a TOML file that `embrec train --config` accepts."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("optuna", reason="needs optuna (pip install 'embrec[tune]')")

import embrec
from embrec.cli import main
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models import BiasedMFConfig
from embrec.tuning import starting_point
from tests.synthetic_files import synthetic_csv

SRC = str(Path(embrec.__file__).parent.parent)


def _pairs(ratings: Ratings) -> set[tuple[int, int]]:
    frame = ratings.to_pandas()
    return set(zip(frame["user"].tolist(), frame["item"].tolist(), strict=True))


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_csv(tmp_path_factory.mktemp("tune"), n_users=60, n_items=40,
                         n_ratings=1000, rank=3, noise=0.2, seed=4)


def test_trials_fit_and_score_inside_the_training_ratings(tiny: Ratings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fit_module = importlib.import_module("embrec.training.fit")
    train, test = embrec.split(tiny, test_size=0.2, seed=0)
    seen: list[set[tuple[int, int]]] = []
    real_fit = fit_module.fit

    def spy(model, rows, config, *, validation=None, metadata=None):  # type: ignore[no-untyped-def]
        seen.append(_pairs(rows) | _pairs(validation))
        assert not _pairs(rows) & _pairs(validation)
        return real_fit(model, rows, config, validation=validation, metadata=metadata)

    monkeypatch.setattr(fit_module, "fit", spy)
    result = embrec.tune(train, BiasedMFConfig(embedding_dim=4), trials=3, seed=1)
    assert len(seen) == 3 and all(s == _pairs(train) for s in seen)
    assert not _pairs(train) & _pairs(test)
    assert result.metric == "rmse" and np.isfinite(result.value)
    assert result.value == min(t.value for t in result.study.trials if t.value is not None)
    assert result.train.epochs == result.study.best_params["epochs"]
    start = starting_point(BiasedMFConfig(embedding_dim=4), embrec.TrainConfig())
    assert "embedding_dim" not in start  # 4 lies outside the searched 8..128
    assert start["learning_rate"] == 1e-3 and start["batch_size"] == 1024
    assert {k: result.study.trials[0].params[k] for k in start} == start  # first trial: start
    assert result.model.embedding_dim == result.study.best_params["embedding_dim"]


def test_an_interrupted_study_resumes_and_refuses_another_search(tiny: Ratings,
                                                                 tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 't.db'}"
    first = embrec.tune(tiny, "biased-mf", trials=2, storage=storage, study_name="s")
    params = [t.params for t in first.study.trials]
    again = embrec.tune(tiny, "biased-mf", trials=4, storage=storage, study_name="s")
    assert len(again.study.trials) == 4
    assert [t.params for t in again.study.trials[:2]] == params
    with pytest.raises(ConfigError, match="tunes something else.*metric"):
        embrec.tune(tiny, "biased-mf", trials=4, metric="ndcg@10", storage=storage,
                    study_name="s")


def test_cli_tunes_the_train_side_and_writes_a_config_train_accepts(
        ratings_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import embrec.tuning

    received: list[Ratings] = []
    real_tune = embrec.tuning.tune

    def spy(train: Ratings, *args: object, **kwargs: object) -> object:
        received.append(train)
        return real_tune(train, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embrec.tuning, "tune", spy)
    out = tmp_path / "best.toml"
    assert main(["tune", "--data", str(ratings_csv), "--model", "biased-mf", "--trials", "3",
                 "--test-size", "0.1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    train, test = embrec.split(embrec.read_ratings(ratings_csv), test_size=0.1, seed=0)
    assert _pairs(received[0]) == _pairs(train) and not _pairs(received[0]) & _pairs(test)
    assert summary["trials"] == 3 and len(summary["best_trials"]) == 3
    config = tomllib.loads(out.read_text())
    assert config["model"]["name"] == "biased-mf" and config["split"]["test_size"] == 0.1
    model_dir = tmp_path / "m"
    assert main(["train", "--data", str(ratings_csv), "--config", str(out), "--quiet",
                 "--out", str(model_dir)]) == 0
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["model"]["config"] == {k: v for k, v in summary["model"].items() if k != "name"}
    assert saved["train_config"]["epochs"] == summary["train"]["epochs"]
    assert saved["train_config"]["learning_rate"] == summary["train"]["learning_rate"]


def test_cli_refuses_a_missing_gpu_with_an_error_line(
        ratings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--data", str(ratings_csv), "--device", "cuda:99", "--trials", "1",
                 "--out", str(tmp_path / "best.toml")]) == 2
    error = capsys.readouterr().err
    assert "error: device='cuda:99' is not available" in error and "Traceback" not in error


@pytest.mark.slow
def test_two_processes_share_one_study(ratings_csv: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    command = [sys.executable, "-m", "embrec", "tune", "--data", str(ratings_csv), "--model",
               "biased-mf", "--trials", "4", "--storage", storage, "--study", "shared",
               "--quiet", "--json"]
    runs = [subprocess.Popen([*command, "--out", str(tmp_path / f"{k}.toml")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={"PYTHONPATH": SRC}) for k in range(2)]
    outputs = [run.communicate(timeout=240) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) >= 4
    assert all(json.loads(out)["trials"] >= 4 for out, _ in outputs)
