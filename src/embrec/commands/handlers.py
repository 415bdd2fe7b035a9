"""The subcommands' bodies: each parses its flags into the library's configs and calls the API.

None holds logic of its own, so the shell cannot drift from Python. This module
imports pandas and the library at the top; the parser imports it only when a
command runs, never for ``--help``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from embrec.commands.configs import run_settings
from embrec.commands.display import (
    print_baselines,
    print_frame,
    print_json,
    print_train_table,
    readable,
    train_summary,
)
from embrec.commands.options import read_options
from embrec.errors import ArtifactError, ConfigError, DataError, EmbrecError

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
    from embrec.distributed.exchange import main_process
    from embrec.writers import checkpoint_dir, hold_outputs

    held = (args.out, checkpoint_dir(args.out)) if args.out and main_process() else ()
    with hold_outputs(*held):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from embrec.commands.runs import train_run
    from embrec.distributed.exchange import main_process
    from embrec.modeldir import check_target
    from embrec.writers import checkpoint_dir

    settings = run_settings(args, {
        "epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "weight_decay": args.weight_decay,
        "loss": args.loss, "validation": args.validation,
        "early_stopping": args.early_stopping, "checkpoint_every": args.checkpoint_every,
        "progress": not args.json and not args.quiet})
    if args.out and main_process():  # a folder the save would refuse is refused before training
        check_target(args.out)
    checkpoints = checkpoint_dir(args.out, resume=args.resume)
    try:
        result = train_run(settings.model, settings.train, args.data, split_spec=settings.split,
                           test_data=args.test_data, read=settings.read,
                           checkpoint_dir=checkpoints, resume=args.resume)
    except (EmbrecError, KeyboardInterrupt):
        _resumable(checkpoints)
        raise
    rec = result.recommender
    if not main_process():  # under torchrun only rank 0 reports and saves
        return 0
    rec.metadata.update(preset=settings.preset, changed=list(settings.changed))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/{Path(args.data).stem}-{rec.model_name}-{stamp}")
    save = result.saveable(args.allow_degenerate)
    if save:
        from embrec.recommender import save as save_model

        save_model(rec, out, test=result.test)
    if checkpoints is not None and not args.keep_checkpoints:  # the run finished: nothing to resume
        shutil.rmtree(checkpoints, ignore_errors=True)
    _report_problems(result, save, out)
    summary = train_summary(args, result, out if save else None)
    code = 3 if result.problems and not save else 0
    if args.json:
        print_json(summary)
        return code
    print_train_table(result.metrics)
    print(f"fit {result.fit_seconds:.2f} s, {result.ratings_per_second:,.0f} ratings/s; "
          + (f"saved to {out}" if save else "not saved"))
    return code


def _resumable(checkpoints: Path | None) -> None:
    """Say where a failed or interrupted run's checkpoints are, and how to continue it."""
    if checkpoints is not None and checkpoints.is_dir() and any(checkpoints.iterdir()):
        print(f"note: the checkpoints are kept in {checkpoints}; run the same command with "
              "--resume to continue from the last one", file=sys.stderr)


WARNED = ("constant model: ", "training diverged: training diverged in epoch")
"""Problems that repeat a warning training already printed (with its hint): not printed twice."""


def _report_problems(result: Any, save: bool, out: Path) -> None:
    for line in [*result.problems, *result.notes]:
        if not line.startswith(WARNED):
            print(f"warning: {line}", file=sys.stderr)
    if result.problems:
        reasons = sorted({problem.split(":")[0] for problem in result.problems})
        print(f"warning: the model is degenerate ({'; '.join(reasons)}); " + (
            f"saved anyway (--allow-degenerate) to {out}" if save else
            "not saved (exit 3); pass --allow-degenerate to save it anyway"), file=sys.stderr)


# ----------------------------------------------------------------------------- use a model
def _load(path: str) -> Any:
    """Load a model folder; a path that is no folder is refused before PyTorch is imported."""
    if not Path(path).is_dir():
        raise ArtifactError(f"no model directory at {path}",
                            hint="pass a folder written by `embrec train --out DIR`")
    from embrec.recommender import load

    return load(path)


