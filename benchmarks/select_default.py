"""Select the ``default`` preset on validation rows carved from the training data (never test rows).

For each split seed (ML-100K, random 90/10 with ``numpy.random.default_rng(seed)``, as
``embrec.split`` makes it), the training part is cut again: a seeded random 10% of its rows
become validation rows. Every setting of the grid trains on the rest and is scored on those
validation rows; the test rows are never touched. The setting with the lowest mean validation
RMSE over the split seeds wins; the table of every setting is written to ``--out``.

Usage::

    python benchmarks/select_default.py --out benchmarks/results/default.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

GRID = {
    "optimizer": ["adam"],
    "embedding_dim": [32, 64],
    "learning_rate": [0.005, 0.01],
    "weight_decay": [0.08, 0.12],
    "bias_weight_decay": [0.0, 0.02],
    "epochs": [12, 20],
}
OPTIMIZERS = {  # the best adam setting, re-run with each row-sparse optimiser at a few rates
    "adagrad": [0.05, 0.1, 0.2],
    "rowwise-adagrad": [0.05, 0.1, 0.2],
    "sgd": [1.0, 3.0],
}
"""A first, wider pass (weight decay 0.05-0.12, bias decay 0-0.05, 32 factors) found
0.9097-0.9115 for every setting with weight decay 0.08-0.12: the grid is centred there."""
FIXED = {"batch_size": 2048, "schedule": "onecycle", "init_std": 0.01, "num_threads": 1}


def score(setting: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """Mean validation RMSE of ``setting`` over the split seeds, and its fit seconds."""
    import embrec
    from embrec.models import BiasedMFConfig

    ratings = embrec.load_dataset("ml-100k")
    rmses, seconds = [], []
    diverged = False
    for seed in seeds:
        train, _test = embrec.split(ratings, test_size=0.1, seed=seed)
        fit_part, held = embrec.split(train, test_size=0.1, seed=100 + seed)
        model = BiasedMFConfig(embedding_dim=setting["embedding_dim"], init_std=FIXED["init_std"])
        config = embrec.TrainConfig(
            optimizer=setting["optimizer"], epochs=setting["epochs"],
            batch_size=FIXED["batch_size"],
            learning_rate=setting["learning_rate"], weight_decay=setting["weight_decay"],
            bias_weight_decay=setting["bias_weight_decay"], schedule=FIXED["schedule"],
            num_threads=FIXED["num_threads"], seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rec = embrec.fit(model, fit_part, config)
            except embrec.TrainingError:  # diverged: this setting is out
                diverged = True
                break
            rmses.append(float(embrec.evaluate(rec, held, metrics=["rmse"])["rmse"]))
        seconds.append(rec.metadata["fit_seconds"])
    rmse = float("inf") if diverged else float(np.mean(rmses))
    return {**setting, "validation_rmse": rmse, "fit_s": float(np.median(seconds or [0.0]))}


def cached(setting: dict[str, Any], done: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """The row for ``setting`` from an earlier run's JSON lines (``--cache``), or a new score."""
    for row in done:
        if all(row.get(k) == v for k, v in setting.items()):
            return row
    return score(setting, seeds)


def main(argv: list[str] | None = None) -> int:
    """Run the grid, print the best settings and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cache", type=Path, help="JSON lines of an earlier run to reuse")
    args = parser.parse_args(argv)
    done = [json.loads(line) for line in args.cache.read_text().splitlines()
            if line.startswith("{")] if args.cache else []
    keys = list(GRID)
    rows = []
    started = time.time()
    for values in itertools.product(*(GRID[k] for k in keys)):
        rows.append(cached(dict(zip(keys, values, strict=True)), done, args.seeds))
        print(json.dumps(rows[-1]), flush=True)
    best = min(rows, key=lambda r: r["validation_rmse"])
    for optimizer, rates in OPTIMIZERS.items():
        for rate in rates:
            setting = {**{k: best[k] for k in keys}, "optimizer": optimizer, "learning_rate": rate}
            rows.append(cached(setting, done, args.seeds))
            print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: r["validation_rmse"])
    lines = ["# `default` preset: selection on validation rows carved from the training data", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - started:.0f} s in all",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, load average "
             f"{os.getloadavg()[0]:.1f} (fit seconds are noisy when the load is high)",
             f"- command: `python benchmarks/select_default.py {' '.join(argv or sys.argv[1:])}`",
             "- data: ML-100K; for each split seed s in "
             f"{args.seeds}, the training part of the random 90/10 split (seed s) is split again "
             "90/10 (seed 100 + s); settings train on the first part and are scored on the second",
             f"- fixed: biased MF, {json.dumps(FIXED)}; row-sparse updates; after the grid, "
             "the best setting is re-run with each other row-sparse optimiser", "",
             "| " + " | ".join([*keys, "validation RMSE", "fit s"]) + " |",
             "|" + "---|" * (len(keys) + 2)]
    for r in rows:
        cells = [*(str(r[k]) for k in keys), f"{r['validation_rmse']:.4f}", f"{r['fit_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines[:12 + 5]))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
