"""``embrec launch``: 2 gloo ranks end as one process does (embrec's message last, its code)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from embrec.cli import main
from embrec.commands.launch import _Streams
from embrec.data.synthetic import generate

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _launch(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get(
        "PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "embrec", "launch", "--nproc", "2", "--",
                           *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("launch")
    ratings = generate(n_users=40, n_items=30, n_ratings=500, rank=2, noise=0.1, seed=1).ratings
    pd.DataFrame({"user": ratings.users.id_of(ratings.user), "rating": ratings.rating,
                  "item": ratings.items.id_of(ratings.item)}).to_csv(folder / "tiny.csv",
                                                                    index=False)
    lines = (folder / "tiny.csv").read_text().splitlines()
    user, _, item = lines[400].split(",")
    lines[400] = f"{user},five,{item}"  # line 401: in rank 1's half of the file
    (folder / "bad.csv").write_text("\n".join(lines) + "\n")
    return folder


def _ends_with_embrec_error(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = result.stderr.rstrip("\n").splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "ChildFailedError" not in result.stderr
    assert lines[-2].startswith("error: ") and lines[-1].startswith("  hint: "), lines[-3:]
    return lines


@pytest.mark.distributed
@pytest.mark.slow
def test_a_tiny_file_trains_on_two_ranks(files: Path) -> None:
    result = _launch("train", "--data", str(files / "tiny.csv"), "--model", "biased-mf",
                     "--epochs", "2", "--batch-size", "64", "--allow-degenerate",
                     "--out", str(files / "model"))
    assert result.returncode == 0, result.stderr
    assert "test" in result.stdout and "[default" not in result.stdout  # rank 0 unprefixed
    assert (files / "model" / "config.json").is_file()


@pytest.mark.distributed
@pytest.mark.slow
def test_a_bad_file_ends_with_the_message_and_the_line(files: Path) -> None:
    lines = _ends_with_embrec_error(_launch("train", "--data", str(files / "bad.csv"),
                                            "--batch-size", "64", "--epochs", "1"))
    assert any("bad.csv:401" in line and "'five'" in line for line in lines), lines


@pytest.mark.distributed
@pytest.mark.slow
def test_a_missing_file_ends_with_one_message(files: Path) -> None:
    lines = _ends_with_embrec_error(_launch("train", "--data", str(files / "missing.csv")))
    assert "missing.csv" in lines[-2]
    assert sum(line.startswith(("error: ", "[default1]:error: ")) for line in lines) == 1


def test_streams_keep_rank_zero_plain_and_its_message_last() -> None:
    streams, out = _Streams(), io.StringIO()
    for line in ["[default0]:epoch 1/1\n", "[default1]:error: rank 1 reason\n",
                 "[default0]:error: rank 0 says\n", "[default0]:  hint: fix it\n",
                 "W torchrun noise\n", "  rank      : 0 (local_rank: 0)\n",
                 "  exitcode  : 2 (pid: 1)\n"]:
        streams._take(line, out)
    assert out.getvalue() == "epoch 1/1\n"
    assert streams.errors == {0: ["error: rank 0 says\n", "  hint: fix it\n"],
                              1: ["error: rank 1 reason\n"]}


def test_launch_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["launch", "--nproc", "2", "--"]) == 2
    assert "command" in capsys.readouterr().err


def _running(marker: str) -> list[str]:
    """Command lines of the live processes that carry ``marker`` (the launcher, torchrun, ranks)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            line = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in line and "python" in line:
            found.append(line)
    return found


@pytest.mark.distributed
@pytest.mark.slow
def test_killing_the_launcher_stops_every_rank(files: Path, tmp_path: Path) -> None:
    """``kill`` of ``embrec launch`` reaches torchrun and the ranks: none trains on, orphaned."""
    out = tmp_path / "killed-model"
    env = {**os.environ, "PYTHONPATH": SRC}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "embrec", "launch", "--nproc", "2", "--", "train", "--data",
         str(files / "tiny.csv"), "--model", "mlp", "--epochs", "100000", "--batch-size", "8",
         "--allow-degenerate", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while len(_running(str(out))) < 4 and time.monotonic() < deadline:  # launcher, torchrun, 2
        time.sleep(0.5)
    assert len(_running(str(out))) >= 4, "the ranks never started"
    launcher.send_signal(signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while _running(str(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running(str(out)) == []
    assert launcher.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stderr
    assert stderr.rstrip().splitlines()[-1] == \
        "embrec launch: SIGTERM passed on; the ranks were stopped"
