"""The shell with the yardsticks: train popular/ease, evaluate --baselines prints a comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from embrec.cli import main


@pytest.mark.parametrize("model", ["popular", "ease"])
def test_train_a_yardstick_then_evaluate_with_baselines(
        model: str, ratings_csv: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / model
    assert main(["train", "--data", str(ratings_csv), "--model", model, "--out", str(out),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) >= {"model", "fit_seconds", "test"} and "rmse" not in summary["test"]
    assert 0 <= summary["test"]["ndcg@10"] <= 1
    assert main(["evaluate", str(out), "--baselines", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ndcg@10"] == pytest.approx(summary["test"]["ndcg@10"])
    assert result["ndcg@10/popular"] == pytest.approx(
        result["ndcg@10"] / result["popular:ndcg@10"])
    assert main(["recommend", str(out), "--user", "1", "-n", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["predict", str(out), "--user", "1", "--item", "2"]) == 2
    assert "--kind score" in capsys.readouterr().err
    assert main(["predict", str(out), "--user", "1", "--item", "2", "--kind", "score"]) == 0
    assert math.isfinite(float(capsys.readouterr().out))


def test_evaluate_baselines_table(ratings_csv: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mf"
    assert main(["train", "--data", str(ratings_csv), "--model", "biased-mf", "--epochs", "2",
                 "--seed", "0", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--baselines"]) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if "metric" in line)
    assert header.split() == ["metric", "biased-mf", "popular", "ratio"]
    assert any(line.split()[0] == "ndcg@10" for line in text.splitlines() if line.strip())
    assert "rmse" in text
