"""The subcommands' bodies: each parses its flags into the library's configs and calls the API.

None holds logic of its own, so the shell cannot drift from Python. This module
imports pandas and the library at the top; the parser imports it only when a
command runs, never for ``--help``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from embrec.commands.configs import run_settings
from embrec.commands.display import print_frame, print_json, readable
from embrec.commands.options import read_options
from embrec.errors import ConfigError, DataError, EmbrecError

__all__ = [
    "cmd_datasets_fetch", "cmd_datasets_info", "cmd_datasets_list", "cmd_evaluate",
    "cmd_predict", "cmd_recommend", "cmd_serve", "cmd_similar", "cmd_train",
]


# ----------------------------------------------------------------------------- datasets
def cmd_datasets_list(args: argparse.Namespace) -> int:
    """``embrec datasets list``."""
    from embrec.data.datasets import list_datasets

    rows = list_datasets()
    if args.json:
        print_json(rows)
    else:
        print_frame(pd.DataFrame(rows))
    return 0


def cmd_datasets_fetch(args: argparse.Namespace) -> int:
    """``embrec datasets fetch NAME``."""
    from embrec.data.datasets import fetch

    print(fetch(args.name, progress=not args.json))
    return 0


def cmd_datasets_info(args: argparse.Namespace) -> int:
    """``embrec datasets info NAME``: rounded for people, full precision with ``--json``."""
    from embrec.data.datasets import dataset_info

    info = dataset_info(args.name, read=read_options(args))
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            print(f"{key:>18}: {readable(value)}")
    return 0


# ----------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    """``embrec train``: train, evaluate on the test split, save, print a summary.

    ``--out`` and its checkpoints are locked from start to save: one run writes them.
    Returns 3 (and saves nothing) for a degenerate model unless ``--allow-degenerate``.
    """
    from embrec.training.checkpoint import checkpoint_dir
    from embrec.training.distributed import main_process
    from embrec.writers import hold_outputs

    held = (args.out, checkpoint_dir(args.out)) if args.out and main_process() else ()
    with hold_outputs(*held):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from embrec.modeldir import check_target
    from embrec.runs import train_run
    from embrec.training.checkpoint import checkpoint_dir
    from embrec.training.distributed import main_process

    settings = run_settings(args, {
        "epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "weight_decay": args.weight_decay,
        "loss": args.loss, "validation": args.validation,
        "early_stopping": args.early_stopping, "checkpoint_every": args.checkpoint_every,
        "progress": not args.json and not args.quiet})
    if args.out and main_process():  # a folder the save would refuse is refused before training
        check_target(args.out)
    checkpoints = checkpoint_dir(args.out, resume=args.resume)
    result = train_run(settings.model, settings.train, args.data, split_spec=settings.split,
                       test_data=args.test_data, read=settings.read,
                       checkpoint_dir=checkpoints, resume=args.resume)
    rec = result.recommender
    if not main_process():  # under torchrun only rank 0 reports and saves
        return 0
    rec.metadata["preset"] = settings.preset
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/{Path(args.data).stem}-{rec.model_name}-{stamp}")
    save = result.saveable(args.allow_degenerate)
    if save:
        rec.save(out)
    _report_problems(result, save, out)
    summary = {"model": rec.model_name, "data": args.data, "epochs": len(rec.history),
               "fit_seconds": result.fit_seconds,
               "ratings_per_second": result.ratings_per_second,
               "out": str(out) if save else None,
               "world_size": rec.metadata["world_size"],
               "rows_per_rank": rec.metadata["rows_per_rank"],
               **{k: v for k, v in rec.metadata.items() if k.endswith("_per_rank")},
               **result.metrics, "diagnostics": rec.metadata.get("diagnostics", []),
               "problems": result.problems, "notes": result.notes}
    code = 3 if result.problems and not save else 0
    if args.json:
        print_json(summary)
        return code
    sides = [side for side in ("train", "validation", "test") if side in result.metrics]
    table = pd.DataFrame(result.metrics).T.reindex(sides)
    shown = [c for c in table.columns if c not in ("n", "unknown", "users_ranked")]
    print_frame(table[shown].reset_index(names="split"))
    print(f"fit {result.fit_seconds:.2f} s, {result.ratings_per_second:,.0f} ratings/s; "
          + (f"saved to {out}" if save else "not saved"))
    return code


def _report_problems(result: Any, save: bool, out: Path) -> None:
    for line in [*result.problems, *result.notes]:
        print(f"warning: {line}", file=sys.stderr)
    if result.problems:
        print("warning: the model is degenerate; " + (
            f"saved anyway (--allow-degenerate) to {out}" if save else
            "not saved (exit 3); pass --allow-degenerate to save it anyway"), file=sys.stderr)


# ----------------------------------------------------------------------------- use a model
def _load(path: str) -> Any:
    from embrec.artifacts import load

    return load(path)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``embrec evaluate DIR``: on the recorded test split, or on ``--data``."""
    from embrec.data.datasets import load_dataset
    from embrec.evaluation.evaluate import evaluate
    from embrec.runs import recorded_test_split

    rec = _load(args.model_dir)
    test = (load_dataset(args.data, **read_options(args)) if args.data
            else recorded_test_split(rec))
    metrics = evaluate(rec, test, metrics=args.metrics, k=args.k, threshold=args.threshold,
                       segments=args.segments, baselines=args.baselines)
    if args.json:
        print_json(metrics)
        return 0
    segments = metrics.pop("segments", None)
    compared = [key.removeprefix("popular:") for key in metrics if key.startswith("popular:")]
    if compared:  # --baselines: the model beside popularity, one row per ranking metric
        print_frame(pd.DataFrame({"metric": compared, rec.model_name: [
            metrics.pop(key) for key in compared], "popular": [
            metrics.pop(f"popular:{key}") for key in compared], "ratio": [
            metrics.pop(f"{key}/popular") for key in compared]}))
    for key, value in metrics.items():
        print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")
    if segments:
        print()
        print_frame(pd.DataFrame(segments).T.reset_index(names="segment"))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``embrec predict DIR``: one pair, or every pair of ``--input``."""
    if not args.input and (args.user is None or args.item is None):
        raise EmbrecError("predict needs a pair (--user and --item) or a file of pairs (--input)",
                          hint="e.g. embrec predict DIR --user 196 --item 242")
    rec = _load(args.model_dir)
    if args.input:
        pairs = _read_pairs(args.input)
        missing = [c for c in ("user", "item") if c not in pairs.columns]
        if missing:
            raise ConfigError("input", args.input, f"has no column {missing[0]!r}",
                              hint="give a CSV with a header 'user,item'")
        pairs["prediction"] = rec.predict(pairs["user"].to_numpy(), pairs["item"].to_numpy(),
                                          on_unknown=args.on_unknown, kind=args.kind)
        if args.output:
            _write_csv(pairs, args.output)
        else:
            print(pairs.to_csv(index=False), end="")
        return 0
    user, item = rec.users.coerce(args.user), rec.items.coerce(args.item)
    value = rec.predict(user, item, on_unknown=args.on_unknown, kind=args.kind)
    if args.json:
        print_json({"user": user, "item": item, "prediction": value})
    else:
        print(f"{value:.4f}")
    return 0


def _write_csv(frame: pd.DataFrame, path: str) -> None:
    try:
        frame.to_csv(path, index=False)
    except OSError as error:
        raise ConfigError("output", path, f"cannot be written ({error})",
                          hint="pick a path in an existing, writable folder") from error


def _read_pairs(path: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError as error:
        raise DataError("no such file", path=path,
                        hint="give a CSV with a header 'user,item'") from error
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot read the pairs: {str(error).splitlines()[0]}", path=path,
                        hint="give a CSV with a header 'user,item'") from error


def cmd_recommend(args: argparse.Namespace) -> int:
    """``embrec recommend DIR --user U``."""
    rec = _load(args.model_dir)
    frame = rec.recommend(user=rec.users.coerce(args.user), n=args.n,
                          exclude_seen=not args.include_seen)
    _print_result(frame, args.json)
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    """``embrec similar DIR --item I``."""
    rec = _load(args.model_dir)
    _print_result(rec.similar_items(rec.items.coerce(args.item), n=args.n), args.json)
    return 0


def _print_result(frame: pd.DataFrame, as_json: bool) -> None:
    if as_json:
        print_json(frame.to_dict(orient="records"))
    else:
        print_frame(frame)


def cmd_serve(args: argparse.Namespace) -> int:
    """``embrec serve DIR``."""
    from embrec.serving.server import serve

    serve(args.model_dir, host=args.host, port=args.port, workers=args.workers,
          device=args.device, threads=args.threads, access_log=not args.no_access_log)
    return 0
