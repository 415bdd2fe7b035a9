"""The shell and Python mean the same default training; --loss trains a ranking model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import embrec
from embrec.cli import main
from embrec.models import MODELS
from embrec.presets import DEFAULT_TRAINING, PRESETS, default_training


@pytest.mark.parametrize("name", ["biased-mf", "gmf"])
def test_train_model_uses_the_same_training_as_fit(name: str, ratings_csv: Path,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``embrec train --model x`` and ``embrec.fit(XConfig(), train)`` give the same model."""
    out = tmp_path / name
    assert main(["train", "--data", str(ratings_csv), "--model", name, "--seed", "0",
                 "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    shell = embrec.load(out)
    ratings = embrec.read_ratings(ratings_csv)
    train, _ = embrec.split(ratings, test_size=0.1, seed=0)  # every run's split
    python = embrec.fit(MODELS[name](), train, embrec.TrainConfig(
        **{**default_training(MODELS[name]()).to_dict(), "seed": 0}))
    shell_config = {k: v for k, v in shell.train_config.to_dict().items() if k != "progress"}
    python_config = {k: v for k, v in python.train_config.to_dict().items() if k != "progress"}
    assert shell_config == python_config
    assert shell.train_config.epochs == DEFAULT_TRAINING[name].epochs
    users, items = train.users.id_of(train.user[:20]), train.items.id_of(train.item[:20])
    np.testing.assert_allclose(shell.predict(users, items), python.predict(users, items),
                               rtol=1e-5)


def test_fit_without_training_settings_uses_the_models_default(tiny: embrec.Ratings) -> None:
    rec = embrec.fit(MODELS["gmf"](embedding_dim=4), tiny)
    assert rec.train_config == DEFAULT_TRAINING["gmf"]


def test_train_with_a_ranking_loss(ratings_csv: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bpr"
    assert main(["train", "--data", str(ratings_csv), "--model", "biased-mf", "--loss", "bpr",
                 "--epochs", "3", "--seed", "0", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "rmse" not in summary["test"] and 0 <= summary["test"]["ndcg@10"] <= 1
    assert embrec.load(out).scores == "ranking"
    assert main(["predict", str(out), "--user", "1", "--item", "2"]) == 2
    assert "kind" in capsys.readouterr().err


def test_ranking_preset_is_a_ranking_loss() -> None:
    preset = PRESETS["ranking"]
    assert preset.train.loss != "rating" and not preset.train.loss.startswith("rating+")
    assert "ranking" in preset.description or "top-N" in preset.description
