"""How the command line reads data, and how its hints name its own flags.

Every command that reads ratings takes the same flags (``--user-col``, ``--sep``...),
which a ``--config`` file's ``[data]`` table may also hold; both become the keyword
arguments of :func:`embrec.load_dataset`. Library errors name Python arguments
(``sep=...``); :func:`cli_hint` rewrites their hints to name the flags (``--sep ...``).
"""

from __future__ import annotations

import argparse
import difflib
import re
from typing import Any

from embrec.errors import ConfigError

__all__ = ["FLAGS", "add_read_arguments", "cli_hint", "read_options"]

#: Python argument of read_ratings / load_dataset -> command-line flag.
FLAGS: dict[str, str] = {
    "user": "--user-col", "item": "--item-col", "rating": "--rating-col",
    "timestamp": "--timestamp-col", "sep": "--sep", "format": "--format", "scale": "--scale",
    "duplicates": "--duplicates", "on_bad_lines": "--on-bad-lines",
    "user_features": "--user-features", "item_features": "--item-features",
}
#: ``[data]`` key of the TOML config (the flag's argparse name) -> Python argument.
TOML_KEYS: dict[str, str] = {flag[2:].replace("-", "_"): name for name, flag in FLAGS.items()}
#: Training settings that have a flag of their own, for hints that name them.
TRAIN_FLAGS = ("epochs", "batch_size", "embedding_dim", "learning_rate", "weight_decay",
               "validation", "early_stopping", "seed", "device", "on_unknown")
