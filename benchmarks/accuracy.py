"""Accuracy on ML-100K: every setting chosen on validation rows, each test set scored once.

Usage::

    python benchmarks/accuracy.py --out benchmarks/results/accuracy.md
    python benchmarks/accuracy.py --quick      # one setting per model: a smoke run

Protocol (embrec's, as ``benchmarks/ranking.py``): real ML-100K read by the data set
registry; ratings: the random 90/10 split ``embrec.split(ratings, test_size=0.1,
seed=0)``, top-N: the 80/20 split ``test_size=0.2``. On each, the training part is
split again, ``embrec.split(train, test_size=0.1, seed=1)``, into a fitting part and
validation rows; every setting of a candidate's grid is fitted (seed 0) on the fitting
part and scored on the validation rows (RMSE, or NDCG@10 with ``embrec.evaluate``'s
full-catalogue protocol), the best is fitted again on the whole training part and
scored on the test rows, once. A blend gets the chosen settings of its components and
carves its own validation rows from the training part (``embrec.blend``). The test
rows reach nothing but the final ``evaluate`` calls: that is the proof by construction.

Adding a model is one line in ``RATING`` or ``RANKING``: a label and its grid of
(model config, train config or None for the model's default training) pairs; a blend
is one line in ``RATING_BLENDS`` or ``RANKING_BLENDS`` naming candidates' labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
import warnings
from dataclasses import dataclass
from typing import Any

import harness
import torch

import embrec
from embrec.models import AutoRecConfig, BayesianFMConfig, EASEConfig, EDLAEConfig
from embrec.presets import default_training

Setting = tuple[Any, Any]  # (model config, train config or None)


def preset(name: str) -> Setting:
    return (embrec.PRESETS[name].model, embrec.PRESETS[name].train)


@dataclass(frozen=True)
class Candidate:
    label: str
    grid: list[Setting]


RATING = [
    Candidate("default preset (biased MF)", [preset("default")]),
    Candidate("I-AutoRec", [(AutoRecConfig(l2=l2), None) for l2 in (200.0, 100.0)]),
    Candidate("U-AutoRec", [(AutoRecConfig(based="user"), None)]),
    Candidate("Bayesian FM (ids, rated items, raters, side features)",
              [(BayesianFMConfig(sweeps=100, burn_in=20, priors=p), None)
               for p in ("shared", "group")]),
]
RATING_BLENDS = [
    ("Bayesian FM + I-AutoRec", ["Bayesian FM (ids, rated items, raters, side features)",
                                 "I-AutoRec"]),
    ("default + I-AutoRec", ["default preset (biased MF)", "I-AutoRec"]),
    ("default + I-AutoRec + U-AutoRec", ["default preset (biased MF)", "I-AutoRec", "U-AutoRec"]),
]

RANKING = [
    Candidate("ranking preset (biased MF, in-batch softmax)", [preset("ranking")]),
    Candidate("EASE", [(EASEConfig(l2=l2), None) for l2 in (2000.0, 5000.0, 10_000.0, 20_000.0)]),
    Candidate("EDLAE", [(EDLAEConfig(l2=l2, dropout=p), None) for l2, p in itertools.product(
        (2000.0, 5000.0, 10_000.0, 20_000.0), (0.1, 0.25, 0.4, 0.55))]),
    Candidate("I-AutoRec", [(AutoRecConfig(), None)]),
]
RANKING_BLENDS = [
    ("EDLAE + ranking preset", ["EDLAE", "ranking preset (biased MF, in-batch softmax)"]),
    ("EDLAE + ranking preset + I-AutoRec",
     ["EDLAE", "ranking preset (biased MF, in-batch softmax)", "I-AutoRec"]),
]


def fitted(setting: Setting, train: embrec.Ratings) -> tuple[Any, float]:
    model, config = setting
    config = dataclasses.replace(config or default_training(model), seed=0)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = embrec.fit(model, train, config)
    return rec, time.perf_counter() - started


def score(rec: Any, rows: embrec.Ratings, metric: str) -> float:
    return float(embrec.evaluate(rec, rows, metrics=[metric])[metric])


def describe(setting: Setting) -> str:
    model, _ = setting
    fields = {k: v for k, v in model.to_dict().items() if k in CHOSEN.get(model.name, ())}
    return f"{model.name} " + ", ".join(f"{k}={v:g}" for k, v in fields.items())


CHOSEN = {"autorec": ("l2",), "ease": ("l2",), "edlae": ("l2", "dropout")}


def choose(candidate: Candidate, fit_part: Any, validation: Any, metric: str) -> dict[str, Any]:
    """Fit every setting on ``fit_part``; keep the best on ``validation``."""
    tried = []
    for setting in candidate.grid:
        rec, _ = fitted(setting, fit_part)
        tried.append((score(rec, validation, metric), setting))
        print(f"  {candidate.label}: {describe(setting)}: validation {metric} "
              f"{tried[-1][0]:.4f}", flush=True)
    pick = (min if metric == "rmse" else max)(tried, key=lambda t: t[0])
    return {"setting": pick[1], "validation": pick[0], "tried": len(tried)}


def task(ratings: Any, test_size: float, metric: str, candidates: list[Candidate],
         blends: list[tuple[str, list[str]]], target: str) -> list[dict[str, Any]]:
    train, test = embrec.split(ratings, test_size=test_size, seed=0)
    fit_part, validation = embrec.split(train, test_size=0.1, seed=1)
    rows, chosen = [], {}
    for candidate in candidates:
        choice = chosen[candidate.label] = choose(candidate, fit_part, validation, metric)
        rec, seconds = fitted(choice["setting"], train)
        rows.append({"model": candidate.label, "chosen": describe(choice["setting"]),
                     "validation": choice["validation"], "test": score(rec, test, metric),
                     "fit s": seconds})
        print(rows[-1], flush=True)
    for label, parts in blends:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = embrec.blend([chosen[p]["setting"] for p in parts], train, target=target,
                               seed=0)
        seconds = time.perf_counter() - started
        report = rec.model.report
        weights = ", ".join(f"{w:.2f}" for w in report["weights"])
        rows.append({"model": f"blend: {label}", "chosen": f"weights {weights}",
                     "validation": report.get("blend_validation_rmse",
                                              report.get("blend_validation_ndcg")),
                     "test": score(rec, test, metric), "fit s": seconds})
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict[str, Any]], metric: str) -> list[str]:
    lines = [f"| model | chosen on validation | validation {metric} | test {metric} | fit s |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['chosen']} | {r['validation']:.4f} | **{r['test']:.4f}** | "
              f"{r['fit s']:.1f} |" for r in rows]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="markdown file to write")
    parser.add_argument("--quick", action="store_true", help="first setting of each grid only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--tasks", nargs="+", choices=("rating", "ranking"),
                        default=["rating", "ranking"], help="which tables to measure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        for candidate in RATING + RANKING:
            del candidate.grid[1:]
    ratings = embrec.load_dataset("ml-100k", progress=False)
    started = time.perf_counter()
    rating = task(ratings, 0.1, "rmse", RATING, RATING_BLENDS, "rating") \
        if "rating" in args.tasks else []
    ranking = task(ratings, 0.2, "ndcg@10", RANKING, RANKING_BLENDS, "ranking") \
        if "ranking" in args.tasks else []
    facts = harness.machine()
    protocol = "Protocol" + __doc__.split("Protocol", 1)[1].split("Adding a model")[0].rstrip()
    lines = ["# Accuracy on ML-100K: settings chosen on validation rows, test scored once", "",
             f"- {facts['finished']}; {facts['cpu']}, {facts['cores']} cores shared with other "
             f"work (fit seconds are noisy); Python {facts['python']}, torch {torch.__version__}"
             f", {args.threads} torch thread(s); total {time.perf_counter() - started:.0f} s",
             f"- command: `{harness.command_line()}`", "", protocol, "",
             "## Ratings: 90/10 split, RMSE", "", *table(rating, "rmse"), "",
             "## Top-N: 80/20 split, NDCG@10", "", *table(ranking, "ndcg@10"), ""]
    harness.publish(lines, args.out)


if __name__ == "__main__":
    main()
