"""Neural models' defaults: chosen on validation rows, then every model x 5 seeds on the test split.

Usage::

    python benchmarks/neural.py --out benchmarks/results/neural.md
    python benchmarks/neural.py --skip-search --seeds 0 1 2 3 4

Real ML-100K, the random 90/10 split ``embrec.split(ratings, test_size=0.1, seed=0)``.

- **search**: each candidate (model config + training) is fitted with training seed 0
  on the training part minus a validation tenth carved from it
  (``embrec.split(train, test_size=0.1, seed=1)``) and scored on that validation
  tenth: the test rows play no part in choosing.
- **report**: every registered trainable model with its library defaults,
  ``embrec.fit(XConfig(), train)`` (so the model's default training from
  ``embrec.presets.DEFAULT_TRAINING``), and the neural models with ``biases=False``,
  for each training seed: test RMSE, the spread (std) of the test predictions
  (a constant model has ~0) and fit seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
import warnings
from typing import Any

import harness
import numpy as np
import torch

import embrec
from embrec.models import GMFConfig, MLPConfig, NeuMFConfig
from embrec.presets import PRESETS, default_training

CONSTANT_STD = 0.004  # 0.1% of the 1-5 scale's range, as embrec's diagnostics use


def candidates() -> list[tuple[str, Any, embrec.TrainConfig]]:
    """The settings compared on validation rows (label, model config, training).

    Every setting is spelled out (not taken from the library defaults, which
    these rounds chose), so a re-run measures what the labels say.
    """
    base = PRESETS["default"].train  # the `default` preset's schedule, weight_decay 0.08
    gmf = GMFConfig(embedding_dim=32, hidden=(), dropout=0.0, init="normal", init_std=0.01)
    mlp = MLPConfig(embedding_dim=32, hidden=(64,), dropout=(0.0, 0.0), init="normal",
                    init_std=0.01)
    neumf = NeuMFConfig(dropout=0.0)
    out: list[tuple[str, Any, embrec.TrainConfig]] = []
    # round 1: the shapes, with and without biases, at the default preset's training
    for label, model in (
        ("gmf 32, hidden (), biases", gmf),
        ("gmf 32, hidden (), no biases", dataclasses.replace(gmf, biases=False)),
        ("gmf 64, hidden (), biases", dataclasses.replace(gmf, embedding_dim=64)),
        ("gmf 32, hidden (8,) relu, biases", dataclasses.replace(gmf, hidden=(8,))),
        ("mlp 32, (64,), biases", mlp),
        ("mlp 32, (64,), no biases", dataclasses.replace(mlp, biases=False)),
        ("mlp 32, (64,), dropout 0.2 before output, biases",
         dataclasses.replace(mlp, dropout=(0.0, 0.2))),
        ("mlp 32, (64, 32), biases", dataclasses.replace(mlp, hidden=(64, 32),
                                                          dropout=(0.0, 0.0, 0.0))),
        ("neumf 16+32, (64, 32, 16), biases", neumf),
        ("neumf 16+32, (64, 32, 16), no biases", dataclasses.replace(neumf, biases=False)),
        ("neumf 16+32, unbounded, biases", dataclasses.replace(neumf, bounded=False)),
    ):
        out.append((label, model, base))
    for decay in (0.05, 0.12):
        for model in (gmf, mlp, neumf):
            out.append((f"{model.name} round-1 shape, weight_decay {decay}", model,
                        dataclasses.replace(base, weight_decay=decay)))
    # round 2: more regularisation where round 1 over-fitted
    for label, model, changes in (
        ("gmf, weight_decay 0.2", gmf, {"weight_decay": 0.2}),
        ("gmf, weight_decay 0.12, dense_weight_decay 0.01", gmf,
         {"weight_decay": 0.12, "dense_weight_decay": 0.01}),
        ("gmf no biases, weight_decay 0.12", dataclasses.replace(gmf, biases=False),
         {"weight_decay": 0.12}),
        ("mlp dropout (0, 0.2), weight_decay 0.12", dataclasses.replace(mlp, dropout=(0.0, 0.2)),
         {"weight_decay": 0.12}),
        ("mlp dropout (0, 0.5), weight_decay 0.12", dataclasses.replace(mlp, dropout=(0.0, 0.5)),
         {"weight_decay": 0.12}),
        ("mlp no biases, dropout (0, 0.2), weight_decay 0.12",
         dataclasses.replace(mlp, dropout=(0.0, 0.2), biases=False), {"weight_decay": 0.12}),
        ("neumf dropout 0.2, weight_decay 0.12", dataclasses.replace(neumf, dropout=0.2),
         {"weight_decay": 0.12}),
        ("neumf 16+16, (32, 16), dropout 0.2, weight_decay 0.12",
         dataclasses.replace(neumf, mlp_embedding_dim=16, hidden=(32, 16), dropout=0.2),
         {"weight_decay": 0.12}),
        ("neumf dropout 0.2, weight_decay 0.2", dataclasses.replace(neumf, dropout=0.2),
         {"weight_decay": 0.2}),
        # round 3: GMF's L2 further up
        ("gmf, weight_decay 0.25", gmf, {"weight_decay": 0.25}),
        ("gmf, weight_decay 0.3", gmf, {"weight_decay": 0.3}),
        ("gmf 64, weight_decay 0.3", dataclasses.replace(gmf, embedding_dim=64),
         {"weight_decay": 0.3}),
    ):
        out.append((label, model, dataclasses.replace(base, **changes)))
    return out


def fit_and_score(model: Any, train: Any, test: Any, config: Any) -> dict[str, float]:
    """Fit, then test RMSE, prediction std and fit seconds."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = embrec.fit(model, train, config)
    seconds = time.perf_counter() - started
    predictions = rec.predict(test.users.id_of(test.user), test.items.id_of(test.item),
                              on_unknown="mean")
    rmse = float(np.sqrt(np.mean((predictions - test.rating) ** 2)))
    return {"rmse": rmse, "std": float(np.std(predictions)), "seconds": seconds}


