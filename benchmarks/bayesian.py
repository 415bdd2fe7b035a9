"""The Gibbs-sampled factorization model on ML-100K 90/10: ids, + implicit/flipped, + features.

Usage::

    python benchmarks/bayesian.py                   # everything (~10 min on 2 busy cores)
    python benchmarks/bayesian.py --skip-myfm --sweeps 60

Rows: ``train, test = embrec.split(ml100k, test_size=0.1, seed=0)``. Settings are
chosen on validation rows carved from ``train`` only (``embrec.split(train,
test_size=0.1, seed=1)``): per variant, the prior sharing (``group``: a prior per
group of features, or ``shared``) with the lower validation RMSE. The chosen
setting is then fitted on all of ``train`` and each test set is scored once.
myFM (``myfm`` 0.4.0, Rendle's MCMC FM in C++, ``MyFMRegressor(rank=10)``) is
run as a reference on the very same rows and feature groups, with the same
sweeps and burn-in; its settings are not tuned.

Cold start: 10% of users (``default_rng(0)``) are held out entirely; the
features variant's chosen setting is fitted on the others' ratings and scored
on all ratings of the held-out users: side features against the global mean
and against the damped item mean (``evaluate``'s fallback for unknown users).

Writes ``benchmarks/results/bayesian.md`` and ``bayesian.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

import embrec
from embrec.coldstart import evaluate_cold
from embrec.models import BayesianFMConfig

RESULTS = Path(__file__).parent / "results"
COLD_NOTE = ("The features give a new user about what the item's own mean gives. A likely "
             "reason, not tested here: a cold vector predicts the average user's rating of an "
             "item, while the item mean averages the people who chose to rate it, who like it "
             "more (ratings are missing not at random); with the rated-items group the average "
             "user's part weighs more, and the gap widens.")
VARIANTS = {
    "ids only": {"implicit": False, "flipped": False, "side_features": False},
    "+ implicit (SVD++) and flipped": {"side_features": False},
    "+ side features (age, gender, occupation; genres, year)": {},
}


def rmse(rec: embrec.Recommender, rows: embrec.Ratings) -> float:
    return float(embrec.evaluate(rec, rows, metrics=["rmse"])["rmse"])


def choose(train: embrec.Ratings, base: dict[str, Any], log: list[dict[str, Any]]
           ) -> BayesianFMConfig:
    """Pick the prior sharing on validation rows of ``train`` (never test rows)."""
    fit_rows, validation = embrec.split(train, test_size=0.1, seed=1)
    grid = ["group"] if not (base["implicit"] or base["side_features"]) else ["group", "shared"]
    scored = []
    for priors in grid:
        config = dataclasses.replace(BayesianFMConfig(**base), priors=priors)
        started = time.perf_counter()
        score = rmse(embrec.fit(config, fit_rows), validation)
        log.append({**config.to_dict(), "validation_rmse": score,
                    "fit_s": time.perf_counter() - started})
        print(f"  validation {priors}: {score:.4f}", flush=True)
        scored.append((score, config))
    return min(scored, key=lambda pair: pair[0])[1]


def myfm_reference(train: embrec.Ratings, test: embrec.Ratings, variant: dict[str, Any],
                   sweeps: int, burn_in: int) -> dict[str, Any]:
    """myFM on the same rows and groups: relation blocks of [id | implicit | features]."""
    shim = types.ModuleType("pkg_resources")  # myfm 0.4.0 imports setuptools' pkg_resources
    shim.DistributionNotFound = type("DistributionNotFound", (Exception,), {})  # type: ignore
    shim.get_distribution = lambda name: types.SimpleNamespace(  # type: ignore
        version=importlib.metadata.version(name))
    sys.modules.setdefault("pkg_resources", shim)
    import myfm

    blocks, shapes = [], []
    pattern = sp.csr_matrix((np.ones(len(train)), (train.user, train.item)),
                            shape=(train.n_users, train.n_items))
    for matrix, extra, table, ids in ((pattern, "implicit", train.user_features, train.users),
                                      (pattern.T.tocsr(), "flipped", train.item_features,
                                       train.items)):
        parts = [sp.identity(matrix.shape[0], format="csr")]
        shapes.append(matrix.shape[0])
        if variant.get(extra, True):
            counts = np.maximum(np.asarray(matrix.sum(1)).ravel(), 1.0)
            parts.append(sp.diags(1.0 / np.sqrt(counts)) @ matrix)
            shapes.append(matrix.shape[1])
        if variant.get("side_features", True) and table is not None:
            parts.append(table.rows(ids.ids))
            shapes.extend(c.width for c in table.schema.columns)
        block = sp.vstack([sp.hstack(parts), sp.csr_matrix((1, sum(p.shape[1] for p in parts)))])
        blocks.append(sp.csr_matrix(block, dtype=np.float64))  # last row: unseen ids (zeros)

    def relations(rows: embrec.Ratings) -> list[Any]:
        out = []
        for index, column, block in ((train.users, rows.users.id_of(rows.user), blocks[0]),
                                     (train.items, rows.items.id_of(rows.item), blocks[1])):
            found = index.index(column, on_unknown="missing")
            out.append(myfm.RelationBlock(np.where(found < 0, block.shape[0] - 1, found),
                                          block))
        return out

    started = time.perf_counter()
    model = myfm.MyFMRegressor(rank=10, random_seed=0)
    model.fit(None, train.rating.astype(np.float64), X_rel=relations(train), n_iter=sweeps,
              n_kept_samples=sweeps - burn_in, group_shapes=shapes)
    seconds = time.perf_counter() - started
    predicted = np.clip(model.predict(None, relations(test)), *train.scale)
    score = float(np.sqrt(np.mean((predicted - test.rating) ** 2)))
    return {"myfm_version": myfm.__version__, "test_rmse": score, "fit_s": seconds}


def cold_start(ratings: embrec.Ratings, config: BayesianFMConfig) -> dict[str, Any]:
    """Fit on the ratings of 90% of users; score the others' ratings from their features."""
    held = np.random.default_rng(0).permutation(ratings.n_users)[: ratings.n_users // 10]
    new = np.isin(ratings.user, held)
    train, test = ratings.take(~new), ratings.take(new)
    rec = embrec.fit(config, train)
    return {"held_out_users": len(held), "config": config.to_dict(), **evaluate_cold(rec, test)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=100)
    parser.add_argument("--burn-in", type=int, default=20)
    parser.add_argument("--skip-myfm", action="store_true")
    args = parser.parse_args(argv)
    ratings = embrec.load_dataset("ml-100k")
    train, test = embrec.split(ratings, test_size=0.1, seed=0)
    results: dict[str, Any] = {"rows": {"train": len(train), "test": len(test)}, "variants": [],
                               "validation": []}
    chosen_full = None
    for label, flags in VARIANTS.items():
        print(label, flush=True)
        base = {"implicit": True, "flipped": True, "side_features": True, **flags,
                "sweeps": args.sweeps, "burn_in": args.burn_in}
        config = choose(train, base, results["validation"])
        started = time.perf_counter()
        rec = embrec.fit(config, train)
        row = {"variant": label, "config": config.to_dict(), "test_rmse": rmse(rec, test),
               "fit_s": time.perf_counter() - started}
        if not args.skip_myfm:
            row["myfm"] = myfm_reference(train, test, base, args.sweeps, args.burn_in)
        print(f"  {row}", flush=True)
        results["variants"].append(row)
        chosen_full = config
    assert chosen_full is not None
    results["cold_start"] = [cold_start(ratings, chosen_full),  # and without the history group
                             cold_start(ratings, dataclasses.replace(chosen_full, implicit=False))]
    print(results["cold_start"], flush=True)
    write(results, args)
    return 0


def write(results: dict[str, Any], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bayesian.json").write_text(json.dumps(results, indent=2) + "\n")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# Bayesian factorization model (Gibbs sampling) on ML-100K 90/10",
        "",
        f"`python benchmarks/bayesian.py --sweeps {args.sweeps} --burn-in {args.burn_in}`; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, NumPy {np.__version__}; load average {load} "
        "(other jobs shared the cores: times are upper bounds); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Rows: `embrec.split(ml100k, test_size=0.1, seed=0)`: {results['rows']['train']:,} "
        f"training, {results['rows']['test']:,} test. Rank 10, {args.sweeps} sweeps, the first "
        f"{args.burn_in} discarded, predictions averaged over the rest. The prior sharing was "
        "chosen on validation rows carved from the training rows "
        "(`embrec.split(train, test_size=0.1, seed=1)`); each test set was scored once.",
        "",
        "| variant | priors (validation) | test RMSE | fit s | myFM test RMSE | myFM fit s |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["variants"]:
        ref = row.get("myfm", {})
        lines.append(f"| {row['variant']} | {row['config']['priors']} | {row['test_rmse']:.4f} "
                     f"| {row['fit_s']:.1f} | {ref.get('test_rmse', float('nan')):.4f} | "
                     f"{ref.get('fit_s', float('nan')):.1f} |")
    version = next((r["myfm"]["myfm_version"] for r in results["variants"] if "myfm" in r), "-")
    lines += ["", f"myFM: `myfm` {version}, `MyFMRegressor(rank=10, random_seed=0)`, the same "
              "groups as relation blocks, not tuned.", "", "## Validation", "",
              "| implicit | flipped | side features | priors | validation RMSE | fit s |",
              "|---|---|---|---|---|---|"]
    for row in results["validation"]:
        lines.append(f"| {row['implicit']} | {row['flipped']} | {row['side_features']} | "
                     f"{row['priors']} | {row['validation_rmse']:.4f} | {row['fit_s']:.1f} |")
    full, plain = results["cold_start"]
    lines += ["", "## Cold start: users unseen in training", "",
              f"{full['held_out_users']} users (10%, `numpy.random.default_rng(0)`) held out "
              f"with all their ratings; {full['n']:,} of their ratings scored (items known). "
              "A new user's vector is the average training user's id-and-history part plus "
              "the weights of their features (age, gender, occupation).", "",
              "| prediction | RMSE |", "|---|---|",
              f"| side features, the features variant's setting | {full['rmse_features']:.4f} |",
              f"| side features, the same without the rated-items group | "
              f"{plain['rmse_features']:.4f} |",
              f"| damped item mean (evaluate's fallback for unknown users) | "
              f"{full['rmse_item_mean']:.4f} |",
              f"| global mean | {full['rmse_mean']:.4f} |", "", COLD_NOTE, ""]
    (RESULTS / "bayesian.md").write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
