"""Attack the newest features as a user might; count tracebacks, data loss and wrong results.

Each case runs embrec in a subprocess (the CLI, or the library for checkpoints) and is
classed as a **traceback** (exit code other than 0, 2 and 3, or "Traceback" in its
output), **data loss** (a file the user owns changed), or a **wrong result** (a
silent outcome the case knows to be wrong); anything else is fine. Cases: ``tune
--out`` and ``--storage`` on files embrec did not write, killed tune runs,
meaningless limits, two trainings into one ``--out``, a user's folder in the
checkpoint folder, corrupted checkpoint fields, header-only and overflowing CSVs.
Then two figures: peak memory above the interpreter to read 200 MB of blank lines
(a bounded subprocess), and ``/health`` latency while three bodies just under the
8 MiB limit are refused (the server from ``hardening.py``).

Usage: ``PYTHONPATH=src python3 benchmarks/adversarial_features.py``; writes
``benchmarks/results/adversarial_features.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from hardening import _free_port, _Pinger, _start, _train

RESULTS = Path(__file__).parent / "results" / "adversarial_features.json"
SRC = str(Path(__file__).parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def _digest(path: Path) -> str:
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.rglob("*")))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


class Cases:
    """Runs the cases in ``tmp`` and keeps their outcomes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.outcomes = tmp, []
        from embrec.data.synthetic import generate

        self.csv = tmp / "ratings.csv"
        generate(n_users=60, n_items=40, n_ratings=1200, rank=3, noise=0.2, seed=4) \
            .ratings.to_pandas().to_csv(self.csv, index=False)

    def case(self, name: str, args: list[str], owned: list[Path] = (),  # type: ignore[assignment]
             wrong: Callable[[subprocess.CompletedProcess[str]], bool] | None = None) -> None:
        before = {p: _digest(p) for p in owned}
        run = _run(args)
        text = run.stdout + run.stderr
        kind = ("traceback" if run.returncode not in (0, 2, 3) or "Traceback" in text else
                "data_loss" if any(_digest(p) != d for p, d in before.items()) else
                "wrong_result" if wrong is not None and wrong(run) else "ok")
        self.outcomes.append({"case": name, "exit": run.returncode, "outcome": kind,
                              "last_line": (run.stderr.strip().splitlines() or [""])[0][:160]})

    def tune(self, *flags: str) -> list[str]:
        return ["-m", "embrec", "tune", "--data", str(self.csv), "--trials", "2", "--quiet",
                *flags]


def _storage_cases(c: Cases) -> None:
    t = c.tmp
    user = t / "user.db"
    with sqlite3.connect(user) as connection:
        connection.execute("CREATE TABLE notes (text)")
    connection.close()
    (t / "random.db").write_bytes(os.urandom(5000))
    (t / "text.db").write_text("hello\n")
    (t / "folder.db").mkdir()
    c.case("tune --storage good.db", c.tune("--storage", f"sqlite:///{t / 'good.db'}", "--out",
                                            str(t / "a.toml")))
    (t / "truncated.db").write_bytes((t / "good.db").read_bytes()[:3000])
    shutil.copy(t / "good.db", t / "dropped.db")
    with sqlite3.connect(t / "dropped.db") as connection:
        connection.execute("DROP TABLE trial_params")
    connection.close()
    for name in ("user", "random", "text", "truncated", "dropped"):
        db = t / f"{name}.db"
        c.case(f"tune --storage {name}.db", c.tune("--storage", f"sqlite:///{db}", "--out",
                                                   str(t / "b.toml")), owned=[db])
    for url in (f"sqlite:///{t / 'folder.db'}", f"sqlite:///{t / 'nope' / 'x.db'}", "not a url",
                "sqlite:////proc/version"):
        c.case(f"tune --storage {url[-20:]}", c.tune("--storage", url, "--out", str(t / "b.toml")))


