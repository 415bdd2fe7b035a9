"""embrec's per-rating kernels against LIBMF, LensKit and Surprise on the same rows, quiet and busy.

Usage::

    python benchmarks/kernels.py --peer-python /work/peers/bin/python \
        --out benchmarks/results/kernels.md
    python benchmarks/kernels.py --tasks small --conditions quiet     # a quick look

The peers live in their own virtualenv (``python -m venv peers && peers/bin/pip install
torch==2.13.0 libmf lenskit scikit-surprise``) and run through ``benchmarks/peers.py``.

Tasks (each writes its split once to ``benchmarks/out/<task>-split.npz``; every system
trains on exactly those rows and is scored on exactly those test rows):

- ``big``: the ML-10M-shaped synthetic set, ``generate(n_users=69_878, n_items=10_677,
  n_ratings=10_000_000, seed=0)``, random 90/10 with ``numpy.random.default_rng(0)`` (first
  90% of the permutation train): embrec's ``default`` preset on every core; LIBMF (k=32, 20
  iterations, 2 threads) at lambda 0.01, 0.05 and 0.1; LensKit's biased ALS (50 factors,
  10 iterations, 2 threads).
- ``compile``: the kernel's first call in a process with an empty Numba cache (compile) and
  in a new process on that cache (load), and the time to import the kernel module (Numba).
- ``small``: ML-100K's ``u.data``, random 90/10 with seed 0: ``default``; LensKit's biased
  ALS; Surprise's ``SVD()``; LIBMF at lambda 0.1.

Each measurement is a fresh process: fit seconds are the training call alone (embrec: all of
``fit``, set-up and diagnostics included), peak memory is the process's maximum resident
set. ``busy`` runs the same under two ``while :; do :; done`` loops (one per core).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np

OUT = Path(__file__).parent / "out"
BIG = {"n_users": 69_878, "n_items": 10_677, "n_ratings": 10_000_000, "seed": 0}
PEERS = {
    "big": [("libmf", {"factors": 32, "iterations": 20, "lambda": lam}) for lam in
            (0.01, 0.05, 0.1)] + [("lenskit-als", {"factors": 50, "iterations": 10})],
    "small": [("lenskit-als", {"factors": 50, "iterations": 10}), ("surprise-svd", {}),
              ("libmf", {"factors": 32, "iterations": 20, "lambda": 0.1})],
}


def write_split(task: str) -> Path:
    """Write the task's train/test rows (raw ids) once; return the file."""
    path = OUT / f"{task}-split.npz"
    if path.exists():
        return path
    if task == "big":
        from embrec.data.synthetic import generate

        ratings = generate(**BIG).ratings
        user, item = ratings.users.ids[ratings.user], ratings.items.ids[ratings.item]
        rating = ratings.rating
    else:
        import pandas as pd

        folder = Path(os.environ.get("EMBREC_HOME", Path.home() / ".cache" / "embrec"))
        frame = pd.read_csv(folder / "datasets" / "ml-100k" / "u.data", sep="\t", header=None,
                            names=["user", "item", "rating", "timestamp"])
        user, item, rating = (frame[c].to_numpy() for c in ("user", "item", "rating"))
    order = np.random.default_rng(0).permutation(len(rating))
    cut = len(order) - int(0.1 * len(order))
    parts = {"train": order[:cut], "test": order[cut:]}
    OUT.mkdir(exist_ok=True)
    np.savez(path, **{f"{side}_{name}": column[rows] for side, rows in parts.items()
                      for name, column in (("user", np.asarray(user, np.int64)),
                                           ("item", np.asarray(item, np.int64)),
                                           ("rating", np.asarray(rating, np.float32)))})
    return path


