"""The ``embrec`` argument parser: every subcommand, flag, default and listing.

Building it imports neither PyTorch nor pandas (the lists of models, presets and
data sets come from :mod:`embrec.commands.catalog`), so ``embrec --help`` and
every subcommand's ``--help`` answer at once.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from embrec.commands.blend import add_blend
from embrec.commands.catalog import (
    DATASET_NAMES,
    MODEL_HELP,
    PRESET_HELP,
    SPLIT_HELP,
    listing,
)
from embrec.commands.launch import add_launch
from embrec.commands.options import add_read_arguments

__all__ = ["SUBCOMMANDS", "Formatter", "build_parser"]

SUBCOMMANDS = ("datasets", "train", "tune", "blend", "evaluate", "predict", "recommend",
               "similar-items", "serve", "launch")
Handler = Callable[[argparse.Namespace], int]


class Formatter(argparse.HelpFormatter):
    """Wraps each line of a description on its own, keeps indented listing lines as they
    are, and adds ``(default: X)`` where a flag has a default."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(line if line.startswith("  ") or not line
                         else textwrap.fill(line, width, initial_indent=indent,
                                            subsequent_indent=indent)
                         for line in text.splitlines())

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if action.dest == "scale":
            return "LOW HIGH"
        return super()._format_args(action, default_metavar)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, False, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


def _handler(name: str) -> Handler:
    """A handler that imports its module only when the command runs."""

    def run(args: argparse.Namespace) -> int:
        from embrec.commands import blend, handlers, tune

        module = {"tune": tune, "blend": blend}.get(name, handlers)
        result: int = getattr(module, f"cmd_{name}")(args)
        return result

    return run


def _command(sub: Any, name: str, summary: str, description: str = "",
             epilog: str | None = None, aliases: list[str] | None = None
             ) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=description or summary[0].upper() + summary[1:] + ".",
        epilog=epilog, formatter_class=Formatter, aliases=aliases or [])
    return parser


def _model_command(sub: Any, name: str, summary: str, description: str,
                   aliases: list[str] | None = None) -> argparse.ArgumentParser:
    """A subcommand that takes a model folder as its first argument."""
    p = _command(sub, name, summary, description, aliases=aliases)
    p.add_argument("model_dir", metavar="DIR", help="a model directory written by train")
    return p


