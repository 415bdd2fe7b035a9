"""The command line, end to end and in process: every subcommand, --json, and error exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embrec.cli import SUBCOMMANDS, build_parser, main


@pytest.fixture(scope="module")
def trained(ratings_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "model"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["train", "--data", str(ratings_csv), "--model", "biased-mf", "--epochs", "3",
                     "--seed", "1", "--out", str(out), "--json"])
    assert code == 0
    return out, json.loads(buffer.getvalue())


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in text


def test_train_json_summary(trained: tuple[Path, dict]) -> None:
    out, summary = trained
    for key in ("model", "data", "epochs", "fit_seconds", "ratings_per_second", "out"):
        assert key in summary
    for side in ("train", "test"):
        assert set(summary[side]) >= {"rmse", "mae", "mse"}
        assert summary[side]["mse"] == pytest.approx(summary[side]["rmse"] ** 2, rel=1e-4)
    assert summary["model"] == "biased-mf" and summary["epochs"] == 3
    assert (out / "weights.safetensors").is_file() and (out / "config.json").is_file()


def test_evaluate_recreates_the_recorded_test_split(
    trained: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary = trained
    assert main(["evaluate", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["rmse"] == pytest.approx(summary["test"]["rmse"], rel=1e-5)
    assert metrics["n"] == summary["test"]["n"]


def test_predict_single_and_file(trained: tuple[Path, dict], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    from embrec.recommender import load

    rec = load(out)
    user, item = rec.users.ids[0], rec.items.ids[0]
    assert main(["predict", str(out), "--user", str(user), "--item", str(item)]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(rec.predict(user, item), abs=1e-4)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"user,item\n{user},{item}\n{rec.users.ids[1]},{rec.items.ids[2]}\n")
    result = tmp_path / "pred.csv"
    assert main(["predict", str(out), "--input", str(pairs), "--output", str(result)]) == 0
    lines = result.read_text().splitlines()
    assert lines[0] == "user,item,prediction" and len(lines) == 3


def test_recommend_and_similar_json(trained: tuple[Path, dict],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    from embrec.recommender import load

    rec = load(out)
    user = rec.users.ids[0]
    assert main(["recommend", str(out), "--user", str(user), "-n", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4
    seen = set(rec.items.id_of(rec.seen[0].indices).tolist())
    assert not seen & {row["item"] for row in rows}
    item = rec.items.ids[0]
    assert main(["similar", str(out), "--item", str(item), "-n", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and item not in {row["item"] for row in rows}


def test_datasets_info_json_for_a_path(ratings_csv: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "info", str(ratings_csv), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ratings"] == 1500
    assert {"users", "items", "density", "scale"} <= set(info)


def test_datasets_list_names_synthetic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "list", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert {"ml-100k", "synthetic", "goodbooks-10k"} <= names


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["train", "--data", "no/such/file.csv"], "no/such/file.csv"),
     (["train", "--model", "mpl"], "did you mean 'mlp'"),
     (["train", "--epochs", "0", "--data", "synthetic"], "epochs=0"),
     (["evaluate", "no/such/dir"], "no/such/dir")],
)
def test_user_errors_exit_2_without_traceback(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("content", [None, "", "user,item\n1,2,3,4\n\"unclosed"])
def test_unreadable_pairs_file_exits_2(trained: tuple[Path, dict], tmp_path: Path,
                                       content: str | None,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    pairs = tmp_path / "pairs.csv"
    if content is not None:
        pairs.write_text(content)
    assert main(["predict", str(out), "--input", str(pairs)]) == 2
    err = capsys.readouterr().err
    assert str(pairs) in err and "Traceback" not in err


def test_unwritable_output_exits_2(trained: tuple[Path, dict], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\n1,1\n")
    target = tmp_path / "missing" / "out.csv"
    assert main(["predict", str(out), "--input", str(pairs), "--output", str(target),
                 "--on-unknown", "mean"]) == 2
    assert "cannot be written" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:over-fitting:embrec.errors.TrainingWarning")
def test_early_stopping_flag(ratings_csv: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(ratings_csv), "--model", "biased-mf", "--epochs", "30",
                 "--validation", "0.2", "--early-stopping", "1", "--weight-decay", "0",
                 "--batch-size", "32", "--learning-rate", "0.05",
                 "--seed", "0", "--out", str(tmp_path / "m"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] < 30 and summary["validation"]["rmse"] > 0


def test_unknown_user_exits_2(trained: tuple[Path, dict],
                              capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    assert main(["recommend", str(out), "--user", "999999"]) == 2
    assert "unknown user 999999" in capsys.readouterr().err
    assert main(["predict", str(out), "--user", "999999", "--item", "999999"]) == 2
    assert "--on-unknown mean" in capsys.readouterr().err


def test_train_with_no_options_uses_synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMBREC_HOME", str(tmp_path / "home"))
    assert main(["train", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "test" in text and "saved to runs/synthetic-" in text
    assert any((tmp_path / "runs").iterdir())




def test_evaluate_ranking_metrics_and_segments(trained: tuple[Path, dict],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    assert main(["evaluate", str(out), "--metrics", "rmse", "ndcg@5", "coverage",
                 "--segments", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0.0 <= metrics["ndcg@5"] <= 1.0 and 0.0 < metrics["coverage"] <= 1.0
    segments = metrics["segments"]
    assert sum(part["n"] for name, part in segments.items()
               if name in ("cold", "warm", "unknown-user")) <= metrics["n"]
    assert main(["evaluate", str(out), "--metrics", "rmse", "--segments"]) == 0
    assert "segment" in capsys.readouterr().out


def test_train_last_split_and_fixed_test_file(ratings_csv: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "last"
    assert main(["train", "--data", str(ratings_csv), "--split", "last", "--epochs", "10",
                 "--seed", "0", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["test"]["n"] == 80  # one rating per user: 80 users
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 80
    assert main(["train", "--data", str(ratings_csv), "--test-data", str(ratings_csv),
                 "--epochs", "10", "--seed", "0", "--out", str(tmp_path / "fixed"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["n"] == 1500


def test_bad_split_method_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--split", "randon", "--quiet"]) == 2
    assert "did you mean 'random'" in capsys.readouterr().err


def test_serve_passes_its_flags(trained: tuple[Path, dict],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import embrec.serving.server as server

    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(server, "serve", lambda path, **kw: calls.append((path, kw)))
    out, _ = trained
    assert main(["serve", str(out), "--port", "8123", "--workers", "2", "--threads", "2",
                 "--no-access-log"]) == 0
    path, options = calls[0]
    assert path == str(out)
    assert options == {"host": "127.0.0.1", "port": 8123, "workers": 2, "device": "cpu",
                       "threads": 2, "access_log": False}


def test_ml100k_info_and_recommend_with_titles(ml100k_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "info", str(ml100k_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["ratings"], info["users"], info["items"]) == (100_000, 943, 1_682)
    out = tmp_path / "ml"
    assert main(["train", "--data", str(ml100k_dir), "--seed", "0", "--quiet",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["recommend", str(out), "--user", "196", "-n", "5"]) == 0
    text = capsys.readouterr().out
    assert "title" in text and text.count("(19") >= 5  # titles carry their year
    assert main(["similar", str(out), "--item", "50", "-n", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and all(row["title"] for row in rows)


def test_train_threads_flag_sets_the_training_threads(ratings_csv: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import embrec

    out = tmp_path / "threads"
    assert main(["train", "--data", str(ratings_csv), "--model", "biased-mf", "--epochs", "3",
                 "--seed", "1", "--threads", "2", "--out", str(out), "--json"]) == 0
    rec = embrec.load(out)
    assert rec.train_config.num_threads == 2 and rec.metadata["threads"] == 2


@pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")  # dead units, constants
@pytest.mark.parametrize("preset", ["movielens-notebook", "goodreads-notebook", "default",
                                    "ranking"])
def test_every_preset_trains_saves_and_resumes_with_out(
        preset: str, ratings_csv: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # --out checkpoints every epoch; the notebook presets' Keras-dense tables once crashed it
    out = tmp_path / "model"
    command = ["train", "--data", str(ratings_csv), "--preset", preset, "--epochs", "2",
               "--seed", "0", "--out", str(out), "--allow-degenerate", "--quiet",
               "--keep-checkpoints"]
    assert main(command) == 0
    assert (out / "weights.safetensors").is_file()
    assert (tmp_path / "model.checkpoints" / "embrec-checkpoints.json").is_file()
    capsys.readouterr()
    assert main([*command, "--resume", "--json"]) == 0  # the finished run, read back
    assert json.loads(capsys.readouterr().out)["epochs"] == 2
