"""How the command line prints: JSON, tables, rounded facts, training summaries and warnings.

Warnings raised while a command runs are printed in embrec's error style, one
``warning: ...`` line plus its ``  hint: ...`` lines naming command-line flags,
instead of Python's ``file.py:114: TrainingWarning: ...`` and a source line. Under
the training table, the test RMSE of the global, user and item means is printed, so
a model's number can be judged where it is read.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embrec.commands.options import cli_hint
from embrec.errors import EmbrecWarning
from embrec.jsonsafe import dumps

__all__ = ["cli_warnings", "format_warning", "print_baselines", "print_frame", "print_json",
           "print_train_table", "readable", "train_summary"]


def print_json(payload: Any) -> None:
    """Print ``payload`` as strict JSON (NaN and infinities become null)."""
    print(dumps(payload))


COUNT_COLUMNS = ("n", "unknown", "users_ranked", "training_rows")


def print_frame(frame: Any) -> None:
    """Print a DataFrame as an aligned table, floats to 4 decimals and counts as integers."""
    counts = [c for c in frame.columns if c in COUNT_COLUMNS]
    if counts:  # a transposed table makes every column float
        frame = frame.astype(dict.fromkeys(counts, "Int64"))
    print(frame.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.4f}"))


def readable(value: Any) -> str:
    """Format a fact for people: floats to 4 significant digits, containers item by item."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        value = value.item()
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {readable(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(readable(v) for v in value) + ")"
    return str(value)


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

    sides = [side for side in ("train", "validation", "test") if metrics.get(side)]
    table = pd.DataFrame({side: metrics[side] for side in sides}).T.reindex(sides)
    shown = [c for c in table.columns if c not in COUNT_COLUMNS]
    if shown:
        print_frame(table[shown].reset_index(names="split"))
    print_baselines(metrics.get("baselines"))


def print_baselines(baselines: dict[str, float] | None) -> None:
    """One line: the test RMSE of predicting the global, user and item means."""
    if not baselines or not any(math.isfinite(v) for v in baselines.values()):
        return
    parts = ", ".join(f"{name.replace('_', ' ')} {value:.4f}" for name, value in baselines.items())
    print(f"baselines (test RMSE): {parts}")


def format_warning(message: Warning | str, category: type[Warning], filename: str,
                   lineno: int, line: str | None = None) -> str:
    """Format a warning as ``warning: ...`` plus ``  hint: ...`` lines (warnings.formatwarning)."""
    text = cli_hint(str(message))
    first, *rest = text.split("\n")
    if not issubclass(category, EmbrecWarning):
        first = f"{first} ({category.__name__})"
    lines = [f"warning: {first}"] + [f"  {part.strip()}" for part in rest if part.strip()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def cli_warnings() -> Iterator[None]:
    """Format warnings with :func:`format_warning` for the duration, then restore the hook.

    Only the formatting is replaced, not ``warnings.showwarning``, so a recorder such
    as ``warnings.catch_warnings(record=True)`` or ``pytest.warns`` still sees them.
    """
    saved = warnings.formatwarning
    warnings.formatwarning = format_warning
    try:
        yield
    finally:
        warnings.formatwarning = saved
