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

from embrec.data.features import Features, features_from_frame
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError, DataError, ParseError

__all__ = ["read_features", "with_features"]

_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


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
    if sep is None:
        sep = "\t" if file.suffix == ".tsv" else max(",\t;|", key=first.count)
    try:
        table = pd.read_csv(file, sep=sep, dtype=str, keep_default_na=False, header=None
                            if names else 0, names=names, skip_blank_lines=False,
                            engine="c")
    except pd.errors.ParserError as error:
        found = _RAGGED.search(str(error))
        line = int(found.group(2)) if found else None
        detail = (f"{found.group(3)} fields where the header has {found.group(1)}"
                  if found else str(error).splitlines()[0])
        raise ParseError(f"wrong number of fields: {detail}", path=file, line=line,
                         hint=f"fields are separated by {sep!r}; quote values that hold it"
                         ) from None
    offset = 1 if names else 2
    lines = np.arange(len(table)) + offset
    blank = (table == "").all(axis=1).to_numpy()
    text = pd.Series(file.read_text(encoding="utf-8", errors="replace").splitlines()[
        offset - 1:offset - 1 + len(table)], dtype=object)
    fields = text.str.count(re.escape(sep)).to_numpy() + 1
    quoted = text.str.contains('"').to_numpy()  # a quoted field may hold the separator
    short = (fields < table.shape[1]) & ~blank[:len(fields)] & ~quoted
    if short.any():
        row = int(np.flatnonzero(short)[0])
        column = str(table.columns[int(fields[row])])
        raise ParseError(f"too few fields: no value for column {column!r}", path=file,
                         line=int(lines[row]), column=column,
                         hint=f"fields are separated by {sep!r}; every line needs "
                         f"{table.shape[1]} fields")
    table = table[~blank].reset_index(drop=True)
    table.attrs["lines"] = lines[~blank]
    return table


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
