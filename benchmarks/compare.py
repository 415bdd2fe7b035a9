"""Compare embrec's presets with Keras (the notebooks' own code) and Surprise on the same rows.

Usage::

    python benchmarks/compare.py                      # ML-100K, seeds 0 1 2, all tasks
    python benchmarks/compare.py --seeds 0 --tasks default --frameworks embrec surprise
    python benchmarks/compare.py --out benchmarks/results/compare.md
    python benchmarks/compare.py --baseline-python venv/bin/python   # Keras/Surprise live there
    python benchmarks/compare.py --busy   # and again under two busy loops (both recorded)

Each task fixes a split (a seeded ``numpy`` permutation; the last ``int(test_size * n)``
rows are the test set, as ``embrec.split`` does) and every framework trains on exactly
those rows and is scored on exactly the same test rows:

- ``movielens-notebook``: random 80/20; embrec's preset vs the MovieLens notebook's
  Keras network (concat 50+50, dropout 0.3, Dense 70 relu, dropout 0.75, Dense 1;
  Adam; batch 64; 2 epochs).
- ``goodreads-notebook``: random 90/10; embrec's preset vs the Goodreads notebook's
  Keras network (product of 99s, dropout 0.2, Dense(1, relu), Dense(1); Adam;
  batch 32; 10 epochs; validation_split 0.2).
- ``default``: random 90/10; embrec's default preset vs Surprise's ``SVD()``.

Keras and Surprise run only where installed, each in its own subprocess (so
TensorFlow's thread pools never share a process with torch). Fit seconds are the
wall time of the training call only (embrec: all of ``fit``, diagnostics included).
The table is printed and, with ``--out``, written as Markdown with the machine,
versions, load averages and date.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import harness
import numpy as np
import pandas as pd

TASKS = {  # task: (test_size, embrec preset, baseline)
    "movielens-notebook": (0.2, "movielens-notebook", "keras"),
    "goodreads-notebook": (0.1, "goodreads-notebook", "keras"),
    "default": (0.1, "default", "surprise"),
}
DATA = Path(os.environ.get("EMBREC_HOME", Path.home() / ".cache" / "embrec")) / "datasets"


def load_frame(folder: Path) -> pd.DataFrame:
    """Read GroupLens' ``u.data`` (user, item, rating, timestamp; tab-separated)."""
    return pd.read_csv(folder / "u.data", sep="\t", header=None,
                       names=["user", "item", "rating", "timestamp"])


def split_rows(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (train rows, test rows) of the seeded random split embrec.split makes."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(test_size * n)
    return order[: n - n_test], order[n - n_test:]


def rmse(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(predictions, np.float64) - truth) ** 2)))


# ----------------------------------------------------------------------------- workers
def run_embrec(frame: pd.DataFrame, task: str, seed: int,
               threads: int | None = None) -> dict[str, Any]:
    """Fit embrec's preset for ``task`` on the split of ``seed``; score the test rows.

    The clock covers ``fit_preset`` alone, as it covers Keras' ``model.fit`` alone:
    the training package is imported first (``fit_preset`` imports it on first use).
    """
    import embrec.training  # noqa: F401  (imported before the clock starts, as keras is)
    from embrec.data.ratings import Ratings
    from embrec.presets import fit_preset

    test_size, preset, _ = TASKS[task]
    ratings = Ratings.from_arrays(frame.user.to_numpy(), frame.item.to_numpy(),
                                  frame.rating.to_numpy(), scale=(1.0, 5.0))
    train_rows, test_rows = split_rows(len(frame), test_size, seed)
    train = ratings.take(train_rows)
    test = frame.iloc[test_rows]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        rec = fit_preset(preset, train, seed=seed, num_threads=threads)
        seconds = time.perf_counter() - started
    predictions = rec.predict(test.user.to_numpy(), test.item.to_numpy(), on_unknown="mean")
    used = rec.metadata.get("threads")
    return {"framework": f"embrec {preset} ({used} thread{'s' * (used != 1)})",
            "seconds": seconds,
            "rmse": rmse(predictions, test.rating.to_numpy()),
            "threads": used, "step_path": rec.metadata.get("step_path"),
            "warnings": [str(w.message).splitlines()[0] for w in caught]}


