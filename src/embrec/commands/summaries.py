"""What ``embrec train`` prints: the JSON summary and the table of each split's metrics.

Counts (``n``, ``unknown``) are integers in both; the RMSE of the simplest
predictors (global, user and item means) on the same test rows is printed
under the table, so a model's number can be judged where it is read.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

__all__ = ["print_baselines", "print_train_table", "train_summary"]

COUNTS = ("n", "unknown", "users_ranked")


def train_summary(args: argparse.Namespace, result: Any, out: Path | None) -> dict[str, Any]:
    """The ``--json`` object of a training run."""
    rec = result.recommender
    return {"model": rec.model_name, "data": args.data, "preset": rec.metadata.get("preset"),
            "changed": rec.metadata.get("changed", []), "seed": rec.metadata.get("seed"),
            "split": rec.metadata.get("split"), "epochs": len(rec.history),
            "fit_seconds": result.fit_seconds,
            "ratings_per_second": result.ratings_per_second,
            "out": str(out) if out is not None else None,
            "world_size": rec.metadata["world_size"],
            "rows_per_rank": rec.metadata["rows_per_rank"],
            **{k: v for k, v in rec.metadata.items() if k.endswith("_per_rank")},
            **result.metrics, "history": rec.history,
            "diagnostics": rec.metadata.get("diagnostics", []),
            "problems": result.problems, "notes": result.notes}


def print_train_table(metrics: dict[str, dict[str, float]]) -> None:
    """Print one row per split (train, validation, test), then the baselines line."""
    import pandas as pd

    from embrec.commands.display import print_frame

    sides = [side for side in ("train", "validation", "test") if metrics.get(side)]
    table = pd.DataFrame({side: metrics[side] for side in sides}).T.reindex(sides)
    shown = [c for c in table.columns if c not in COUNTS]
    if shown:
        print_frame(table[shown].reset_index(names="split"))
    print_baselines(metrics.get("baselines"))


def print_baselines(baselines: dict[str, float] | None) -> None:
    """One line: the test RMSE of predicting the global, user and item means."""
    if not baselines or not any(math.isfinite(v) for v in baselines.values()):
        return
    parts = ", ".join(f"{name.replace('_', ' ')} {value:.4f}" for name, value in baselines.items())
    print(f"baselines (test RMSE): {parts}")
