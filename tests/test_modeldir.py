"""Saving never loses a user's file: refusals, kept extras, symlinks, locks, staging, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from embrec.errors import ArtifactError
from embrec.modeldir import _locked, write_model_dir
from embrec.recommender import load, save
from embrec.writers import STAGING_MARKER
from tests.test_recommender import model_rec

ROOT = Path(__file__).resolve().parents[1]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_project_folder_with_a_config_json_is_never_replaced(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"name": "my app"}')
    (project / "src" / "main.py").write_text("print('hi')")
    (project / "README.md").write_text("# mine")
    before = _tree(project)
    with pytest.raises(ArtifactError, match="(?s)refusing to replace .*not an embrec model.*hint"):
        save(model_rec("biased-mf"), project)
    assert _tree(project) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]  # no staging, no lock left


@pytest.fixture()
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any training fail the test: these refusals must come before it."""
    import embrec.commands.runs

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained although the save would be refused")

    monkeypatch.setattr(embrec.commands.runs, "train_run", never)


@pytest.mark.usefixtures("no_training")
def test_cli_train_out_refuses_a_foreign_folder_with_exit_2_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embrec.cli import main

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "main.py").write_text("x = 1")
    code = main(["train", "--epochs", "1", "--seed", "0", "--quiet", "--out", str(tmp_path)])
    assert code == 2 and "refusing to replace" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "main.py"]
    assert not tmp_path.with_name(tmp_path.name + ".checkpoints").exists()


@pytest.mark.usefixtures("no_training")
def test_cli_train_out_under_a_file_exits_2_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Once a NotADirectoryError traceback at the first checkpoint, after an epoch's work."""
    from embrec.cli import main

    (tmp_path / "afile").write_text("mine")
    code = main(["train", "--epochs", "1", "--seed", "0", "--quiet",
                 "--out", str(tmp_path / "afile" / "model")])
    err = capsys.readouterr().err
    assert code == 2 and "afile is a file" in err and "Traceback" not in err
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_file_target_and_an_embrec_looking_config_are_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("data")
    with pytest.raises(ArtifactError, match="it is a file"):
        save(model_rec("biased-mf"), tmp_path / "file")
    fake = tmp_path / "fake"
    fake.mkdir()  # says it is embrec's, but lists none of the files beside it
    (fake / "config.json").write_text('{"format": "embrec-model", "files": {}}')
    (fake / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="refusing to replace"):
        save(model_rec("biased-mf"), fake)
    assert (fake / "notes.txt").read_text() == "mine"


