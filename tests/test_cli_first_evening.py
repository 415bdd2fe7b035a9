"""A new user's first evening (issue 19): no silent wrong numbers, one meaning per flag."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embrec
from embrec.cli import main
from embrec.evaluation.heldout import TEST_ROWS, read_test_rows
from embrec.models import BiasedMFConfig
from embrec.presets import DEFAULT_TRAINING, PRESETS

SRC = str(Path(embrec.__file__).resolve().parents[1])
pytestmark = pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")  # 1-3 epochs


@pytest.fixture(scope="module")
def model_dir(ratings_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "m"
    assert main(["train", "--data", str(ratings_csv), "--model", "biased-mf", "--epochs", "3",
                 "--seed", "1", "--out", str(out), "--quiet"]) == 0
    return out


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_evaluate_scores_the_saved_test_rows(model_dir: Path, ratings_csv: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rec = embrec.load(model_dir)
    test = read_test_rows(model_dir, rec.scale)
    _, expected = embrec.split(embrec.read_ratings(ratings_csv), test_size=0.1, seed=1)
    assert sorted(zip(test.to_pandas().user, test.to_pandas().item, strict=True)) == sorted(
        zip(expected.to_pandas().user, expected.to_pandas().item, strict=True))
    assert main(["evaluate", str(model_dir), "--json"]) == 0
    result = _json(capsys)
    saved = json.loads((model_dir / "metrics.json").read_text())["test"]
    assert result["n"] == saved["n"] == len(test)
    assert result["rmse"] == pytest.approx(saved["rmse"], rel=1e-6)
    assert set(result["rating_baselines"]) == {"global_mean", "user_mean", "item_mean"}


def test_evaluate_refuses_the_training_rows(model_dir: Path, ratings_csv: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["evaluate", str(model_dir), "--test-data", str(ratings_csv)]) == 2
    assert "this model was trained on" in capsys.readouterr().err
    assert main(["evaluate", str(model_dir), "--data", str(ratings_csv)]) == 2  # deprecated
    err = capsys.readouterr().err
    assert "use --test-data FILE" in err and "trained on" in err
    assert main(["evaluate", str(model_dir), "--test-data", str(ratings_csv),
                 "--allow-training-rows", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["training_rows"] > 0 and "overstate" in captured.err


def test_evaluate_on_other_rows(model_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rec = embrec.load(model_dir)
    test = read_test_rows(model_dir, rec.scale)
    other = tmp_path / "held.csv"
    test.to_pandas().to_csv(other, index=False)
    assert main(["evaluate", str(model_dir), "--test-data", str(other), "--json"]) == 0
    assert _json(capsys)["n"] == len(test)


def test_default_preset_is_the_default_model_and_training() -> None:
    """`--model biased-mf` (``BiasedMFConfig()``) and the `default` preset are one model."""
    assert PRESETS["default"].model == BiasedMFConfig()
    assert PRESETS["default"].train == DEFAULT_TRAINING["biased-mf"]


def test_default_model_and_default_preset_split_alike(
        ratings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {}
    for name, flags in (("preset", ["--preset", "default"]), ("model", ["--model", "biased-mf"])):
        out = tmp_path / name
        assert main(["train", "--data", str(ratings_csv), *flags, "--epochs", "2", "--seed", "0",
                     "--out", str(out), "--json"]) == 0
        runs[name] = _json(capsys)
        runs[name]["rows"] = read_test_rows(out, (1.0, 5.0)).to_pandas()
    assert runs["preset"]["split"] == runs["model"]["split"]
    assert runs["preset"]["split"]["test_size"] == 0.1  # type: ignore[index]
    assert runs["preset"]["rows"].equals(runs["model"]["rows"])
    assert runs["preset"]["changed"] == runs["model"]["changed"] == ["train.epochs", "train.seed"]
    saved = [json.loads((tmp_path / name / "config.json").read_text())["train_config"]
             for name in ("preset", "model")]
    assert saved[0] == saved[1]


def test_seed_is_drawn_and_recorded(ratings_csv: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(ratings_csv), "--epochs", "1", "--out",
                 str(tmp_path / "m"), "--json", "--allow-degenerate"]) == 0
    assert isinstance(_json(capsys)["seed"], int)


def test_checkpoints_removed_once_saved_unless_kept(ratings_csv: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for keep in (False, True):
        out = tmp_path / f"keep-{keep}"
        assert main(["train", "--data", str(ratings_csv), "--epochs", "2", "--out", str(out),
                     "--quiet", *(["--keep-checkpoints"] if keep else [])]) == 0
        assert (out / TEST_ROWS).is_file()
        assert Path(f"{out}.checkpoints").exists() == keep


def test_failed_run_keeps_its_checkpoints_and_says_how_to_resume(
        ratings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m"
    checkpoints = Path(f"{out}.checkpoints")

    def interrupted(*args: object, **kwargs: object) -> object:
        checkpoints.mkdir()
        (checkpoints / "epoch-1").write_text("")
        raise KeyboardInterrupt

    monkeypatch.setattr("embrec.commands.runs.train_run", interrupted)
    assert main(["train", "--data", str(ratings_csv), "--out", str(out), "--quiet"]) == 130
    assert checkpoints.is_dir() and "--resume" in capsys.readouterr().err


def test_counts_print_as_integers(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["evaluate", str(model_dir), "--segments"]) == 0
    out = capsys.readouterr().out
    assert "n: " in out and ".0000" not in out.split("rmse")[0]
    warm = next(line for line in out.splitlines() if line.strip().startswith("warm"))
    assert warm.split()[1].isdigit()


def test_cross_validation_reports_mean_and_std(model_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["evaluate", str(model_dir), "--folds", "2", "--json"]) == 0
    result = _json(capsys)
    assert len(result["folds"]) == 2  # type: ignore[arg-type]
    assert np.isfinite(result["mean"]["rmse"]) and result["std"]["rmse"] >= 0  # type: ignore[index]
    assert main(["evaluate", str(model_dir), "--folds", "1"]) == 2


def _without_torch(*argv: str) -> tuple[int, bool, str]:
    code = ("import sys\nfrom embrec.cli import main\n"
            f"rc = main({list(argv)!r})\nprint(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, check=False)
    rc, loaded = done.stdout.split()[-2:]
    return int(rc), loaded == "True", done.stderr


@pytest.mark.parametrize("argv", [
    ("predict", "no-such-dir", "--user", "1", "--item", "2"),
    ("predict", "DIR", "--user", "1"),
    ("recommend", "no-such-dir", "--user", "1"),
    ("evaluate", "no-such-dir", "--folds", "1"),
    ("evaluate", "no-such-dir"),
])
def test_argument_checks_do_not_import_torch(argv: tuple[str, ...]) -> None:
    rc, loaded, err = _without_torch(*argv)
    assert rc == 2 and not loaded and "error:" in err


def test_listing_data_sets_does_not_import_torch() -> None:
    rc, loaded, _ = _without_torch("datasets", "list", "--json")
    assert rc == 0 and not loaded


def test_predict_refuses_a_ranking_model_before_loading(ratings_csv: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    out = tmp_path / "bpr"
    assert main(["train", "--data", str(ratings_csv), "--loss", "bpr", "--epochs", "1",
                 "--out", str(out), "--quiet", "--allow-degenerate"]) == 0
    rc, loaded, err = _without_torch("predict", str(out), "--user", "1", "--item", "2")
    assert rc == 2 and not loaded
    assert "--kind score" in err and "--loss rating" in err and "'biased-mf'" not in err


def test_known_data_set_found_where_it_was_laid_out(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from embrec.data.datasets import DATASETS, local_copy

    info = DATASETS["ml-100k"]
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "nohome")
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("EMBREC_HOME", str(home))
    assert local_copy(info) is None
    for folder in (home / "datasets" / "ml-100k" / "ml-100k", tmp_path / "ml-100k"):
        folder.mkdir(parents=True)
        for name in info.files:
            (folder / name).write_text("")
        assert local_copy(info) == folder
        for name in info.files:
            (folder / name).unlink()


def test_offline_hint_names_the_cache_and_a_path(tmp_path: Path) -> None:
    from embrec.data.datasets import load_dataset
    from embrec.errors import DownloadError

    with pytest.raises(DownloadError, match="instead of the name") as error:
        load_dataset("ml-1m", home=tmp_path, download=False)
    assert "unzip" in str(error.value)
