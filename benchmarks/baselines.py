"""Top-N yardsticks: popular, EASE and the default preset on ML-100K, popular at 1M x 100k.

Usage::

    python benchmarks/baselines.py                                # everything
    python benchmarks/baselines.py --skip-synthetic
    python benchmarks/baselines.py --synthetic-users 200000 --synthetic-items 20000

ML-100K: random 80/20 split (``embrec.split(seed=0)``, i.e. the rows of
``numpy.random.default_rng(0).permutation(n)``), embrec's evaluate protocol
(full catalogue, training items excluded, relevant = test rating >= 4).
EASE's ``l2`` is chosen on validation rows carved from the training part only
(``embrec.split(train, seed=1)``, 80/20), never on test rows; the search is
recorded. ``default`` is ``embrec.fit_preset("default", train, seed=s)`` for
seeds 0, 1, 2. Fit seconds are the median of three fits for the closed-form
models (deterministic) and per seed for ``default``.

Synthetic: ``embrec.generate`` with 1M users and 100k items; ``popular`` fit
seconds and its peak memory above the process's memory before the fit
(resident set size sampled every 5 ms), its ranking metrics on a random 80/20
split, and the message with which ``ease`` refuses the catalogue.

Writes ``benchmarks/results/baselines.md`` and ``baselines.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import embrec
from embrec.errors import ConfigError
from embrec.models import EASEConfig, PopularConfig

RESULTS = Path(__file__).parent / "results"
METRICS = ("ndcg@10", "precision@10", "recall@10", "hit_rate@10", "coverage")
L2_GRID = {  # rating-valued X has a ~13x larger Gram matrix (mean squared star ~13)
    "binary": (10.0, 50.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1000.0, 1500.0, 2000.0, 5000.0),
    "rating": (500.0, 1000.0, 2000.0, 5000.0, 8000.0, 10000.0, 15000.0, 20000.0, 50000.0),
}


def _ranking(rec: embrec.Recommender, test: embrec.Ratings) -> dict[str, float]:
    result = embrec.evaluate(rec, test, metrics=METRICS)
    return {key: float(result[key]) for key in METRICS}


def _timed(config: Any, train: embrec.Ratings, repeats: int = 3) -> tuple[Any, float]:
    seconds, rec = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        rec = embrec.fit(config, train, embrec.TrainConfig(device="cpu"))
        seconds.append(time.perf_counter() - started)
    return rec, statistics.median(seconds)


def choose_l2(train: embrec.Ratings) -> tuple[EASEConfig, list[dict[str, Any]]]:
    """Grid-search EASE's ``l2`` (binary and rating-valued X) on validation rows of ``train``."""
    inner, validation = embrec.split(train, test_size=0.2, seed=1)
    rows = []
    for values, grid in L2_GRID.items():
        for l2 in grid:
            config = EASEConfig(l2=l2, values=values)
            rec = embrec.fit(config, inner, embrec.TrainConfig(device="cpu"))
            rows.append({"values": values, "l2": l2, **_ranking(rec, validation)})
    best = max(rows, key=lambda row: row["ndcg@10"])
    return EASEConfig(l2=best["l2"], values=best["values"]), rows


def ml100k() -> dict[str, Any]:
    """The ML-100K table: popular (count and damped mean), EASE, default x 3 seeds."""
    ratings = embrec.load_dataset("ml-100k")
    train, test = embrec.split(ratings, test_size=0.2, seed=0)
    ease, search = choose_l2(train)
    rows = []
    for label, config in (("popular", PopularConfig()),
                          ("popular (by mean, damping 10)", PopularConfig(by="mean")),
                          (f"ease (l2={ease.l2:g}, {ease.values})", ease)):
        rec, seconds = _timed(config, train)
        rows.append({"model": label, "seed": "-", **_ranking(rec, test), "fit_s": seconds})
    for seed in (0, 1, 2):
        started = time.perf_counter()
        rec = embrec.fit_preset("default", train, seed=seed, device="cpu")
        seconds = time.perf_counter() - started
        rmse = float(embrec.evaluate(rec, test)["rmse"])
        rows.append({"model": "default", "seed": seed, **_ranking(rec, test), "fit_s": seconds,
                     "rmse": rmse})
    return {"n_train": len(train), "n_test": len(test), "search": search, "rows": rows,
            "chosen": {"l2": ease.l2, "values": ease.values}}


