"""``embrec tune``: split like ``train``, tune on the training side, write a ``--config`` file.

The data are split into train and test exactly as ``embrec train`` splits them
with the same flags, and only the training side goes to :func:`embrec.tuning.tune`,
which carves its validation rows from it. The best setting is written as a TOML
file that ``embrec train --config`` reads back: ``[model]`` (with its name),
``[train]``, ``[split]`` and, when the data needed reading options, ``[data]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from embrec.commands.configs import run_settings
from embrec.commands.display import print_frame, print_json
from embrec.commands.options import TOML_KEYS
from embrec.errors import ConfigError

__all__ = ["cmd_tune", "to_toml"]

SKIPPED_TRAIN_KEYS = ("device", "progress", "validation", "early_stopping")
MARK = "# embrec tune:"
"""The first line of every file ``embrec tune`` writes; only such a file is overwritten."""


def _check_options(args: argparse.Namespace) -> None:
    """Refuse a timeout that is not a positive number of seconds, and a negative ``--top``."""
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError("timeout", args.timeout, "must be a positive number of seconds",
                          hint="leave --timeout out for no limit")
    if args.top < 0:
        raise ConfigError("top", args.top, "must be 0 or more", hint="pass --top 5, say")


def cmd_tune(args: argparse.Namespace) -> int:
    """``embrec tune``: search, print the best trials, write ``--out``."""
    from embrec.data.datasets import load_dataset
    from embrec.data.split import split
    from embrec.tuning import best_trials, tune
    from embrec.writers import check_own_file, write_own_text

    _check_options(args)
    check_own_file(args.out, MARK)  # before the search, not after hours of it
    settings = run_settings(args, {})
    ratings = load_dataset(args.data, **settings.read)
    spec = settings.split
    train = ratings if args.test_data else split(
        ratings, test_size=spec.test_size, seed=spec.seed, method=spec.method,
        n_last=spec.n_last)[0]
    study = args.study or f"tune-{Path(args.data).stem}-{settings.model.name}"
    started = time.perf_counter()
    result = tune(train, settings.model, train_config=settings.train, trials=args.trials,
                  timeout=args.timeout, metric=args.metric, validation=args.validation,
                  storage=args.storage, study_name=study, seed=spec.seed,
                  progress=not args.json and not args.quiet)
    seconds = time.perf_counter() - started
    header = (f"{MARK[2:]} study {study!r}, best trial {result.study.best_trial.number}, "
              f"validation {args.metric} {result.value:.4f} on {args.validation:g} of the "
              f"training split\ntrain with: embrec train --data {args.data} --config {args.out}")
    write_own_text(args.out, to_toml(_tables(result, settings, args), header), MARK)
    top = best_trials(result.study, args.top)
    states = Counter(t.state.name.lower() for t in result.study.trials)
    finished = states.get("complete", 0) + states.get("pruned", 0)
    summary = {"study": study, "storage": args.storage, "metric": args.metric,
               "trials": finished, "states": dict(states), "seconds": seconds,
               "value": result.value,
               "model": {"name": result.model.name, **result.model.to_dict()},
               "train": result.train.to_dict(), "best_trials": top, "out": args.out}
    if args.json:
        print_json(summary)
        return 0
    _print_table(top, args.metric)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    print(f"{finished} finished trials in the study ({counts}), {seconds:.1f} s this "
          f"run; best validation {args.metric} {result.value:.4f}; settings in {args.out}")
    return 0


def _tables(result: Any, settings: Any, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    train = {k: v for k, v in result.train.to_dict().items() if k not in SKIPPED_TRAIN_KEYS}
    tables: dict[str, dict[str, Any]] = {
        "model": {"name": result.model.name, **result.model.to_dict()}, "train": train,
        "split": {"method": settings.split.method, "test_size": settings.split.test_size,
                  "seed": settings.split.seed}}
    keys = {python: key for key, python in TOML_KEYS.items()}
    if settings.read:
        tables["data"] = {keys[k]: v for k, v in settings.read.items()}
    return tables


def _print_table(rows: list[dict[str, Any]], metric: str) -> None:
    import pandas as pd

    if rows:
        frame = pd.DataFrame(rows).rename(columns={"value": f"validation {metric}",
                                                   "seconds": "fit s"})
        print_frame(frame)


def to_toml(tables: dict[str, dict[str, Any]], header: str = "") -> str:
    """Write flat ``{table: {key: value}}`` dicts as TOML text (None values are left out),
    ``header`` as comment lines at the top."""
    lines = [f"# {line}" for line in header.splitlines()]
    for name, values in tables.items():
        lines += ["", f"[{name}]"]
        lines += [f"{key} = {_value(value)}" for key, value in values.items() if value is not None]
    return "\n".join(lines).lstrip("\n") + "\n"


def _value(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else "inf" if value > 0 else "-inf"
    if isinstance(value, bool | int | float | str):
        return json.dumps(value)  # TOML writes these as JSON does
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