def test_replacing_a_model_keeps_the_users_files(tmp_path: Path) -> None:
    path = save(model_rec("biased-mf", seed=1), tmp_path / "run")
    (path / "README.md").write_text("my notes")
    (path / "plots").mkdir()
    (path / "plots" / "a.png").write_bytes(b"png")
    new = model_rec("biased-mf", seed=2)
    save(new, path)
    assert (path / "README.md").read_text() == "my notes"
    assert (path / "plots" / "a.png").read_bytes() == b"png"
    np.testing.assert_array_equal(load(path).predict(1, 2), new.predict(1, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_user_file_with_a_name_the_model_needs_makes_the_save_refuse(tmp_path: Path) -> None:
    rec = model_rec("biased-mf", seed=1)
    path = save(rec, tmp_path / "run")  # no history, so no history.csv
    new = model_rec("biased-mf", seed=2)
    new.history = [{"epoch": 1, "train_rmse": 1.0}]
    (path / "history.csv").write_text("my,own\n1,2\n")
    before = _tree(path)
    with pytest.raises(ArtifactError, match="your file 'history.csv'"):
        save(new, path)
    assert _tree(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_symlinked_target_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    save(model_rec("biased-mf", seed=1), link)
    new = model_rec("biased-mf", seed=2)
    save(new, link)
    assert link.is_symlink() and (real / "weights.safetensors").is_file()
    np.testing.assert_array_equal(load(link).predict(1, 2), new.predict(1, 2))


def test_stale_staging_is_removed_only_when_provably_embrecs(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    ours = tmp_path / f".run.embrec-staging.{dead}.0123abcd"
    ours.mkdir()
    (ours / STAGING_MARKER).write_text(str(dead))
    (ours / "weights.safetensors").write_bytes(b"half")
    running = tmp_path / f".run.embrec-staging.{alive}.0123abcd"
    running.mkdir()
    (running / STAGING_MARKER).write_text(str(alive))
    unmarked = tmp_path / f".run.embrec-staging.{dead}.89abcdef"
    unmarked.mkdir()
    (unmarked / "thesis.tex").write_text("mine")
    save(model_rec("biased-mf"), tmp_path / "run")
    assert not ours.exists() and running.exists() and (unmarked / "thesis.tex").exists()
    (ours).mkdir()
    (ours / STAGING_MARKER).write_text(str(dead))
    load(tmp_path / "run")  # a load cleans up too
    assert not ours.exists()


def test_a_second_writer_waits_for_the_lock_then_fails_clearly(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with _locked(target, 0.0), pytest.raises(ArtifactError, match="another process is saving"):
        write_model_dir(target, lambda folder: None, format_version=2, lock_timeout=0.2)
    assert not target.exists()


def test_nan_weights_are_never_saved(tmp_path: Path) -> None:
    import torch

    rec = model_rec("biased-mf")
    with torch.no_grad():
        next(rec.model.parameters()).fill_(float("nan"))
    with pytest.raises(ArtifactError, match="NaN or infinite"):
        save(rec, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{root!r}, {src!r}]
    import embrec.modeldir as modeldir
    from embrec.recommender import save
    from tests.test_recommender import model_rec
    stage, count = sys.argv[1], int(sys.argv[2])
    seen = []
    def checkpoint(name):
        seen.append(name)
        if name == stage and seen.count(name) == count:
            os.kill(os.getpid(), signal.SIGKILL)
    modeldir._checkpoint = checkpoint
    save(model_rec("biased-mf", seed=int(sys.argv[3])), sys.argv[4])
""")


def _child(stage: str, count: int, seed: int, target: Path) -> subprocess.Popen[bytes]:
    script = CHILD.format(root=str(ROOT), src=str(ROOT / "src"))
    return subprocess.Popen([sys.executable, "-c", script, stage, str(count), str(seed),
                             str(target)])


@pytest.mark.parametrize(("stage", "count"), [
    ("staging-created", 1), ("files-written", 1), ("manifest-written", 1), ("swapped", 1),
    ("extra-moved", 2), ("never", 1),
])
def test_kill_9_during_a_save_leaves_the_old_or_the_new_model(tmp_path: Path, stage: str,
                                                              count: int) -> None:
    target = tmp_path / "run"
    old, new = model_rec("biased-mf", seed=1), model_rec("biased-mf", seed=2)
    save(old, target)
    for name in ("a.txt", "b.txt", "c.txt"):
        (target / name).write_text(name)
    child = _child(stage, count, 2, target)
    assert child.wait(timeout=60) == (0 if stage == "never" else -signal.SIGKILL)
    loaded = load(target)  # whole, and cleans what the dead save left
    got = loaded.predict(np.arange(1, 16), np.arange(1, 16))
    candidates = [m.predict(np.arange(1, 16), np.arange(1, 16)) for m in (old, new)]
    assert any(np.array_equal(got, c) for c in candidates)
    if stage in ("staging-created", "files-written", "manifest-written"):
        assert np.array_equal(got, candidates[0])
    save(new, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging left
    assert all((target / n).read_text() == n for n in ("a.txt", "b.txt", "c.txt"))


def test_kill_9_at_random_moments(tmp_path: Path) -> None:
    target = tmp_path / "run"
    save(model_rec("biased-mf", seed=1), target)
    (target / "keep.txt").write_text("mine")
    rng = np.random.default_rng(0)
    for _ in range(2):
        child = _child("never", 1, 2, target)
        time.sleep(float(rng.uniform(1.0, 3.0)))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        load(target)
    save(model_rec("biased-mf", seed=3), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (target / "keep.txt").read_text() == "mine"


def test_an_unwritable_out_is_an_artifact_error(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ArtifactError, match="cannot save a model to"):
        save(model_rec("biased-mf"), tmp_path / "file.txt" / "model")


def test_two_concurrent_saves_are_serialised(tmp_path: Path) -> None:
    target = tmp_path / "run"
    save(model_rec("biased-mf", seed=1), target)
    (target / "keep.txt").write_text("mine")
    children = [_child("never", 1, seed, target) for seed in (2, 3)]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    got = load(target).predict(np.arange(1, 16), np.arange(1, 16))
    assert any(np.array_equal(got, model_rec("biased-mf", seed=s).predict(np.arange(1, 16),
                                                                         np.arange(1, 16)))
               for s in (2, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (target / "keep.txt").read_text() == "mine"
