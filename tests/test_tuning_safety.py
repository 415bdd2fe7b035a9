"""`embrec tune` loses nothing a user owns and survives a killed run: foreign --out files and
databases are refused untouched, every storage problem is one error line, and a trial a killed
process left RUNNING is failed and its starting point run again."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("optuna", reason="needs optuna (pip install 'embrec[tune]')")

import embrec
from embrec.cli import main
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.studies import OPTUNA_TABLES, check_storage
from embrec.tuning import starting_point
from tests.synthetic_files import synthetic_csv

SRC = str(Path(embrec.__file__).parent.parent)


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_csv(tmp_path_factory.mktemp("tune"), n_users=40, n_items=30,
                         n_ratings=500, rank=3, noise=0.2, seed=4)


def test_out_never_overwrites_a_file_tune_did_not_write(ratings_csv: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = ratings_csv.read_bytes()
    assert main(["tune", "--data", str(ratings_csv), "--trials", "1", "--out",
                 str(ratings_csv)]) == 2
    assert "embrec did not write it" in capsys.readouterr().err
    assert ratings_csv.read_bytes() == before
    mine = tmp_path / "best.toml"
    mine.write_text("# my own notes\n")
    assert main(["tune", "--data", str(ratings_csv), "--trials", "1", "--out", str(mine)]) == 2
    assert mine.read_text() == "# my own notes\n"
    theirs = tmp_path / "tuned.toml"  # a file tune wrote is replaced on the next run
    for _ in range(2):
        assert main(["tune", "--data", str(ratings_csv), "--trials", "1", "--quiet",
                     "--out", str(theirs)]) == 0
    assert theirs.read_text().startswith("# embrec tune:")


@pytest.mark.parametrize("flags", [["--timeout", "0"], ["--timeout", "nan"], ["--top", "-3"]])
def test_meaningless_limits_are_refused(ratings_csv: Path, tmp_path: Path, flags: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--data", str(ratings_csv), "--out", str(tmp_path / "b.toml"),
                 *flags]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _database(path: Path, kind: str) -> None:
    if kind == "user":
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE notes (text)")
        sqlite3.connect(path).close()
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "random":
        path.write_bytes(bytes(range(256)) * 20)
    elif kind == "folder":
        path.mkdir()


@pytest.mark.parametrize("kind", ["user", "text", "random", "folder", "no-parent", "not-url"])
def test_a_storage_that_is_not_an_optuna_store_is_refused_untouched(tmp_path: Path,
                                                                    kind: str) -> None:
    path = tmp_path / ("missing/x.db" if kind == "no-parent" else "x.db")
    _database(path, kind)
    before = path.read_bytes() if path.is_file() else None
    url = "not a url" if kind == "not-url" else f"sqlite:///{path}"
    with pytest.raises(ConfigError, match="storage="):
        check_storage(url)
    assert (path.read_bytes() if path.is_file() else None) == before


def test_a_store_another_tune_is_still_making_is_waited_for(tmp_path: Path) -> None:
    """Two tunes on one new file: the second may look while the first creates the tables."""
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE studies (id)")
    connection.close()

    def finish() -> None:
        time.sleep(0.3)
        with sqlite3.connect(path) as late:
            for table in sorted(OPTUNA_TABLES - {"studies"}):
                late.execute(f"CREATE TABLE {table} (id)")
        late.close()

    maker = threading.Thread(target=finish)
    maker.start()
    check_storage(f"sqlite:///{path}")  # no error: the store became whole while it waited
    maker.join()


def test_storage_problems_are_one_error_line(ratings_csv: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("embrec.studies.CREATION_WAIT", 0.2)  # the dropped table never returns
    good = tmp_path / "t.db"
    assert main(["tune", "--data", str(ratings_csv), "--trials", "1", "--quiet", "--storage",
                 f"sqlite:///{good}", "--out", str(tmp_path / "a.toml")]) == 0
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(good.read_bytes()[:3000])
    dropped = tmp_path / "dropped.db"
    dropped.write_bytes(good.read_bytes())
    with sqlite3.connect(dropped) as connection:
        connection.execute("DROP TABLE trial_params")
    connection.close()
    for db in (damaged, dropped):
        capsys.readouterr()
        assert main(["tune", "--data", str(ratings_csv), "--trials", "2", "--storage",
                     f"sqlite:///{db}", "--out", str(tmp_path / "b.toml")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: storage=") and "Traceback" not in err


KILLED_TRIAL = """
import os, sys, optuna
from embrec.studies import mark_trial, open_study
study = open_study(optuna, sys.argv[1], "s", "minimize")
study.enqueue_trial({"learning_rate": 0.001})
trial = study.ask()
mark_trial(trial)
os._exit(9)  # killed during its first trial
"""


def test_a_trial_left_running_by_a_killed_run_is_failed_and_the_start_rerun(
        tiny: Ratings, tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 't.db'}"
    subprocess.run([sys.executable, "-c", KILLED_TRIAL, storage], env={"PYTHONPATH": SRC},
                   check=False, timeout=120)
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == [optuna.trial.TrialState.RUNNING]
    result = embrec.tune(tiny, "biased-mf", trials=2, storage=storage, study_name="s")
    trials = result.study.trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    start = starting_point(embrec.models.BiasedMFConfig(), embrec.TrainConfig())
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 2
    assert {k: finished[0].params[k] for k in start} == start  # the starting point ran
