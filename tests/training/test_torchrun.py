"""``torchrun -m embrec train``: 2 processes, 2 launchers (c10d), a failing rank; loopback only."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embrec.cli import main
from embrec.data.synthetic import generate
from tests.training.test_distributed import free_port

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

SRC = str(Path(__file__).parents[2] / "src")
TRAIN = ["--model", "biased-mf", "--epochs", "4", "--batch-size", "250", "--seed", "0", "--json"]


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ratings = generate(n_users=300, n_items=150, n_ratings=9001, rank=4, noise=0.3,
                       seed=2).ratings
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    path.write_text("user,item,rating\n" + "".join(
        f"{u},{i},{r}\n" for u, i, r in zip(ratings.users.id_of(ratings.user),
                                            ratings.items.id_of(ratings.item), ratings.rating,
                                            strict=True)))
    return path


@pytest.fixture(scope="module")
def replay(ratings_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The one-process run (in this process) that the distributed runs must equal."""
    out = tmp_path_factory.mktemp("replay") / "model"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["train", "--data", str(ratings_csv), *TRAIN, "--out", str(out)]) == 0
    return dict(json.loads(buffer.getvalue()))


def _torchrun(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (torchrun starts each rank in a session of its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_standalone_killed_then_resumed_equals_one_process(
        ratings_csv: Path, replay: dict[str, object], tmp_path: Path) -> None:
    out = tmp_path / "model"
    command = ["--standalone", "--nproc_per_node=2", "-m", "embrec", "train", "--data",
               str(ratings_csv), *TRAIN, "--out", str(out), "--checkpoint-every", "10"]
    job = _torchrun(*command)
    latest = tmp_path / "model.checkpoints" / "LATEST"
    deadline = time.monotonic() + 200
    while not latest.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    for pid in (*_children(job.pid), job.pid):  # kill -9 both ranks and the launcher
        os.kill(pid, signal.SIGKILL)
    job.communicate(timeout=60)
    assert job.returncode == -signal.SIGKILL and not out.exists(), "finished before the kill"
    job = _torchrun(*command, "--resume")
    stdout, stderr = job.communicate(timeout=240)
    assert job.returncode == 0, stderr
    summary = json.loads(stdout)  # exactly one JSON object: rank 1 prints nothing
    # each rank parsed its half of the file's bytes and trains on the training rows in it
    assert summary["world_size"] == 2 and sum(summary["rows_per_rank"]) == 8101  # 90% of 9001
    assert min(summary["rows_per_rank"]) > 3300
    assert abs(summary["test"]["rmse"] - replay["test"]["rmse"]) <= 1e-5  # type: ignore[index]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # checkpoints: removed
    meta = json.loads((out / "config.json").read_text())["metadata"]
    assert meta["world_size"] == 2 and meta["rows_per_rank"] == summary["rows_per_rank"]
    assert sum(summary["file_rows_per_rank"]) == 9001 and summary["notes"] == []
    assert summary["bytes_per_rank"] == meta["bytes_per_rank"]


def test_two_launchers_with_c10d_rendezvous(ratings_csv: Path, replay: dict[str, object],
                                            tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    jobs = [_torchrun("--nnodes=2", f"--node_rank={node}", "--nproc_per_node=1",
                      "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=t",
                      "-m", "embrec", "train", "--data", str(ratings_csv), *TRAIN,
                      "--out", str(tmp_path / "model")) for node in (0, 1)]
    outputs = [job.communicate(timeout=240) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err for _, err in outputs]
    printed = [json.loads(out) for out, _ in outputs if out.strip()]
    assert len(printed) == 1 and printed[0]["world_size"] == 2
    assert abs(printed[0]["test"]["rmse"] - replay["test"]["rmse"]) <= 1e-5


FAILING = """
import os
import signal
from embrec import TrainConfig, fit, read_ratings
from embrec.models import BiasedMFConfig
from embrec.training.step import RatingLoss

class OutOfMemoryOnRank1(RatingLoss):
    calls = 0
    def loss(self, *args):
        self.calls += 1
        if os.environ["RANK"] == "1" and self.calls == 3:
            raise MemoryError("simulated: rank 1 ran out of memory")
        return super().loss(*args)

fit(BiasedMFConfig(embedding_dim=4), read_ratings({data!r}),
    TrainConfig(epochs=50, batch_size=100, seed=0, step_path="autograd"),
    objective=OutOfMemoryOnRank1())
"""


def test_a_failing_rank_ends_the_job(ratings_csv: Path, tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text(FAILING.format(data=str(ratings_csv)))
    started = time.monotonic()
    job = _torchrun("--standalone", "--nproc_per_node=2", str(script))
    _, stderr = job.communicate(timeout=240)
    assert job.returncode != 0
    assert "MemoryError: simulated: rank 1 ran out of memory" in stderr
    assert time.monotonic() - started < 120