def run_keras(frame: pd.DataFrame, task: str, seed: int) -> dict[str, Any]:
    """Run the notebook's own Keras code for ``task`` on the same rows."""
    import keras

    keras.utils.set_random_seed(seed)
    test_size = TASKS[task][0]
    user = frame.user.factorize()[0].astype(np.int64)  # the notebooks index every id
    item = frame.item.factorize()[0].astype(np.int64)
    rating = frame.rating.to_numpy(np.float32)
    tr, te = split_rows(len(frame), test_size, seed)
    n_users, n_items = int(user.max()) + 1, int(item.max()) + 1
    user_in = keras.Input(shape=(1,), dtype="int64")
    item_in = keras.Input(shape=(1,), dtype="int64")
    layers = keras.layers
    if task == "movielens-notebook":
        u = layers.Embedding(n_users, 50)(user_in)
        i = layers.Embedding(n_items, 50)(item_in)
        x = layers.Flatten()(layers.Concatenate()([u, i]))
        x = layers.Dense(70, activation="relu")(layers.Dropout(0.3)(x))
        out = layers.Dense(1)(layers.Dropout(0.75)(x))
        fit_args: dict[str, Any] = {"batch_size": 64, "epochs": 2}
    else:
        u = layers.Embedding(n_users, 99)(user_in)
        i = layers.Embedding(n_items, 99)(item_in)
        x = layers.Flatten()(layers.Dropout(0.2)(layers.Multiply()([u, i])))
        out = layers.Dense(1)(layers.Dense(1, activation="relu")(x))
        fit_args = {"epochs": 10, "validation_split": 0.2}
    model = keras.Model([user_in, item_in], out)
    model.compile(optimizer="adam", loss="mse")
    started = time.perf_counter()
    model.fit([user[tr, None], item[tr, None]], rating[tr, None], verbose=0, **fit_args)
    seconds = time.perf_counter() - started
    predictions = model.predict([user[te, None], item[te, None]], verbose=0, batch_size=4096)
    return {"framework": f"keras {keras.__version__}", "seconds": seconds,
            "rmse": rmse(predictions[:, 0], rating[te]), "params": model.count_params()}


def run_surprise(frame: pd.DataFrame, task: str, seed: int) -> dict[str, Any]:
    """Surprise's ``SVD()`` with its defaults on the same rows."""
    import surprise

    test_size = TASKS[task][0]
    tr, te = split_rows(len(frame), test_size, seed)
    reader = surprise.Reader(rating_scale=(1, 5))
    data = surprise.Dataset.load_from_df(frame.iloc[tr][["user", "item", "rating"]], reader)
    algo = surprise.SVD(random_state=seed)
    started = time.perf_counter()
    algo.fit(data.build_full_trainset())
    seconds = time.perf_counter() - started
    test = frame.iloc[te]
    predictions = [algo.predict(u, i).est for u, i in zip(test.user, test.item, strict=True)]
    return {"framework": f"surprise {surprise.__version__} SVD", "seconds": seconds,
            "rmse": rmse(np.array(predictions), test.rating.to_numpy())}


WORKERS = {"embrec": run_embrec, "keras": run_keras, "surprise": run_surprise}
MODULES = {"embrec": "torch", "keras": "keras", "surprise": "surprise"}