def _tune_cases(c: Cases) -> None:
    t = c.tmp
    c.case("tune --out the data file", c.tune("--out", str(c.csv)), owned=[c.csv])
    mine = t / "best.toml"
    mine.write_text("# my notes\n")
    c.case("tune --out a user's best.toml", c.tune("--out", str(mine)), owned=[mine])
    for flags in (["--timeout", "0"], ["--timeout", "-1"], ["--timeout", "nan"], ["--top", "-3"]):
        c.case(f"tune {' '.join(flags)}", c.tune(*flags, "--out", str(t / "c.toml")),
               wrong=lambda run: run.returncode == 0)
    from embrec.data.synthetic import generate

    big = t / "big.csv"  # a first trial that lasts: 100,000 ratings, 30 epochs of batch 256
    generate(n_users=2000, n_items=1000, n_ratings=100_000, rank=4, seed=2) \
        .ratings.to_pandas().to_csv(big, index=False)
    config = t / "slow.toml"
    config.write_text("[model]\nname = \"biased-mf\"\n\n[train]\nepochs = 30\nbatch_size = 256\n")
    storage = f"sqlite:///{t / 'killed.db'}"
    command = ["-m", "embrec", "tune", "--data", str(big), "--config", str(config), "--quiet",
               "--storage", storage, "--out", str(t / "k.toml"), "--trials", "1"]
    first = subprocess.Popen([sys.executable, *command], env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    for _ in range(1200):  # kill it inside its first trial (the starting point)
        time.sleep(0.1)
        try:
            with sqlite3.connect(t / "killed.db") as connection:
                if connection.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'"
                                      ).fetchone()[0]:
                    break
        except sqlite3.Error:
            continue
    time.sleep(1.0)
    first.send_signal(signal.SIGKILL)
    first.wait()

    def start_lost(run: subprocess.CompletedProcess[str]) -> bool:
        import optuna

        study = optuna.load_study(study_name="tune-big-biased-mf", storage=storage)
        states = [t.state.name for t in study.trials]
        started = [t for t in study.trials if "fixed_params" in t.system_attrs
                   and t.state.name == "COMPLETE"]
        return "RUNNING" in states or not started

    c.case("tune rerun after kill -9 in trial 1", command, wrong=start_lost)


def _train_cases(c: Cases) -> None:
    t = c.tmp
    out = t / "model"
    train = [sys.executable, "-m", "embrec", "train", "--data", str(c.csv), "--epochs", "300",
             "--quiet", "--allow-degenerate", "--out", str(out)]
    runs = [subprocess.Popen(train, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)]
    time.sleep(1.0)
    runs.append(subprocess.Popen(train, env=ENV, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True))
    codes = sorted(run.wait(timeout=600) for run in runs)
    for run in runs:
        run.communicate()
    c.outcomes.append({"case": "two trainings into one --out, 1 s apart", "exit": codes,
                       "outcome": "ok" if codes == [0, 2] else "data_loss",
                       "last_line": ""})
    folder = t / "model.checkpoints"
    (folder / "step-notes").mkdir(parents=True, exist_ok=True)
    notes = folder / "step-notes" / "todo.txt"
    notes.write_text("keep")
    c.case("step-notes/ in the checkpoint folder", ["-m", "embrec", "train", "--data",
                                                    str(c.csv), "--epochs", "2", "--quiet",
                                                    "--allow-degenerate", "--out", str(out)],
           owned=[notes])
    header = t / "header.csv"
    header.write_text("user,item,rating\n")
    for k in range(10):
        c.case(f"header-only CSV #{k}", ["-m", "embrec", "train", "--data", str(header)])
    big = t / "big.csv"
    big.write_text("user,item,rating\n" + "".join(f"{k},{k % 7},{k % 5 + 1}\n"
                                                  for k in range(100)) + "\n5,6,1e39\n")
    c.case("rating 1e39", ["-m", "embrec", "train", "--data", str(big)],
           wrong=lambda run: ":103:" not in run.stderr or "overflow" in run.stderr)
    negative = t / "negative.csv"
    negative.write_text("user,item,rating\n" + "".join(f"{k},{k % 7},{k % 5 + 1}\n"
                                                       for k in range(100)) + "5,6,-3\n")
    c.case("rating -3 among 1-5", ["-m", "embrec", "train", "--data", str(negative),
                                   "--epochs", "1", "--allow-degenerate"],
           wrong=lambda run: "-3" not in run.stderr)


CHECKPOINT = """
import json, shutil, sys
from pathlib import Path
import embrec
from embrec.data.synthetic import generate
from embrec.models import MLPConfig
data = generate(n_users=60, n_items=40, n_ratings=1200, rank=3, seed=7).ratings
model = MLPConfig(embedding_dim=4, hidden=(6,), dropout=(0.1, 0.2))
config = embrec.TrainConfig(epochs=2, batch_size=128, seed=3, step_path="autograd",
                            checkpoint_every=2, learning_rate=float(sys.argv[3]))
folder = Path(sys.argv[1])
if sys.argv[2] == "make":
    embrec.fit(model, data, config, checkpoint_dir=folder)
    raise SystemExit(0)
try:
    embrec.fit(model, data, config, checkpoint_dir=folder, resume=True)
except embrec.errors.EmbrecError as error:
    print("error:", error, file=sys.stderr)
    raise SystemExit(2)
"""


