"""Top-N quality of the `ranking` preset against the yardsticks, and how it was chosen.

Usage::

    python benchmarks/ranking.py search  --out benchmarks/results/ranking_search.md
    python benchmarks/ranking.py ml100k  --out benchmarks/results/ranking_ml100k.md
    python benchmarks/ranking.py synthetic --users 1000000 --items 100000 --ratings 20000000

- ``search``: real ML-100K, the random 80/20 split ``embrec.split(ratings, test_size=0.2,
  seed=0)``; each candidate trains (seed 0) on the training part minus a validation
  tenth carved from it (``embrec.split(train, test_size=0.1, seed=1)``) and is scored on
  that tenth with ``embrec.evaluate`` (full catalogue, training items excluded,
  relevant = rating >= 4). The test rows play no part in choosing.
- ``ml100k``: the same 80/20 split; ``popular``, ``ease`` (its default ``l2``), the
  ``default`` preset and the ``ranking`` preset, training seeds 0, 1, 2, scored on
  the test rows: NDCG@10, precision@10, recall@10, hit rate@10, coverage, fit seconds.
- ``synthetic``: planted synthetic ratings (``embrec.data.synthetic.generate``), a
  90/10 split, the ``ranking`` preset (fit seconds, peak resident memory of the
  process) scored on the test ratings of a sample of users; ``ease``'s refusal shown.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import warnings
from typing import Any

import harness
import numpy as np
import torch

import embrec
from embrec.errors import ConfigError
from embrec.models.ease import EASEConfig
from embrec.models.popular import PopularConfig

METRICS = ["ndcg@10", "precision@10", "recall@10", "hit_rate@10", "coverage"]
EASE_LABEL = f"ease (l2 {EASEConfig().l2:g} on {EASEConfig().values} values, its default)"


def header(title: str) -> list[str]:
    load = os.getloadavg()
    return [f"# {title}", "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with "
            f"other work (load average {load[0]:.1f} at start: timings are noisy); "
            f"torch {torch.__version__}", ""]


def scored(rec: Any, test: Any) -> dict[str, float]:
    result = embrec.evaluate(rec, test, metrics=METRICS)
    return {key: float(result[key]) for key in METRICS}


def timed_fit(build: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = build()
    return rec, time.perf_counter() - started


def row(label: str, values: dict[str, float], seconds: float) -> str:
    return "| " + label + " | " + " | ".join(f"{values[m]:.4f}" for m in METRICS) + \
        f" | {seconds:.2f} |"


TABLE = ["| model | " + " | ".join(METRICS) + " | fit s |", "|---" * (len(METRICS) + 2) + "|"]


def candidates() -> list[tuple[str, dict[str, Any]]]:
    """Settings tried on validation rows: (label, overrides of the ranking preset)."""
    fast = {"batch_size": 4096, "learning_rate": 0.03, "schedule": "onecycle", "epochs": 30}
    return [
        ("in-batch, weight_decay 0.1, batch 1024, lr 0.01, 20 epochs (the preset)", {}),
        ("in-batch, batch 4096, lr 0.03 one-cycle, 30 epochs", fast),
        ("sampled-softmax 256, batch 4096, lr 0.03 one-cycle, 30 epochs",
         {**fast, "loss": "sampled-softmax", "negatives": 256}),
        ("sampled-softmax 256, lr 0.03 one-cycle, 30 epochs",
         {"loss": "sampled-softmax", "negatives": 256, "learning_rate": 0.03,
          "schedule": "onecycle", "epochs": 30}),
        ("in-batch, every rated item a positive", {"positive_threshold": None}),
        ("in-batch, weight_decay 0.05", {"weight_decay": 0.05}),
        ("in-batch, 32 factors", {"embedding_dim": 32}),
        ("rating+in-batch", {"loss": "rating+in-batch"}),
        ("sampled-softmax 1024, batch 4096, lr 0.03 one-cycle, 30 epochs",
         {**fast, "loss": "sampled-softmax", "negatives": 1024}),
        ("sampled-softmax 1024 by popularity, batch 4096, lr 0.03 one-cycle, 30 epochs",
         {**fast, "loss": "sampled-softmax", "negatives": 1024,
          "negative_sampling": "popularity"}),
        ("in-batch, lr 0.03 one-cycle, 30 epochs",
         {"learning_rate": 0.03, "schedule": "onecycle", "epochs": 30}),
        ("in-batch, lr 0.03 one-cycle, 30 epochs, 128 factors",
         {"learning_rate": 0.03, "schedule": "onecycle", "epochs": 30, "embedding_dim": 128}),
    ]


def search(ratings: Any, match: str | None) -> list[str]:
    train, _ = embrec.split(ratings, test_size=0.2, seed=0)
    fit_rows, validation = embrec.split(train, test_size=0.1, seed=1)
    lines = list(TABLE)
    for label, build in (("popular", lambda: embrec.fit(PopularConfig(), fit_rows)),
                         (EASE_LABEL, lambda: embrec.fit(EASEConfig(), fit_rows))):
        rec, seconds = timed_fit(build)
        lines.append(row(label, scored(rec, validation), seconds))
        print(lines[-1], flush=True)
    for label, overrides in candidates():
        if match and match not in label:
            continue
        rec, seconds = timed_fit(lambda o=overrides: embrec.fit_preset(
            "ranking", fit_rows, seed=0, **o))
        lines.append(row(label, scored(rec, validation), seconds))
        print(lines[-1], flush=True)
    return lines


def ml100k(ratings: Any, seeds: list[int]) -> list[str]:
    train, test = embrec.split(ratings, test_size=0.2, seed=0)
    lines = list(TABLE)
    for label, build in (("popular", lambda s: embrec.fit(PopularConfig(), train)),
                         (EASE_LABEL, lambda s: embrec.fit(EASEConfig(), train)),
                         ("default", lambda s: embrec.fit_preset("default", train, seed=s)),
                         ("ranking", lambda s: embrec.fit_preset("ranking", train, seed=s))):
        for seed in seeds if label in ("default", "ranking") else seeds[:1]:
            rec, seconds = timed_fit(lambda b=build, s=seed: b(s))
            lines.append(row(f"{label} (seed {seed})", scored(rec, test), seconds))
            print(lines[-1], flush=True)
    return lines


def synthetic(args: argparse.Namespace) -> list[str]:
    from embrec.data.synthetic import generate

    data = generate(n_users=args.users, n_items=args.items, n_ratings=args.ratings,
                    seed=0).ratings
    train, test = embrec.split(data, test_size=0.1, seed=0)
    users = np.random.default_rng(0).choice(train.n_users, args.eval_users, replace=False)
    sample = test.take(np.flatnonzero(np.isin(test.users.id_of(test.user),
                                              train.users.id_of(users))))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    lines = [f"- data: {args.users:,} users x {args.items:,} items, {len(train):,} training "
             f"ratings; peak resident memory before fit {before:.2f} GiB", ""]
    try:
        embrec.fit(EASEConfig(), train)
    except ConfigError as error:
        lines += ["`ease` refuses:", "", "```", str(error), "```", ""]
    overrides = {"epochs": args.epochs} if args.epochs else {}
    rec, seconds = timed_fit(lambda: embrec.fit_preset("ranking", train, seed=0, **overrides))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    popular, pop_seconds = timed_fit(lambda: embrec.fit(PopularConfig(), train))
    lines += [f"Scored on the test ratings of {args.eval_users:,} random users "
              f"({len(sample):,} ratings); `ranking` peak resident memory {peak:.2f} GiB"
              f"{' (' + str(args.epochs) + ' epochs)' if args.epochs else ''}.", "",
              *TABLE, row("popular", scored(popular, sample), pop_seconds),
              row("ranking (seed 0)", scored(rec, sample), seconds)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("search", "ml100k", "synthetic"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--match", help="search only settings whose label contains this")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--ratings", type=int, default=20_000_000)
    parser.add_argument("--epochs", type=int, help="override the preset's epochs (synthetic)")
    parser.add_argument("--eval-users", type=int, default=10_000)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.mode == "synthetic":
        lines = header("`ranking` on a large synthetic catalogue") + synthetic(args)
    else:
        ratings = embrec.load_dataset("ml-100k", progress=False)
        if args.mode == "search":
            lines = header("`ranking` preset search: ML-100K validation rows carved from the "
                           "80/20 training part") + search(ratings, args.match)
        else:
            lines = header("Top-N on ML-100K, random 80/20 split (seed 0), test rows") + \
                ml100k(ratings, args.seeds)
    harness.publish([*lines, ""], args.out)


if __name__ == "__main__":
    main()
