"""The ``embrec`` command: the library's verbs from the shell.

Each subcommand parses flags into the library's configs and calls the public
API; none holds logic of its own, so the shell cannot drift from Python.
``main`` prints an ``EmbrecError`` as one message and exits 2; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from embrec.errors import ConfigError, DataError, EmbrecError

__all__ = ["main"]

SUBCOMMANDS = ("datasets", "train", "evaluate", "predict", "recommend", "similar", "serve")


def _print_json(payload: Any) -> None:
    from embrec.jsonsafe import dumps

    print(dumps(payload))  # strict JSON: NaN and infinities are null


def _print_frame(frame: pd.DataFrame) -> None:
    print(frame.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.4f}"))


# ----------------------------------------------------------------------------- datasets
def _cmd_datasets(args: argparse.Namespace) -> int:
    from embrec.data.datasets import dataset_info, fetch, list_datasets

    if args.action == "list":
        rows = list_datasets()
        if args.json:
            _print_json(rows)
        else:
            _print_frame(pd.DataFrame(rows))
    elif args.action == "fetch":
        print(fetch(args.name, progress=not args.json))
    else:
        info = dataset_info(args.name)
        if args.json:
            _print_json(info)
        else:
            for key, value in info.items():
                print(f"{key:>18}: {value}")
    return 0


# ----------------------------------------------------------------------------- train
def _train_configs(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from embrec.models import MODELS
    from embrec.presets import PRESETS, default_training
    from embrec.runs import SplitSpec

    file = _read_toml(args.config) if args.config else {}
    preset_name = args.preset or file.get("preset") or ("default" if not args.model else None)
    preset = PRESETS[_known("preset", preset_name, PRESETS)] if preset_name else None
    model_name = args.model or file.get("model", {}).get("name")
    if model_name:
        model = MODELS[_known("model", model_name, MODELS)]()
    else:
        model = preset.model if preset is not None else PRESETS["default"].model
    train = preset.train if preset is not None else default_training(model)
    model = _override(model, {**file.get("model", {}), "embedding_dim": args.embedding_dim},
                      skip=("name",))
    train = _override(train, {**file.get("train", {}), "epochs": args.epochs,
                              "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                              "weight_decay": args.weight_decay, "loss": args.loss,
                              "validation": args.validation,
                              "seed": args.seed, "device": args.device,
                              "num_threads": args.threads,
                              "early_stopping": args.early_stopping,
                              "checkpoint_every": args.checkpoint_every,
                              "progress": not args.json and not args.quiet})
    test_size = args.test_size or file.get("split", {}).get("test_size")
    if test_size is None:
        test_size = preset.test_size if preset is not None else 0.2
    split_seed = args.seed if args.seed is not None else file.get("split", {}).get("seed", 0)
    method = args.split or file.get("split", {}).get("method", "random")
    return model, train, SplitSpec(method=method, test_size=test_size, seed=split_seed)


def _known(kind: str, name: str, registry: dict[str, Any]) -> str:
    if name not in registry:
        from embrec.config import require_choice

        require_choice(kind, name, registry)
    return name


def _override(config: Any, values: dict[str, Any], skip: Sequence[str] = ()) -> Any:
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {k: v for k, v in values.items() if v is not None and k not in skip}
    unknown = [k for k in changes if k not in fields]
    if unknown:
        raise ConfigError(unknown[0], changes[unknown[0]],
                          f"is not a setting of {type(config).__name__}",
                          hint=f"its settings are {sorted(fields)}")
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    return dataclasses.replace(config, **changes)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError("config", path, f"cannot be read ({error.strerror})") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("config", path, f"is not valid TOML: {error}") from error


def _cmd_train(args: argparse.Namespace) -> int:
    from embrec.runs import train_run
    from embrec.training.checkpoint import checkpoint_dir
    from embrec.training.distributed import main_process

    model, train, split_spec = _train_configs(args)
    checkpoints = checkpoint_dir(args.out, resume=args.resume)
    result = train_run(model, train, args.data, split_spec=split_spec, test_data=args.test_data,
                       checkpoint_dir=checkpoints, resume=args.resume)
    rec = result.recommender
    if not main_process():  # under torchrun only rank 0 reports and saves
        return 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/{Path(args.data).stem}-{rec.model_name}-{stamp}")
    save = result.saveable(args.allow_degenerate)
    if save:
        rec.save(out)
    for line in [*result.problems, *result.notes]:
        print(f"warning: {line}", file=sys.stderr)
    if result.problems:
        print("warning: the model is degenerate; " + (
            f"saved anyway (--allow-degenerate) to {out}" if save else
            "not saved (exit 3); pass --allow-degenerate to save it anyway"), file=sys.stderr)
    summary = {"model": rec.model_name, "data": args.data, "epochs": len(rec.history),
               "fit_seconds": result.fit_seconds,
               "ratings_per_second": result.ratings_per_second,
               "out": str(out) if save else None,
               "world_size": rec.metadata["world_size"],
               "rows_per_rank": rec.metadata["rows_per_rank"],
               **result.metrics, "diagnostics": rec.metadata.get("diagnostics", []),
               "problems": result.problems, "notes": result.notes}
    code = 3 if result.problems and not save else 0
    if args.json:
        _print_json(summary)
        return code
    sides = [side for side in ("train", "validation", "test") if side in result.metrics]
    table = pd.DataFrame(result.metrics).T.reindex(sides)
    shown = [c for c in table.columns if c not in ("n", "unknown", "users_ranked")]
    _print_frame(table[shown].reset_index(names="split"))
    print(f"fit {result.fit_seconds:.2f} s, {result.ratings_per_second:,.0f} ratings/s; "
          + (f"saved to {out}" if save else "not saved"))
    return code


# ----------------------------------------------------------------------------- use a model
def _load(path: str) -> Any:
    from embrec.artifacts import load

    return load(path)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from embrec.data.datasets import load_dataset
    from embrec.evaluation.evaluate import evaluate
    from embrec.runs import recorded_test_split

    rec = _load(args.model_dir)
    test = load_dataset(args.data) if args.data else recorded_test_split(rec)
    metrics = evaluate(rec, test, metrics=args.metrics, k=args.k, threshold=args.threshold,
                       segments=args.segments, baselines=args.baselines)
    if args.json:
        _print_json(metrics)
        return 0
    segments = metrics.pop("segments", None)
    compared = [key.removeprefix("popular:") for key in metrics if key.startswith("popular:")]
    if compared:  # --baselines: the model beside popularity, one row per ranking metric
        _print_frame(pd.DataFrame({"metric": compared, rec.model_name: [
            metrics.pop(key) for key in compared], "popular": [
            metrics.pop(f"popular:{key}") for key in compared], "ratio": [
            metrics.pop(f"{key}/popular") for key in compared]}))
    for key, value in metrics.items():
        print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")
    if segments:
        print()
        _print_frame(pd.DataFrame(segments).T.reset_index(names="segment"))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
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
    if args.user is None or args.item is None:
        raise ConfigError("predict", None, "needs --user and --item, or --input pairs.csv")
    user, item = rec.users.coerce(args.user), rec.items.coerce(args.item)
    value = rec.predict(user, item, on_unknown=args.on_unknown, kind=args.kind)
    if args.json:
        _print_json({"user": user, "item": item, "prediction": value})
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


def _cmd_recommend(args: argparse.Namespace) -> int:
    rec = _load(args.model_dir)
    frame = rec.recommend(user=rec.users.coerce(args.user), n=args.n,
                          exclude_seen=not args.include_seen)
    _print_result(frame, args.json)
    return 0


def _cmd_similar(args: argparse.Namespace) -> int:
    rec = _load(args.model_dir)
    _print_result(rec.similar_items(rec.items.coerce(args.item), n=args.n), args.json)
    return 0


def _print_result(frame: pd.DataFrame, as_json: bool) -> None:
    if as_json:
        _print_json(frame.to_dict(orient="records"))
    else:
        _print_frame(frame)


def _cmd_serve(args: argparse.Namespace) -> int:
    from embrec.serving.server import serve

    serve(args.model_dir, host=args.host, port=args.port, workers=args.workers,
          device=args.device, threads=args.threads, access_log=not args.no_access_log)
    return 0


# ----------------------------------------------------------------------------- parser
def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model, evaluate it and save it",
                       description="Train on a data set (default: the embedded synthetic one), "
                       "evaluate on a held-out split and save the model directory.")
    p.add_argument("--data", default="synthetic", help="data set name or ratings path")
    p.add_argument("--model", help="model name (biased-mf, gmf, mlp, neumf, popular, ease)")
    p.add_argument("--preset", help="named preset (default, movielens-notebook, ...)")
    p.add_argument("--config", help="TOML file with [model], [train], [split] tables")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--embedding-dim", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--loss", help="rating (default), bpr, softmax, sampled-softmax, in-batch, "
                   "or rating+<ranking loss>")
    p.add_argument("--validation", type=float, help="fraction of train held out to validate")
    p.add_argument("--early-stopping", type=int, metavar="EPOCHS",
                   help="stop after this many epochs without a better validation RMSE")
    p.add_argument("--test-size", type=float, help="fraction held out for the test split")
    p.add_argument("--split", help="random (default), user, time, last or leave-one-out")
    p.add_argument("--seed", type=int)
    p.add_argument("--test-data", help="evaluate on this file instead of splitting")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for training (default: 1 below batch 32768, else torch's)")
    p.add_argument("--out", help="output directory (default runs/<data>-<model>-<time>)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in <out>.checkpoints")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="also checkpoint every N steps (with --out: every epoch)")
    p.add_argument("--allow-degenerate", action="store_true",
                   help="save a diverged, constant or worse-than-the-mean model anyway "
                   "(otherwise it is not saved and the exit code is 3)")
    p.set_defaults(handler=_cmd_train)


def _add_model_commands(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="evaluate a saved model")
    p.add_argument("model_dir")
    p.add_argument("--data", help="test ratings (default: the model's recorded test split)")
    p.add_argument("--metrics", nargs="+", default=["rmse", "mae", "mse"],
                   help="e.g. rmse mae ndcg@10 precision@10 recall@10 map@10 hit_rate@10 coverage")
    p.add_argument("-k", type=int, default=10, help="list length of ranking metrics without @K")
    p.add_argument("--threshold", type=float, default=4.0,
                   help="a test rating at or above it is relevant (ranking metrics)")
    p.add_argument("--segments", action="store_true",
                   help="break metrics down by cold/warm/unknown users and unknown items")
    p.add_argument("--baselines", action="store_true",
                   help="also fit 'popular' on the model's training rows; show each ranking "
                   "metric beside it, with the ratio")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_evaluate)

    p = sub.add_parser("predict", help="predict ratings for user-item pairs")
    p.add_argument("model_dir")
    p.add_argument("--user")
    p.add_argument("--item")
    p.add_argument("--input", help="CSV with columns user,item")
    p.add_argument("--output", help="CSV to write (default: standard output)")
    p.add_argument("--on-unknown", choices=("error", "nan", "mean"), default="error")
    p.add_argument("--kind", choices=("rating", "score"), default="rating",
                   help="'score' for a ranking model's scores (popular, ease)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser("recommend", help="top-N items for a user")
    p.add_argument("model_dir")
    p.add_argument("--user", required=True)
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--include-seen", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_recommend)

    p = sub.add_parser("similar", help="items nearest to an item")
    p.add_argument("model_dir")
    p.add_argument("--item", required=True)
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_similar)

    p = sub.add_parser("serve", help="serve a saved model over HTTP")
    p.add_argument("model_dir")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per worker")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--no-access-log", action="store_true", help="no line per request")
    p.set_defaults(handler=_cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``embrec`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="embrec", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("datasets", help="list, fetch and describe data sets")
    p.add_argument("action", choices=("list", "fetch", "info"))
    p.add_argument("name", nargs="?", default="synthetic", help="data set name or path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_datasets)
    _add_train(sub)
    _add_model_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``embrec`` command line.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 for a user error (bad input, unknown
        id, bad setting, corrupt model folder), 3 when ``train`` produced a
        degenerate model (diverged, constant, or worse than predicting the mean;
        not saved unless ``--allow-degenerate``), 130 on Ctrl-C.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except EmbrecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