def _checkpoint_cases(c: Cases) -> None:
    t = c.tmp
    made = {lr: t / f"made-{lr}" for lr in ("0.001", "0.01")}
    for lr, folder in made.items():
        _run(["-c", CHECKPOINT, str(folder), "make", lr])

    def edit(key: str, value: Any) -> Callable[[Path], None]:
        def change(where: Path) -> None:
            facts = json.loads((where / "state.json").read_text())
            (where / "state.json").write_text(json.dumps({**facts, key: value}))
        return change

    def latest(where: Path, how: str) -> None:
        pointer = where.parent / "LATEST"
        pointer.unlink()
        pointer.mkdir() if how == "folder" else pointer.write_bytes(os.urandom(64))

    damage: dict[str, Callable[[Path], None]] = {
        **{f"{k}={v!r}": edit(k, v) for k, v in (
            ("epoch", "two"), ("steps", "many"), ("seed", "x"), ("epoch", 10**9),
            ("step", -5))},
        "float epoch_generator (hash updated)": _float_generator,
        "100,000-deep JSON": lambda w: (w / "state.json").write_text("[" * 100_000),
        "LATEST binary": lambda w: latest(w, "binary"),
        "LATEST a folder": lambda w: latest(w, "folder"),
        "state.safetensors from another lr": lambda w: shutil.copy(
            next(made["0.01"].glob("step-*")) / "state.safetensors", w / "state.safetensors"),
        "predictions truncated": lambda w: (w / "rank-0.safetensors").write_bytes(
            (w / "rank-0.safetensors").read_bytes()[:200]),
    }
    for name, change in damage.items():
        folder = t / f"ck-{len(c.outcomes)}"
        shutil.copytree(made["0.001"], folder)
        change(next(folder.glob("step-*")))
        c.case(f"checkpoint {name}", ["-c", CHECKPOINT, str(folder), "resume", "0.001"],
               wrong=lambda run: run.returncode == 0)


def _float_generator(where: Path) -> None:
    from safetensors.torch import load_file, save_file

    from embrec.writers import sha256

    tensors = load_file(where / "state.safetensors")
    tensors["epoch_generator"] = tensors["epoch_generator"].float()
    save_file(tensors, str(where / "state.safetensors"))
    facts = json.loads((where / "state.json").read_text())
    facts["files"]["state.safetensors"] = sha256(where / "state.safetensors")
    (where / "state.json").write_text(json.dumps(facts))


MEMORY = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
import embrec, pyarrow.csv, torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = __import__("time").perf_counter()
embrec.read_ratings(sys.argv[1])
seconds = __import__("time").perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"interpreter_mib": before / 1024, "peak_above_mib": (after - before) / 1024,
                  "seconds": seconds}))
"""


def _blank_lines(tmp: Path) -> dict[str, Any]:
    path = tmp / "blank.csv"
    with path.open("w") as handle:
        handle.write("user,item,rating\n" + "".join(f"{k},{k % 7},{k % 5 + 1}\n"
                                                    for k in range(100)))
        for _ in range(20):
            handle.write("\n" * 10_000_000)
    run = _run(["-c", MEMORY, str(path)])
    path.unlink()
    return {"blank_bytes": 200_000_000, **json.loads(run.stdout)} if run.returncode == 0 \
        else {"error": run.stderr[-500:]}


def _near_limit_bodies(tmp: Path) -> dict[str, Any]:
    folder = tmp / "served"
    _train(folder)
    port = _free_port()
    server = _start(folder, port)
    body = b'{"pairs": [' + b",".join([b'{"user": 1, "item": 2}'] * 360_000) + b"]}"
    assert len(body) < 8 << 20
    answers: list[tuple[int, float]] = []

    def post() -> None:
        import http.client

        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("POST", "/predict", body=body,
                           headers={"content-type": "application/json"})
        answers.append((connection.getresponse().status, time.perf_counter() - started))
        connection.close()

    pinger = _Pinger(port)
    try:
        pinger.start()
        time.sleep(2.0)
        baseline = len(pinger.latencies)
        quiet = sorted(pinger.latencies[5:baseline])
        posts = [threading.Thread(target=post) for _ in range(3)]
        for thread in posts:
            thread.start()
        for thread in posts:
            thread.join()
        time.sleep(0.3)
        pinger.stop.set()
        pinger.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    during = sorted(pinger.latencies[baseline:])
    return {"body_bytes": len(body), "statuses": [a[0] for a in answers],
            "seconds_to_refuse": [round(a[1], 3) for a in answers],
            "health_max_ms": during[-1], "health_p50_ms": during[len(during) // 2],
            "health_samples": len(during), "health_before_max_ms": quiet[-1],
            "health_before_p50_ms": quiet[len(quiet) // 2]}


def main() -> None:
    """Run the cases and figures; write the JSON results."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        cases = Cases(tmp)
        for group in (_tune_cases, _storage_cases, _train_cases, _checkpoint_cases):
            group(cases)
        counts = {kind: sum(o["outcome"] == kind for o in cases.outcomes)
                  for kind in ("traceback", "data_loss", "wrong_result", "ok")}
        results = {"command": "PYTHONPATH=src python3 benchmarks/adversarial_features.py",
                   "counts": counts, "cases": cases.outcomes,
                   "blank_lines": _blank_lines(tmp), "near_limit_bodies": _near_limit_bodies(tmp),
                   "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "cases"}, indent=2))
    for outcome in results["cases"]:
        if outcome["outcome"] != "ok":
            print(outcome)


if __name__ == "__main__":
    main()