class PeakRSS:
    """Samples the process's resident set size in a thread; ``peak - start`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self.start = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self.start
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def synthetic(n_users: int, n_items: int, n_ratings: int, eval_users: int) -> dict[str, Any]:
    """Popular's fit time, peak memory and metrics at scale; EASE's refusal.

    With ``eval_users`` > 0 the ranking metrics are computed on the test rows
    of that many test users drawn at random (``default_rng(0)``): each metric is
    a mean over users, so this estimates the full figure at a fraction of the
    time. 0 evaluates every test row.
    """
    started = time.perf_counter()
    ratings = embrec.generate(n_users=n_users, n_items=n_items, n_ratings=n_ratings,
                              seed=0).ratings
    generate_s = time.perf_counter() - started
    train, test = embrec.split(ratings, test_size=0.2, seed=0)
    del ratings
    with PeakRSS() as memory:
        started = time.perf_counter()
        rec = embrec.fit(PopularConfig(), train, embrec.TrainConfig(device="cpu"))
        fit_s = time.perf_counter() - started
    print(f"synthetic: generate {generate_s:.1f} s, popular fit {fit_s:.2f} s, peak "
          f"{(memory.peak - memory.start) / 2**20:,.0f} MiB", flush=True)
    users = np.unique(test.user)
    if eval_users > 0:
        users = np.random.default_rng(0).choice(users, min(eval_users, len(users)),
                                                replace=False)
    sample = test.take(np.isin(test.user, users), reindex=False) if eval_users > 0 else test
    started = time.perf_counter()
    metrics = _ranking(rec, sample)
    evaluate_s = time.perf_counter() - started
    try:
        embrec.fit(EASEConfig(), train, embrec.TrainConfig(device="cpu"))
        refusal = "(no refusal: ease fitted)"
    except ConfigError as error:
        refusal = str(error)
    return {"n_users": n_users, "n_items": n_items, "n_ratings": n_ratings,
            "measured_at": _machine().split("; ", 1)[1],
            "n_train": len(train), "n_test": len(test), "eval_users": len(users),
            "n_eval": len(sample), "generate_s": generate_s,
            "fit_s": fit_s, "peak_bytes": memory.peak - memory.start, "evaluate_s": evaluate_s,
            **metrics, "ease_refusal": refusal}


def ease_memory(n_users: int = 20_000, n_items: int = 6_000) -> dict[str, Any]:
    """EASE's peak memory while fitting, per item-item entry (the ``max_items`` message's basis)."""
    train = embrec.generate(n_users=n_users, n_items=n_items, n_ratings=1_000_000,
                            seed=0).ratings
    with PeakRSS() as memory:
        started = time.perf_counter()
        embrec.fit(EASEConfig(), train, embrec.TrainConfig(device="cpu"))
        fit_s = time.perf_counter() - started
    entries = float(train.n_items) ** 2
    return {"n_users": train.n_users, "n_items": train.n_items, "fit_s": fit_s,
            "peak_bytes": memory.peak - memory.start,
            "bytes_per_entry": (memory.peak - memory.start) / entries}


def _machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads; load average {load}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return lines


def report(ml: dict[str, Any] | None, syn: dict[str, Any] | None,
           memory: dict[str, Any] | None) -> str:
    lines = ["# Top-N yardsticks: popular, EASE, default", "",
             "`python benchmarks/baselines.py`; " + _machine(), ""]
    if ml is not None:
        lines += ["## ML-100K, random 80/20 (`embrec.split(seed=0)`), full catalogue, "
                  "relevant = rating >= 4", "",
                  f"{ml['n_train']:,} training rows, {ml['n_test']:,} test rows.", ""]
        lines += _table(ml["rows"], ["model", "seed", *METRICS, "fit_s", "rmse"])
        lines += ["", "### EASE's l2, chosen on validation rows of the training part",
                  "", "Training rows split again 80/20 (`embrec.split(train, seed=1)`); "
                  f"chosen: l2={ml['chosen']['l2']:g}, values={ml['chosen']['values']} "
                  "(highest validation NDCG@10). Test rows were not used.", ""]
        lines += _table(ml["search"], ["values", "l2", *METRICS])
    if syn is not None:
        lines += ["", f"## Synthetic: {syn['n_users']:,} users x {syn['n_items']:,} items, "
                  f"{syn['n_ratings']:,} ratings (`embrec.generate(seed=0)`), random 80/20", "",
                  f"Measured {syn.get('measured_at', 'in this run')}.", "",
                  f"- generate: {syn['generate_s']:.1f} s",
                  f"- `popular` fit: {syn['fit_s']:.2f} s, peak memory "
                  f"{syn['peak_bytes'] / 2**20:,.0f} MiB above the process before the fit",
                  f"- `popular` evaluate: {syn.get('n_eval', syn['n_test']):,} of "
                  f"{syn['n_test']:,} test rows, {syn['evaluate_s']:.1f} s", ""]
        lines += _table([{"model": "popular", **syn}], ["model", *METRICS])
        lines += ["", "`ease` refuses the catalogue before allocating anything:", "", "```",
                  syn["ease_refusal"], "```"]
    if memory is not None:
        lines += ["", f"## EASE's memory: {memory['n_users']:,} users x {memory['n_items']:,} "
                  "items (synthetic, 1M ratings)", "",
                  f"Fit {memory['fit_s']:.1f} s; peak {memory['peak_bytes'] / 2**20:,.0f} MiB "
                  f"above the process before the fit = {memory['bytes_per_entry']:.1f} bytes per "
                  "item-item entry (`EASEConfig.max_items`' message assumes 28)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-ml100k", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--synthetic-users", type=int, default=1_000_000)
    parser.add_argument("--synthetic-items", type=int, default=100_000)
    parser.add_argument("--synthetic-ratings", type=int, default=10_000_000)
    parser.add_argument("--synthetic-eval-users", type=int, default=0,
                        help="evaluate on the test rows of this many random test users "
                        "(0: all; all took 39 min on a 2-core machine under load)")
    parser.add_argument("--reuse-synthetic", type=Path, metavar="JSON",
                        help="take the synthetic section from an earlier baselines.json")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "baselines.md")
    args = parser.parse_args()
    np.seterr(all="ignore")
    ml = None if args.skip_ml100k else ml100k()
    if args.reuse_synthetic:
        syn = json.loads(args.reuse_synthetic.read_text())["synthetic"]
        try:  # the refusal is a pure function of the catalogue size: state today's wording
            EASEConfig().build(syn["n_users"], syn["n_items"])
        except ConfigError as error:
            syn["ease_refusal"] = str(error)
    else:
        syn = None if args.skip_synthetic else synthetic(
            args.synthetic_users, args.synthetic_items, args.synthetic_ratings,
            args.synthetic_eval_users)
    memory = None if args.skip_memory else ease_memory()
    text = report(ml, syn, memory)
    print(text)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"ml100k": ml, "synthetic": syn,
                                                         "ease_memory": memory},
                                                        indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