def _add_datasets(sub: Any) -> None:
    p = _command(sub, "datasets", "list, fetch and describe data sets",
                 "List the known data sets, download one into the cache, or describe one "
                 "(or any ratings file).")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = _command(actions, "list", "list the known data sets and whether each is cached")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(handler=_handler("datasets_list"))
    fetchable = [name for name in DATASET_NAMES if name != "synthetic"]
    q = _command(actions, "fetch", "download a data set into the cache",
                 "Download a data set, check its SHA-256 and unpack it into the cache "
                 "(~/.cache/embrec/datasets, or $EMBREC_HOME/datasets). 'synthetic' needs no "
                 "download: it is generated in memory.")
    q.add_argument("name", metavar="NAME", choices=fetchable, help=", ".join(fetchable))
    q.add_argument("--json", action="store_true", help="print only the folder, no progress bar")
    q.set_defaults(handler=_handler("datasets_fetch"))
    q = _command(actions, "info", "describe a data set or ratings file",
                 "Count the ratings, users and items of a data set or ratings file and "
                 "describe its scale, density and activity quantiles.")
    q.add_argument("name", metavar="NAME", help=f"a data set ({', '.join(DATASET_NAMES)}) "
                   "or the path of a ratings file or folder")
    q.add_argument("--json", action="store_true", help="print JSON at full precision")
    add_read_arguments(q)
    q.set_defaults(handler=_handler("datasets_info"))


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The flags ``train`` and ``tune`` share: data, model, config and split."""
    p.add_argument("--data", default="synthetic", help="a data set name "
                   f"({', '.join(DATASET_NAMES)}) or the path of a ratings file or folder")
    p.add_argument("--model", metavar="MODEL",
                   help="the model (listed below; default: the preset's)")
    p.add_argument("--config", metavar="FILE.toml", help="a TOML file with [model] (name = "
                   "MODEL and its settings), [train], [split] and [data] tables; flags override it")
    p.add_argument("--test-size", type=float, help="fraction held out for the test split "
                   "(default: 0.1, whatever the model or preset, so runs compare on the same "
                   "rows; the movielens notebook used 0.2)")
    p.add_argument("--split", metavar="METHOD",
                   help="how to hold out the test ratings (listed below; default: random)")
    p.add_argument("--seed", type=int, help="seed of the split and of training "
                   "(default: split seed 0; the training seed is drawn at random and recorded "
                   "in the model's config.json)")
    p.add_argument("--test-data", metavar="PATH",
                   help="evaluate on this file instead of splitting --data")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto, CUDA when present)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for training "
                   "(default: per-rating kernels 1 below 1M ratings, else every core; "
                   "mini-batches 1 below a batch of 32768, else torch's)")
    add_read_arguments(p)


def _catalog_epilog() -> str:
    return (f"presets:\n{listing(PRESET_HELP)}\n\nmodels:\n{listing(MODEL_HELP)}\n\n"
            f"split methods:\n{listing(SPLIT_HELP)}")


def _add_train(sub: Any) -> None:
    p = _command(sub, "train", "train a model, evaluate it and save it",
                 "Train on a data set (default: the embedded synthetic one), evaluate on a "
                 "held-out test split and save the model directory. Settings come from the "
                 "preset, then --config, then flags.", epilog=_catalog_epilog())
    p.add_argument("--preset", metavar="PRESET",
                   help="named model and training settings (listed below; default: default, "
                   "unless --model is given)")
    add_run_arguments(p)
    group = p.add_argument_group("training (default: the preset's)")
    group.add_argument("--epochs", type=int, help="passes over the training ratings")
    group.add_argument("--batch-size", type=int, help="ratings per gradient step")
    group.add_argument("--embedding-dim", type=int, help="size of the user and item vectors")
    group.add_argument("--learning-rate", type=float, help="optimiser step size")
    group.add_argument("--weight-decay", type=float, help="L2 penalty on the weights")
    group.add_argument("--loss", help="rating (default), bpr, softmax, sampled-softmax, "
                       "in-batch, or rating+<ranking loss>")
    group.add_argument("--validation", type=float, metavar="FRACTION",
                       help="fraction of the training ratings held out to validate each epoch "
                       "(default: 0, none)")
    group.add_argument("--early-stopping", type=int, metavar="EPOCHS",
                       help="stop after this many epochs without a better validation RMSE "
                       "(needs --validation; default: off)")
    group = p.add_argument_group("output")
    group.add_argument("--out", metavar="DIR",
                       help="model directory (default: runs/<data>-<model>-<time>)")
    group.add_argument("--json", action="store_true", help="print one JSON object")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group.add_argument("--resume", action="store_true",
                       help="continue from the last checkpoint in <out>.checkpoints")
    group.add_argument("--keep-checkpoints", action="store_true",
                       help="keep <out>.checkpoints after the model is saved (by default they "
                       "are removed then; a failed or interrupted run keeps them to --resume)")
    group.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="also checkpoint every N steps (with --out: every epoch)")
    group.add_argument("--allow-degenerate", action="store_true",
                       help="save a diverged, constant or worse-than-the-mean model anyway "
                       "(otherwise it is not saved and the exit code is 3)")
    p.set_defaults(handler=_handler("train"))


def _add_tune(sub: Any) -> None:
    p = _command(sub, "tune", "search a model's settings with Optuna (the [tune] extra)",
                 "Search the model's and training's settings on validation ratings carved "
                 "from the training split (never the test split), pruning poor trials after "
                 "their first epochs. The study lives in Optuna storage, so an interrupted "
                 "search resumes and several processes can share one study. Writes the best "
                 "settings as a TOML file for `embrec train --config`.",
                 epilog=_catalog_epilog())
    add_run_arguments(p)
    p.add_argument("--trials", type=int, default=40, help="trials to run in this call")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop starting trials after this long (default: no limit)")
    p.add_argument("--metric", choices=("rmse", "ndcg@10"), default="rmse",
                   help="validation metric to optimise")
    p.add_argument("--validation", type=float, default=0.1, metavar="FRACTION",
                   help="fraction of the training split used to validate trials")
    p.add_argument("--storage", metavar="URL", help="Optuna storage, e.g. sqlite:///tune.db "
                   "(default: in memory, nothing to resume)")
    p.add_argument("--study", metavar="NAME", help="study name (default: tune-<data>-<model>)")
    p.add_argument("--out", metavar="FILE.toml", default="best.toml",
                   help="where to write the best settings")
    p.add_argument("--top", type=int, default=5, help="best trials shown in the table")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_handler("tune"))


def _add_model_commands(sub: Any) -> None:
    p = _model_command(sub, "evaluate", "evaluate a saved model",
                       "Evaluate a saved model on the test rows its training run held out "
                       "(saved in the model folder as test.parquet: nothing is read or split "
                       "again), or on the ratings of --test-data FILE. Test rows that are the "
                       "model's training rows are refused: scored on them a model looks better "
                       "than it is.")
    p.add_argument("--test-data", metavar="FILE",
                   help="test ratings (default: the model's own held-out rows)")
    p.add_argument("--data", metavar="FILE", help=argparse.SUPPRESS)  # deprecated: --test-data
    p.add_argument("--allow-training-rows", action="store_true",
                   help="score test rows that are training rows anyway (reported, not refused)")
    p.add_argument("--folds", type=int, metavar="K",
                   help="instead: K-fold cross-validation of the model's settings on --test-data "
                   "FILE (or the model's data), mean and std of each metric")
    p.add_argument("--metrics", nargs="+", default=["rmse", "mae", "mse"], metavar="METRIC",
                   help="rmse mae mse ndcg@K precision@K recall@K map@K hit_rate@K coverage "
                   "(default: rmse mae mse)")
    p.add_argument("-k", type=int, default=10, help="list length of ranking metrics without @K")
    p.add_argument("--threshold", type=float, default=4.0,
                   help="a test rating at or above it is relevant (ranking metrics)")
    p.add_argument("--segments", action="store_true",
                   help="break metrics down by cold/warm/unknown users and unknown items")
    p.add_argument("--baselines", action="store_true",
                   help="also fit 'popular' on the model's training rows; show each ranking "
                   "metric beside it, with the ratio (the RMSE of the global, user and item "
                   "means is always shown)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_read_arguments(p)
    p.set_defaults(handler=_handler("evaluate"))

    p = _model_command(sub, "predict", "predict ratings for user-item pairs",
                       "Predict the rating of one pair (--user and --item) or of every pair in a "
                       "CSV file with a header 'user,item' (--input).")
    p.add_argument("--user", help="a raw user id")
    p.add_argument("--item", help="a raw item id")
    p.add_argument("--input", metavar="PAIRS.csv", help="CSV with columns user,item")
    p.add_argument("--output", metavar="OUT.csv", help="CSV to write (default: standard output)")
    p.add_argument("--on-unknown", choices=("error", "nan", "mean"), default="error",
                   help="an id unseen in training: stop with an error, predict NaN, or fall "
                   "back to the means")
    p.add_argument("--kind", choices=("rating", "score"), default="rating",
                   help="'score' for a ranking model's scores (popular, ease)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_handler("predict"))

    p = _model_command(sub, "recommend", "top-N items for a user",
                       "The N highest-scored items for a user, leaving out the items the user "
                       "rated in training; with titles where the data has them.")
    p.add_argument("--user", required=True, help="a raw user id")
    p.add_argument("-n", type=int, default=10, help="how many items")
    p.add_argument("--include-seen", action="store_true",
                   help="also rank the items the user rated in training")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(handler=_handler("recommend"))

    p = _model_command(sub, "similar-items", "items nearest to an item",
                       "The N items whose item vectors are closest (cosine) to an item's; "
                       "rec.similar_items(item, n) in Python. 'embrec similar' is the same "
                       "command.",
                       aliases=["similar"])
    p.add_argument("--item", required=True, help="a raw item id")
    p.add_argument("-n", type=int, default=10, help="how many items")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(handler=_handler("similar"))

    p = _model_command(sub, "serve", "serve a saved model over HTTP (the [serve] extra)",
                       "Serve a saved model with FastAPI and uvicorn; API docs at /docs and "
                       "/redoc, served from the installed package (no internet needed).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per worker")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--no-access-log", action="store_true", help="no log line per request")
    p.set_defaults(handler=_handler("serve"))


def build_parser() -> argparse.ArgumentParser:
    """Return the ``embrec`` argument parser; each subcommand's ``handler`` imports its code."""
    from embrec import __version__

    parser = argparse.ArgumentParser(
        prog="embrec", formatter_class=Formatter,
        description="Neural-network recommenders on rating data: read, split, train, "
        "evaluate, recommend, serve.",
        epilog="Run 'embrec COMMAND --help' for a command's flags and defaults.")
    parser.add_argument("--version", action="version", version=f"embrec {__version__} "
                        f"(Python {sys.version.split()[0]})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_datasets(sub)
    _add_train(sub)
    _add_tune(sub)
    add_blend(sub, _command, _handler("blend"))
    _add_model_commands(sub)
    add_launch(sub, _command)
    return parser