def in_subprocess(framework: str, task: str, seed: int, folder: Path, threads: int | None = None,
                  python: str = sys.executable) -> dict[str, Any] | None:
    """Run one worker in a fresh interpreter; ``None`` when its framework is not installed."""
    probe = subprocess.run([python, "-c", f"import {MODULES[framework]}"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        return None
    command = [python, __file__, "--worker", framework, "--tasks", task,
               "--seeds", str(seed), "--data", str(folder)]
    if threads is not None:
        command += ["--embrec-threads", str(threads)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        print(f"{framework} {task} seed {seed} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    """Facts about the machine (``harness.machine``) and the software the numbers come from."""
    import torch

    return {**harness.machine(), "torch": torch.__version__, "numpy": np.__version__}


def markdown(frame: pd.DataFrame) -> str:
    """Render a DataFrame as a Markdown table (without needing ``tabulate``)."""
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * frame.shape[1]]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def summarise(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per (task, framework): mean and range of RMSE and fit seconds over seeds."""
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["condition", "task", "framework"], sort=False)
    return pd.DataFrame({
        "seeds": grouped.seed.count(),
        "rmse_mean": grouped.rmse.mean().round(4),
        "rmse_min": grouped.rmse.min().round(4),
        "rmse_max": grouped.rmse.max().round(4),
        "fit_s_median": grouped.seconds.median().round(3),
        "fit_s_min": grouped.seconds.min().round(3),
        "load_avg_1m": grouped.load.mean().round(2),
    }).reset_index()


def collect(data: Path, tasks: list[str], seeds: list[int], frameworks: list[str],
            embrec_threads: list[int | None], baseline_python: str,
            busy: bool = False) -> list[dict[str, Any]]:
    """Run every (task, framework, seed) quiet and, with ``busy``, again under two busy loops."""
    rows = []
    for name in ("quiet", "busy") if busy else ("quiet",):
        for task in tasks:
            runs = [("embrec", t) for t in embrec_threads] + [(TASKS[task][2], None)]
            for framework, threads in runs:
                if framework not in frameworks:
                    continue
                for seed in seeds:
                    python = sys.executable if framework == "embrec" else baseline_python
                    with harness.condition(name == "busy"):  # fresh loops for each run
                        load = os.getloadavg()[0]
                        result = in_subprocess(framework, task, seed, data, threads, python)
                    if result is None:
                        print(f"skipped {framework} on {task} (not installed or failed)")
                        break
                    rows.append({"condition": name, "task": task, "seed": seed,
                                 "load": load, **result})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print (and optionally save) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "ml-100k")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--frameworks", nargs="+", default=list(WORKERS), choices=list(WORKERS))
    parser.add_argument("--embrec-threads", nargs="+", type=int, default=[None],
                        help="torch threads for embrec (default: its own choice)")
    parser.add_argument("--busy", action="store_true",
                        help="run everything again with two busy loops on the cores; keep both")
    parser.add_argument("--out", type=Path, help="write a Markdown report here")
    parser.add_argument("--baseline-python", default=sys.executable,
                        help="interpreter with Keras/Surprise installed (e.g. a separate venv)")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        frame = load_frame(args.data)
        extra = {"threads": args.embrec_threads[0]} if args.worker == "embrec" else {}
        print(json.dumps(WORKERS[args.worker](frame, args.tasks[0], args.seeds[0], **extra)))
        return 0
    rows = collect(args.data, args.tasks, args.seeds, args.frameworks, args.embrec_threads,
                   args.baseline_python, args.busy)
    table = summarise(rows)
    print(table.to_string(index=False))
    if args.out:
        facts = machine()
        lines = ["# embrec vs Keras and Surprise on ML-100K", "",
                 *(f"- {key}: {value}" for key, value in facts.items()),
                 f"- load average at the end (1, 5, 15 min): {os.getloadavg()}",
                 f"- command: `python benchmarks/compare.py {' '.join(argv or sys.argv[1:])}`",
                 *(["- busy rows: two `timeout 300 sh -c 'while :; do :; done'` loops ran "
                    "meanwhile (fresh loops for each run)"] if args.busy else []),
                 "", markdown(table), "", "## Runs", "",
                 markdown(pd.DataFrame(rows).drop(columns=["warnings"], errors="ignore")), ""]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
