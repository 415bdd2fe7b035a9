"""What runs print and record (issue 19): ranking runs' loss and NDCG, plain epoch lines, hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embrec.cli import main
from embrec.commands.options import cli_hint

pytestmark = pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")  # 2 epochs


def test_ranking_run_reports_loss_and_validation_ndcg(ratings_csv: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rank"
    assert main(["train", "--data", str(ratings_csv), "--preset", "ranking", "--epochs", "2",
                 "--validation", "0.2", "--seed", "0", "--out", str(out), "--json"]) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert len(history) == 2
    for record in history:
        assert not any(key.startswith("train_rmse") for key in record)
        assert record["train_loss"] > 0 and 0 <= record["validation_ndcg@10"] <= 1
    header = (out / "history.csv").read_text().splitlines()[0]
    assert "train_loss" in header and "validation_ndcg@10" in header
    assert (out / "learning-curves.png").stat().st_size > 0


def test_without_a_terminal_each_epoch_is_one_line(ratings_csv: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(ratings_csv), "--epochs", "3", "--seed", "0",
                 "--out", str(tmp_path / "m"), "--allow-degenerate"]) in (0, 3)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("ratings in" in line and "train_rmse=" in line for line in lines)


def test_hints_name_config_keys_for_settings_without_a_flag() -> None:
    text = cli_hint("the model is constant\n  hint: try activation='tanh', biases=True or a "
                    "lower learning_rate")
    assert 'activation = "tanh" in [model]' in text and "biases = true in [model]" in text
    assert "--learning-rate" in text and "activation='tanh'" not in text
    assert "schedule = \"onecycle\" in [train]" in cli_hint("  hint: use schedule='onecycle'")


def test_every_flagless_key_is_a_setting() -> None:
    import dataclasses

    from embrec.commands.options import TABLE_KEYS
    from embrec.config import TrainConfig
    from embrec.models import MODELS

    model_fields = {f.name for c in MODELS.values() for f in dataclasses.fields(c)}
    assert set(TABLE_KEYS["model"]) <= model_fields
    assert set(TABLE_KEYS["train"]) <= {f.name for f in dataclasses.fields(TrainConfig)}


def test_readme_is_short_and_the_docs_site_is_complete() -> None:
    root = Path(__file__).resolve().parents[1]
    assert len((root / "README.md").read_text().splitlines()) < 200
    config = (root / "mkdocs.yml").read_text()
    pages = [line.split(": ")[-1].strip() for line in config.splitlines()
             if line.strip().endswith(".md")]
    assert "benchmarks.md" in pages and "api.md" in pages
    for page in pages:
        assert (root / "docs" / page).is_file(), page
    assert "mkdocs build --strict" in (root / ".ci" / "run").read_text()


def test_every_unrecognised_column_is_reported_at_once(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("who,what,score_given\n1,2,3\n")
    assert main(["datasets", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no user, item or rating column" in err
    assert "--user-col" in err and "--item-col" in err and "--rating-col" in err