def embrec_worker(split: str, preset: str) -> None:
    """Train ``preset`` on the split's training rows; print one JSON line."""
    import resource

    import embrec
    import embrec.training
    from embrec.presets import fit_preset

    arrays = np.load(split)
    train = embrec.Ratings.from_arrays(arrays["train_user"], arrays["train_item"],
                                       arrays["train_rating"], scale=(1.0, 5.0))
    test = embrec.Ratings.from_arrays(arrays["test_user"], arrays["test_item"],
                                      arrays["test_rating"], scale=(1.0, 5.0))
    started = time.perf_counter()
    rec = fit_preset(preset, train, seed=0)
    seconds = time.perf_counter() - started
    scores = embrec.evaluate(rec, test)
    print(json.dumps({"system": f"embrec {preset}", "fit_seconds": seconds,
                      "rmse": scores["rmse"], "n_test": int(scores["n"]),
                      "threads": rec.metadata.get("threads"),
                      "trainer": rec.metadata.get("step_path"),
                      "epoch_seconds": [round(h["seconds"], 2) for h in rec.history],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def compile_worker() -> None:
    """Time importing the kernel module and its first call (compile, or load from the cache)."""
    started = time.perf_counter()
    from embrec.kernels.dot import biased_mf

    imported = time.perf_counter()
    width, n = 9, 10
    rows = [np.zeros((4, 3 * width), np.float32) for _ in range(2)]
    one = [np.zeros(1, np.float32) for _ in range(3)]
    biased_mf(np.zeros(n, np.int64), np.zeros(n, np.int64), np.ones(n, np.float32), 0, n,
              np.full(n, 0.01), *rows, *one, np.array([3, 3]), np.zeros(8), 0,
              np.zeros(n, np.float32))
    called = time.perf_counter()
    print(json.dumps({"import_seconds": imported - started,
                      "kernel_seconds": called - imported}))


def compile_times(busy: bool) -> list[dict[str, Any]]:
    """A cold cache (compile), then a new process on the warm cache (load)."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for state in ("cold cache: compile", "warm cache: load"):
            with harness.condition(busy):
                result = harness.run_json([sys.executable, str(Path(__file__).resolve()),
                                           "--compile-worker"], env={"NUMBA_CACHE_DIR": cache})
            rows.append({"task": "compile", "condition": "busy" if busy else "quiet",
                         "system": state, "fit_seconds": result.get("kernel_seconds"),
                         "import_seconds": result.get("import_seconds"),
                         "error": result.get("error")})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def measure(task: str, peer_python: str | None, busy: bool) -> list[dict[str, Any]]:
    split = str(write_split(task))
    here = Path(__file__).resolve()
    runs: list[tuple[list[str], str]] = [([sys.executable, str(here), "--worker", split,
                                           "default"], "embrec")]
    if peer_python:
        for system, params in PEERS[task]:
            runs.append(([peer_python, str(here.parent / "peers.py"), system, split,
                          "--params", json.dumps(params), "--threads", "2"], system))
    rows = []
    for command, name in runs:
        with harness.condition(busy):
            result = harness.run_json(command, timeout=3600)
        result.setdefault("system", name)
        result.update({"task": task, "condition": "busy" if busy else "quiet"})
        print(json.dumps(result), file=sys.stderr, flush=True)
        rows.append(result)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["compile", "small", "big"],
                        choices=["compile", "small", "big"])
    parser.add_argument("--conditions", nargs="+", default=["quiet", "busy"],
                        choices=["quiet", "busy"])
    parser.add_argument("--peer-python", help="the Python of the peers' virtualenv")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", nargs=2, metavar=("SPLIT", "PRESET"), help=argparse.SUPPRESS)
    parser.add_argument("--compile-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker or args.compile_worker:
        embrec_worker(*args.worker) if args.worker else compile_worker()
        return 0
    started, rows = time.time(), []
    for task in args.tasks:
        for condition in args.conditions:
            busy = condition == "busy"
            rows += compile_times(busy) if task == "compile" else \
                measure(task, args.peer_python, busy)
    for row in rows:
        row["params"] = json.dumps(row.get("params", "")) if "params" in row else ""
    lines = ["# Per-rating kernels vs LIBMF, LensKit and Surprise", "",
             f"- {json.dumps(harness.machine())}",
             f"- command: `{harness.command_line()}`; {time.time() - started:.0f} s in all",
             f"- load average at the end: {harness.load():.1f}", "",
             harness.table(rows, ["task", "condition", "system", "params", "threads",
                                  "fit_seconds", "import_seconds", "rmse", "peak_rss_mib",
                                  "epoch_seconds", "error"])]
    harness.publish(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