#: Settings without a flag, by the ``--config`` table that holds them (hints name the key).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("activation", "biases", "bounded", "by", "damping", "dropout", "hidden", "init",
              "init_std", "l2", "max_items", "mlp_embedding_dim"),
    "train": ("adam_epsilon", "bias_weight_decay", "dense_weight_decay", "embedding_updates",
              "momentum", "negative_sampling", "negatives", "optimizer", "positive_threshold",
              "ranking_weight", "rating_weighted", "schedule", "step_path", "validation_mode"),
}
_SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
               "space": " "}


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the data-reading flags, in their own help group, to ``parser``."""
    group = parser.add_argument_group(
        "reading the data", "how to read a ratings file (also the [data] table of --config); "
        "known data sets and folders in a publisher's layout need none of these")
    for role in ("user", "item", "rating", "timestamp"):
        group.add_argument(FLAGS[role], metavar="COLUMN", dest=f"{role}_col",
                           help=f"the {role} column: a name, or a 0-based position "
                           "(default: recognised by its usual names)")
    group.add_argument("--sep", help="field separator, e.g. ',' '\\t' (or tab) '::' "
                       "(default: guessed from the file)")
    group.add_argument("--format", help="csv, tsv, text, parquet, npz, rdata or rds "
                       "(default: from the file's suffix)")
    group.add_argument("--scale", nargs="+", metavar="LOW HIGH",
                       help="the rating scale, as 'LOW HIGH' or 'LOW,HIGH' "
                       "(default: inferred from the data, or the data set's published one)")
    group.add_argument("--duplicates", choices=("error", "last", "mean"),
                       help="a (user, item) pair rated more than once: stop with an error, keep "
                       "the last rating or average them (default: error)")
    group.add_argument("--on-bad-lines", choices=("error", "skip"),
                       help="malformed lines and bad values: stop with an error, or skip them "
                       "with one warning (default: error)")
    for kind in ("user", "item"):
        group.add_argument(f"--{kind}-features", metavar="FILE", help=f"a {kind} feature table "
                           f"(CSV/TSV with a header, or Parquet; first column the {kind} id; "
                           "genres-like values joined by '|'), for models that use side "
                           "features such as bayesian-fm (default: the data set's own)")


def read_options(args: argparse.Namespace, table: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge the flags over the ``--config`` file's ``[data]`` table into ``load_dataset``
    arguments: only the options given, keyed by their Python argument names.

    Raises:
        ConfigError: for an unknown ``[data]`` key or a malformed ``--scale``.
    """
    table = dict(table or {})
    unknown = [key for key in table if key not in TOML_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(TOML_KEYS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {sorted(TOML_KEYS)}"
        raise ConfigError("[data]", unknown[0], "is not a data-reading setting", hint=hint)
    options = {TOML_KEYS[key]: value for key, value in table.items()}
    flags = {name: getattr(args, key, None) for key, name in TOML_KEYS.items()}
    options.update({key: value for key, value in flags.items() if value is not None})
    for role in ("user", "item", "rating", "timestamp"):
        if isinstance(options.get(role), str) and options[role].isdigit():
            options[role] = int(options[role])
    if "sep" in options:
        options["sep"] = _SEPARATORS.get(options["sep"].lower(), options["sep"])
    if "scale" in options:
        options["scale"] = _scale(options["scale"])
    return options


def _scale(value: Any) -> tuple[float, float]:
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    if len(parts) == 1 and isinstance(parts[0], str):
        parts = parts[0].replace(",", " ").split()
    try:
        low, high = (float(part) for part in parts)
    except (TypeError, ValueError):
        raise ConfigError("scale", value, "is not two numbers",
                          hint="give --scale LOW HIGH (or LOW,HIGH), e.g. --scale 1 5") from None
    return low, high


def cli_hint(text: str) -> str:
    """Rewrite the ``hint:`` lines of an error or warning to name command-line flags.

    ``pass sep=... and format=...`` becomes ``pass --sep ... and --format ...``,
    ``user=0`` becomes ``--user-col 0``, ``scale=(min, max)`` becomes
    ``--scale MIN MAX`` and ``a lower learning_rate`` becomes ``a lower
    --learning-rate``. A setting without a flag becomes its ``--config`` key:
    ``activation='tanh'`` becomes ``activation = "tanh" in [model]``. Lines other
    than hints are left as they are.
    """
    lines = text.split("\n")
    return "\n".join(_flags(line) if line.lstrip().startswith("hint:") else line
                     for line in lines)


_ASSIGN = re.compile(r"(?<![\w.-])(" + "|".join([*FLAGS, *TRAIN_FLAGS]) + r")"
                     r"=(\([^)]*\)|<[^>]*>|'[^']*'|\"[^\"]*\"|[^\s,;?)]+)")
# bare names only where they cannot be ordinary words ("raise weight_decay", not "seed")
_BARE = re.compile(r"(?<![\w.'=-])(" + "|".join(n for n in TRAIN_FLAGS if "_" in n)
                   + r")(?![\w'=])")


_KEY = re.compile(r"(?<![\w.-])(" + "|".join(k for keys in TABLE_KEYS.values() for k in keys)
                  + r")=(\([^)]*\)|'[^']*'|\"[^\"]*\"|[^\s,;?)]+)")


def _toml(value: str) -> str:
    """A Python literal from a hint as TOML: 'tanh' -> "tanh", True -> true, (1, 2) -> [1, 2]."""
    if value[:1] in "'\"":
        return '"' + value.strip("'\"") + '"'
    if value in ("True", "False"):
        return value.lower()
    if value.startswith("("):
        return "[" + value.strip("()").rstrip(", ") + "]"
    return value


def _table_key(match: re.Match[str]) -> str:
    table = next(t for t, keys in TABLE_KEYS.items() if match[1] in keys)
    return f"{match[1]} = {_toml(match[2])} in [{table}]"


def _flag(name: str) -> str:
    return FLAGS.get(name) or "--" + name.replace("_", "-")


def _value(name: str, value: str) -> str:
    if name == "scale" and value.startswith("("):
        return " ".join(part.strip().upper() for part in value.strip("()").split(","))
    if value == "<column name or position>":
        return "COLUMN"
    return value.strip("'\"")


def _flags(line: str) -> str:
    line = re.sub(r"(?<![\w-])\w+=\S+? \((?:CLI|command line): ([^)]*)\)", r"\1", line)
    line = re.sub(r" ?\((?:CLI|command line): [^)]*\)", "", line)
    line = _ASSIGN.sub(lambda m: f"{_flag(m[1])} {_value(m[1], m[2])}", line)
    line = _KEY.sub(_table_key, line)
    return _BARE.sub(lambda m: _flag(m[1]), line)
