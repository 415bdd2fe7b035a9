"""Reading user and item feature files: delimited text with a header, or Parquet.

Errors name the file, the line, the column and the value, as the ratings readers'
do; the encoding itself is :func:`embrec.data.features.features_from_frame`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from embrec.data.delimited import read_text, sniff
from embrec.data.features import Features, features_from_frame
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError, DataError, ParseError

__all__ = ["read_features", "with_features"]


def read_features(path: str | os.PathLike[str], *, kind: str = "user", id: str | None = None,
                  columns: list[str] | None = None, multi: tuple[str, ...] = (),
                  numeric: tuple[str, ...] = (), categorical: tuple[str, ...] = (),
                  sep: str | None = None, multi_sep: str = "|",
                  names: list[str] | None = None) -> Features:
    """Read a user or item feature file (CSV/TSV/delimited text with a header, or Parquet).

    Args:
        path: the file.
        kind: ``"user"`` or ``"item"``.
        id: the id column; the first column when None.
        columns: the feature columns to keep; all others when None.
        multi: columns holding several values joined by ``multi_sep`` (genres).
        numeric: columns to read as numbers (inferred otherwise).
        categorical: columns to read as categories even when numeric.
        sep: the field separator; from the extension (``.tsv``: tab) or the header line.
        multi_sep: the separator inside multi-valued cells.
        names: column names for a file without a header row.

    Returns:
        The encoded features.

    Raises:
        DataError: if the file is missing, empty, or an id repeats (naming both lines).
        MissingColumnError: for a named column that is absent.
        ParseError: for a line with the wrong number of fields or a bad number,
            naming file, line, column and value.
        ConfigError: for an unknown ``kind``.
    """
    if kind not in ("user", "item"):
        raise ConfigError("kind", kind, "must be 'user' or 'item'")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"no such {kind} feature file", path=file, hint="check the path")
    table = pd.read_parquet(file) if file.suffix == ".parquet" else _read_text(file, sep, names)
    return features_from_frame(table, kind=kind, id=id or str(table.columns[0]), columns=columns,
                               multi=multi, numeric=numeric, categorical=categorical,
                               sep=multi_sep, source=str(file))


def _read_text(file: Path, sep: str | None, names: list[str] | None) -> pd.DataFrame:
    with file.open(encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    if not first.strip():
        raise DataError("the feature file is empty", path=file, line=1,
                        hint="the first line names the columns: id,age,gender,...")
    sep = sep or ("\t" if file.suffix == ".tsv" else max(",\t;|", key=first.count))
    fmt = sniff(file, sep=sep, header=names is None, names=names)
    table = read_text(file, fmt, fmt.names, dict.fromkeys(fmt.names, pa.string()), strict=False)
    if table.invalid:  # the first line with too few or too many fields
        bad = table.invalid[0]
        expected, found = (int(n) for n in re.findall(r"\d+", bad.message)[:2])
        column = fmt.names[found] if found < expected else None
        raise ParseError(f"too few fields: no value for column {column!r}" if column else
                         f"wrong number of fields: {found} fields where the header has {expected}",
                         path=file, line=bad.key, column=column,
                         hint=f"fields are separated by {sep!r}; quote values that hold it")
    frame = pd.DataFrame({name: column.to_pandas() for name, column in table.columns.items()})
    frame = frame.fillna("")  # an empty field is read as null
    frame.attrs["lines"] = table.locator.key_of(np.arange(len(frame)))
    return frame


def with_features(ratings: Ratings, *, user: str | os.PathLike[str] | Features | None = None,
                  item: str | os.PathLike[str] | Features | None = None) -> Ratings:
    """Return ``ratings`` carrying these user and item features (a file is read; None keeps
    the ratings' own).

    Raises:
        DataError: for an unreadable feature file (see :func:`read_features`).
    """
    def table(value: str | os.PathLike[str] | Features | None, kind: str) -> Features | None:
        if value is None or isinstance(value, Features):
            return value
        return read_features(value, kind=kind)

    return dataclasses.replace(ratings, user_features=table(user, "user") or
                               ratings.user_features,
                               item_features=table(item, "item") or ratings.item_features)