def search(train: Any, match: str | None = None, start: int = 0) -> list[str]:
    fit_rows, validation = embrec.split(train, test_size=0.1, seed=1)
    lines = ["| validation RMSE | prediction std | fit s | setting |", "|---|---|---|---|"]
    for label, model, config in candidates()[start:]:
        if match and match not in label:
            continue
        r = fit_and_score(model, fit_rows, validation, dataclasses.replace(config, seed=0))
        lines.append(f"| {r['rmse']:.4f} | {r['std']:.3f} | {r['seconds']:.2f} | {label} |")
        print(lines[-1], flush=True)
    return lines


def report(train: Any, test: Any, seeds: list[int]) -> list[str]:
    lines = ["| model | test RMSE mean (min-max) | least prediction std | constant runs | "
             "fit s (median) |", "|---|---|---|---|---|"]
    setups = [(name, embrec.models.MODELS[name]()) for name in ("biased-mf", "gmf", "mlp",
                                                                  "neumf")]
    setups += [(f"{name} biases=False", dataclasses.replace(embrec.models.MODELS[name](),
                                                            biases=False))
               for name in ("gmf", "mlp", "neumf")]
    for label, model in setups:
        runs = [fit_and_score(model, test=test, train=train,
                              config=dataclasses.replace(default_training(model), seed=seed))
                for seed in seeds]
        rmse = [r["rmse"] for r in runs]
        constant = sum(r["std"] < CONSTANT_STD for r in runs)
        lines.append(f"| {label} | {statistics.mean(rmse):.4f} ({min(rmse):.4f}-{max(rmse):.4f})"
                     f" | {min(r['std'] for r in runs):.3f} | {constant} of {len(runs)} | "
                     f"{statistics.median(r['seconds'] for r in runs):.2f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-report", action="store_true")
    parser.add_argument("--start", type=int, default=0, help="skip the first N settings")
    parser.add_argument("--match", help="search only the settings whose label contains this")
    parser.add_argument("--out")
    args = parser.parse_args()
    ratings = embrec.load_dataset("ml-100k", progress=False)
    train, test = embrec.split(ratings, test_size=0.1, seed=0)
    load = os.getloadavg()
    out = ["# Neural models' defaults (ML-100K, random 90/10 split, seed 0)", "",
           f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor()}"
           f" {os.cpu_count()} cores shared with other work; torch {torch.__version__}; load "
           f"average at start {load[0]:.1f} (timings are noisy)",
           "- default training of every model: `embrec.presets.DEFAULT_TRAINING`", ""]
    if not args.skip_search:
        out += ["## Search on validation rows carved from the training part (training seed 0)",
                "", *search(train, args.match, args.start), ""]
    if not args.skip_report:
        out += [f"## Defaults on the test rows, training seeds {args.seeds}", "",
                *report(train, test, args.seeds), ""]
    harness.publish(out, args.out)


if __name__ == "__main__":
    main()
