"""`embrec train` on a degenerate model: warn, exit 3, never save NaN weights; strict JSON."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from embrec.cli import main
from embrec.commands.runs import NOT_FINITE, degenerate
from embrec.config import TrainConfig
from embrec.errors import ConfigError


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_train_config_refuses_a_non_finite_learning_rate(value: float) -> None:
    with pytest.raises(ConfigError, match="learning_rate=.* must be finite"):
        TrainConfig(learning_rate=value)


def test_cli_learning_rate_inf_is_exit_2(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--learning-rate", "inf", "--out", str(tmp_path / "m")]) == 2
    assert "must be finite" in capsys.readouterr().err and not (tmp_path / "m").exists()


def test_a_useless_model_is_not_saved_and_exits_3(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--learning-rate", "1e3", "--epochs", "1", "--quiet", "--json", "--seed", "1"]
    assert main([*args, "--out", str(tmp_path / "m")]) == 3
    out, err = capsys.readouterr()
    summary = _strict_json(out)
    assert summary["out"] is None and summary["problems"] and not (tmp_path / "m").exists()
    assert "worse than predicting the training mean" in err and "--allow-degenerate" in err
    assert main([*args, "--out", str(tmp_path / "m"), "--allow-degenerate"]) == 0
    assert (tmp_path / "m" / "weights.safetensors").is_file()


def test_non_finite_weights_are_degenerate_and_never_saved_even_when_allowed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import embrec.commands.runs

    real = embrec.commands.runs.fit

    def poisoned(*args: Any, **kwargs: Any) -> Any:
        rec = real(*args, **kwargs)
        with torch.no_grad():
            next(rec.model.parameters()).fill_(math.nan)
        return rec

    monkeypatch.setattr(embrec.commands.runs, "fit", poisoned)
    code = main(["train", "--epochs", "1", "--seed", "0", "--quiet", "--allow-degenerate",
                 "--out", str(tmp_path / "m")])
    assert code == 3 and not (tmp_path / "m").exists()


def test_degenerate_names_a_diverged_or_constant_model(tiny: Any) -> None:
    from embrec.models import BiasedMFConfig
    from embrec.training.fit import fit

    rec = fit(BiasedMFConfig(embedding_dim=4, init_std=0.05), tiny, TrainConfig(epochs=1, seed=0))
    good = {"rmse": 0.0}
    assert degenerate(rec, tiny, good, []) == []
    assert degenerate(rec, tiny, good, ["loss became inf"])[0].startswith("training diverged")
    rec.history = []
    assert "no epoch finished" in degenerate(rec, tiny, good, [])[0]
    rec.metadata["diagnostics"] = [{"kind": "constant_predictions", "message": "one constant"}]
    assert any("constant model" in p for p in degenerate(rec, tiny, good, []))
    assert any("worse than" in p for p in degenerate(rec, tiny, {"rmse": 99.0}, []))
    with torch.no_grad():
        next(rec.model.parameters()).fill_(math.inf)
    assert NOT_FINITE in degenerate(rec, tiny, good, [])


def test_a_tiny_data_set_reports_its_empty_test_split_in_valid_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "four.csv"
    data.write_text("user,item,rating\n1,1,4\n2,2,3\n3,1,5\n4,2,2\n")
    with warnings.catch_warnings():  # four ratings teach next to nothing: whatever it warns
        warnings.simplefilter("ignore")
        main(["train", "--data", str(data), "--epochs", "1", "--seed", "0", "--quiet", "--json",
              "--allow-degenerate", "--out", str(tmp_path / "m")])
    out, err = capsys.readouterr()
    summary = _strict_json(out)
    assert summary["test"]["rmse"] is None and summary["test"]["n"] == 0
    assert any("test split is empty" in note for note in summary["notes"])
    assert "test split is empty" in err


def test_neumf_on_all_equal_ratings_does_not_crash(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "same.csv"
    data.write_text("user,item,rating\n" + "".join(f"{u},{u % 7},4\n" for u in range(60)))
    with warnings.catch_warnings():  # diagnostics on a model with nothing to learn
        warnings.simplefilter("ignore")
        code = main(["train", "--data", str(data), "--model", "neumf", "--epochs", "1",
                     "--seed", "0", "--quiet", "--out", str(tmp_path / "m")])
    assert code in (0, 3)
    assert "Traceback" not in capsys.readouterr().err


def test_device_cuda_without_a_gpu_is_exit_2(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["train", "--device", "cuda", "--out", str(tmp_path / "m")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_evaluate_json_is_strict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--epochs", "1", "--seed", "0", "--quiet",
                 "--out", str(tmp_path / "m")]) == 0
    test = tmp_path / "test.csv"
    test.write_text("user,item,rating\nnobody,nothing,3\n")
    capsys.readouterr()
    main(["evaluate", str(tmp_path / "m"), "--data", str(test), "--json"])
    _strict_json(capsys.readouterr().out)
