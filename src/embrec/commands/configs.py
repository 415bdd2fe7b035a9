"""From flags and a ``--config`` TOML file to the library's config dataclasses.

Settings come from the preset, then the TOML file's tables (``[model]``,
``[train]``, ``[split]``, ``[data]``), then the flags; each table's keys flow
into the matching dataclass by name, so a field the library adds is a valid
TOML key at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from collections.abc import Sequence
from typing import Any

from embrec.commands.options import read_options
from embrec.config import require_choice
from embrec.errors import ConfigError

__all__ = ["RunSettings", "override", "read_toml", "run_settings"]

TABLES = ("preset", "model", "train", "split", "data")


@dataclasses.dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything a training run needs besides the data's name."""

    model: Any
    train: Any
    split: Any
    read: dict[str, Any]
    preset: str | None
    changed: tuple[str, ...] = ()
    """The settings that differ from the preset's (or the model's defaults), recorded."""


def run_settings(args: argparse.Namespace, train_flags: dict[str, Any]) -> RunSettings:
    """Resolve the preset, ``--config`` tables and flags into configs.

    ``args`` may lack ``preset`` (as for ``tune``); ``train_flags`` are the
    ``TrainConfig`` fields given as flags (None when not given).

    Raises:
        ConfigError: for an unknown preset, model, table or setting.
    """
    from embrec.commands.runs import SplitSpec
    from embrec.models import MODELS
    from embrec.presets import PRESETS, default_training

    file = read_toml(args.config) if args.config else {}
    preset_name = (getattr(args, "preset", None) or file.get("preset")
                   or ("default" if not args.model else None))
    preset = PRESETS[_known("preset", preset_name, PRESETS)] if preset_name else None
    model_name = args.model or file.get("model", {}).get("name")
    if model_name:
        model = MODELS[_known("model", model_name, MODELS)]()
    else:
        model = preset.model if preset is not None else PRESETS["default"].model
    train = preset.train if preset is not None else default_training(model)
    base = (model, train)
    model = override(model, _over(file.get("model", {}),
                                  {"embedding_dim": getattr(args, "embedding_dim", None)}),
                     skip=("name",))
    train = override(train, _over(file.get("train", {}),
                                  {"seed": args.seed, "device": args.device,
                                   "num_threads": args.threads, **train_flags}))
    # The split is the data's, never the preset's or the model's: every model and preset is
    # tested on the same rows unless --test-size/--split/[split] say otherwise.
    table, default = file.get("split", {}), SplitSpec()
    split = SplitSpec(method=args.split or table.get("method", default.method),
                      test_size=args.test_size or table.get("test_size", default.test_size),
                      seed=args.seed if args.seed is not None else table.get("seed", default.seed),
                      n_last=table.get("n_last", default.n_last))
    return RunSettings(model, train, split, read_options(args, file.get("data")), preset_name,
                       _changed(base, (model, train)))


RUN_ONLY = ("progress", "device", "num_threads", "checkpoint_every")


def _changed(base: tuple[Any, Any], final: tuple[Any, Any]) -> tuple[str, ...]:
    """``model.field`` / ``train.field`` for each setting the config file or flags changed."""
    if type(base[0]) is not type(final[0]):
        return ("model",)
    return tuple(f"{side}.{f.name}" for side, old, new in zip(("model", "train"), base, final,
                                                              strict=True)
                 for f in dataclasses.fields(old) if f.name not in RUN_ONLY
                 and getattr(old, f.name) != getattr(new, f.name))


def _over(table: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """The config file's table with the flags that were given laid over it."""
    return {**table, **{key: value for key, value in flags.items() if value is not None}}


def _known(kind: str, name: str, registry: dict[str, Any]) -> str:
    require_choice(kind, name, registry)
    return name


def override(config: Any, values: dict[str, Any], skip: Sequence[str] = ()) -> Any:
    """Return ``config`` with the non-None ``values`` replaced (lists become tuples), ignoring
    the ``skip`` keys (such as ``[model] name``); ``__post_init__`` validates it again.

    Raises:
        ConfigError: for a key that is not a field of the config, or a bad value.
    """
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {k: v for k, v in values.items() if v is not None and k not in skip}
    unknown = [k for k in changes if k not in fields]
    if unknown:
        raise ConfigError(unknown[0], changes[unknown[0]],
                          f"is not a setting of {type(config).__name__}",
                          hint=f"its settings are {sorted(fields)}")
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    return dataclasses.replace(config, **changes)


def read_toml(path: str) -> dict[str, Any]:
    """Read a ``--config`` TOML file's tables, checking its top-level keys.

    Raises:
        ConfigError: if the file cannot be read, is not TOML or has an unknown table.
    """
    try:
        with open(path, "rb") as handle:
            file = tomllib.load(handle)
    except OSError as error:
        raise ConfigError("config", path, f"cannot be read ({error.strerror})") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("config", path, f"is not valid TOML: {error}") from error
    unknown = [key for key in file if key not in TABLES]
    if unknown:
        raise ConfigError("config", path, f"has an unknown table [{unknown[0]}]",
                          hint=f"its tables are {', '.join(f'[{t}]' for t in TABLES[1:])} "
                          "and a top-level preset = NAME")
    return file