def _refuse_ratings_from_ranking(path: str, kind: str) -> None:
    """Refuse ``--kind rating`` for a ranking model from its config.json, before loading it."""
    if kind != "rating":
        return
    try:
        config = json.loads((Path(path) / "config.json").read_text())
        scores, name = config["metadata"]["scores"], str(config["model"]["name"])
        loss = str(config["train_config"].get("loss", "rating"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # load() reports a missing or corrupt folder properly
    if scores != "ranking":
        return
    if loss != "rating":  # a rating model trained with a ranking loss
        why, fix = f"this {name} model was trained with the ranking loss {loss!r}", \
            "train it with --loss rating (the default) for ratings"
    else:  # popular, ease: ranking models whatever the loss
        why, fix = f"a {name} model only ranks items", "train a rating model such as biased-mf"
    raise ConfigError("kind", kind, f"is not available: {why}; its scores are not ratings",
                      hint=f"pass --kind score for its ranking scores, or {fix}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``embrec evaluate DIR``: on the model's saved test rows, or on ``--test-data FILE``."""
    if args.data:
        if args.test_data:
            raise ConfigError("data", args.data, "and --test-data name the same thing",
                              hint="give only --test-data FILE")
        print("warning: evaluate --data is deprecated (in train it names the whole data set); "
              "use --test-data FILE", file=sys.stderr)
        args.test_data = args.data
    if args.folds is not None:
        if args.folds < 2:
            raise ConfigError("folds", args.folds, "must be at least 2",
                              hint="e.g. --folds 5")
        from embrec.commands.crossval import cmd_crossval

        return cmd_crossval(args)
    rec = _load(args.model_dir)
    from embrec.evaluation.evaluate import evaluate
    from embrec.evaluation.rating_baselines import rating_baselines

    test, overlap = _test_rows(rec, args)
    metrics = evaluate(rec, test, metrics=args.metrics, k=args.k, threshold=args.threshold,
                       segments=args.segments, baselines=args.baselines)
    metrics["test_rows"] = "test-data" if args.test_data else "held out at training"
    if overlap:
        metrics["training_rows"] = overlap
    if rec.scores == "rating":
        metrics["rating_baselines"] = rating_baselines(rec, test)
    if args.json:
        print_json(metrics)
        return 0
    _print_evaluation(rec, metrics)
    return 0


def _test_rows(rec: Any, args: argparse.Namespace) -> tuple[Any, int]:
    """The rows to score and how many of them are training rows (refused unless allowed)."""
    from embrec.commands.runs import recorded_test_split
    from embrec.data.datasets import load_dataset
    from embrec.evaluation.heldout import TEST_ROWS, check_not_training, read_test_rows

    if args.test_data:
        test = load_dataset(args.test_data, **read_options(args))
    elif (Path(args.model_dir) / TEST_ROWS).is_file():
        return read_test_rows(args.model_dir, rec.scale), 0
    else:  # saved before test rows were kept: re-create the split, checked by its fingerprint
        test = recorded_test_split(rec)
    overlap = check_not_training(rec, test, allow=args.allow_training_rows)
    if overlap:
        print(f"warning: {overlap:,} of the {len(test):,} test ratings are training ratings "
              "of this model (--allow-training-rows): the metrics overstate its accuracy",
              file=sys.stderr)
    return test, overlap


def _print_evaluation(rec: Any, metrics: dict[str, Any]) -> None:
    segments = metrics.pop("segments", None)
    baselines = metrics.pop("rating_baselines", None)
    compared = [key.removeprefix("popular:") for key in metrics if key.startswith("popular:")]
    if compared:  # --baselines: the model beside popularity, one row per ranking metric
        print_frame(pd.DataFrame({"metric": compared, rec.model_name: [
            metrics.pop(key) for key in compared], "popular": [
            metrics.pop(f"popular:{key}") for key in compared], "ratio": [
            metrics.pop(f"{key}/popular") for key in compared]}))
    for key, value in metrics.items():
        print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")
    print_baselines(baselines)
    if segments:
        print()
        print_frame(pd.DataFrame(segments).T.reset_index(names="segment"))


def cmd_predict(args: argparse.Namespace) -> int:
    """``embrec predict DIR``: one pair, or every pair of ``--input``."""
    if not args.input and (args.user is None or args.item is None):
        raise EmbrecError("predict needs a pair (--user and --item) or a file of pairs (--input)",
                          hint="e.g. embrec predict DIR --user 196 --item 242")
    _refuse_ratings_from_ranking(args.model_dir, args.kind)
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
