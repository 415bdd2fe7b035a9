"""read_ratings(): one entry point for every rating format, returning validated ``Ratings``.

The format comes from ``format=`` or the suffix; the columns are recognised by their
usual names (``userId``, ``movieId``, ``book_id``, ``rating``...) unless named. Bad
input is reported with its file, line, column and value, never dropped silently.
"""

from __future__ import annotations

import difflib
import os
import re
import zipfile
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse

from embrec.data.columns import ROLES, arrow_column, numpy_column, series_column
from embrec.data.delimited import TextFormat, read_raw_ratings, sniff
from embrec.data.layouts import load_layout
from embrec.data.ratings import Duplicates, Ratings
from embrec.data.validation import (
    Locator,
    OnBadLines,
    RawRatings,
    build_ratings,
    check_options,
    log,
    warn_skipped,
)
from embrec.errors import ConfigError, DataError, MissingColumnError

__all__ = ["ALIASES", "FORMATS", "read_ratings"]

ColumnRef = str | int

#: Column names recognised for each role, compared lower-case without ``_``, ``-`` or spaces.
ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("userid", "user", "uid", "users", "username", "reviewerid", "customerid"),
    "item": ("movieid", "itemid", "bookid", "item", "iid", "movie", "book", "productid",
             "asin", "trackid", "songid", "artistid", "animeid", "items"),
    "rating": ("rating", "ratings", "score", "stars", "star", "rate", "overall"),
    "timestamp": ("timestamp", "time", "ts", "date", "datetime", "unixtime", "unixreviewtime",
                  "ratedat"),
}

#: Format names accepted by ``format=`` and the suffixes that imply them.
FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv",),
    "tsv": (".tsv", ".tab"),
    "text": (".txt", ".dat", ".data", ".base", ".test"),
    "parquet": (".parquet", ".pq"),
    "npz": (".npz",),
    "rdata": (".rdata", ".rda"),
    "rds": (".rds",),
}
_COMPRESSION = (".gz", ".bz2", ".zst", ".lz4", ".br")
_TEXT = ("csv", "tsv", "text")
# GroupLens files without a header: user, item, rating, timestamp by position
_GROUPLENS_NO_HEADER = re.compile(r"^(u\d?|ua|ub)\.(data|base|test)$|^ratings\.dat$")


# ----------------------------------------------------------------------------- columns
def _normal(name: Hashable) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _named(names: Sequence[Hashable], want: ColumnRef, role: str, source: str) -> Hashable:
    if want in names:
        return want
    if isinstance(want, int) and not isinstance(want, bool) and 0 <= want < len(names):
        return names[want]
    found = [str(n) for n in names]
    if isinstance(want, int):
        message = f"{role}={want} is not a column position; the source has {len(names)} columns"
        raise MissingColumnError(message, path=source, column=str(want),
                                 hint=f"pass a position from 0 to {len(names) - 1} or a name")
    close = difflib.get_close_matches(str(want), found, n=1)
    hint = f"did you mean {role}={close[0]!r}?" if close else f"pass {role}=<one of {found}>"
    raise MissingColumnError(f"no {role} column {want!r}; found {found}", path=source,
                             column=str(want), hint=hint)


def _recognise(names: Sequence[Hashable], role: str, taken: set[Hashable]) -> Hashable | None:
    normal = {_normal(n): n for n in reversed(names) if n not in taken}
    return next((normal[alias] for alias in ALIASES[role] if alias in normal), None)


def resolve_columns(names: Sequence[Hashable], requested: dict[str, ColumnRef | None], *,
                    source: str, header: bool = True) -> dict[str, Hashable]:
    """Pick the column of each role: as requested (a name or 0-based position), else by its
    usual name (only when the ``names`` came from a header row).

    Returns:
        The column per role; ``timestamp`` is absent when there is none.

    Raises:
        MissingColumnError: if a named column is absent, or user, item or rating
            cannot be found.
    """
    chosen: dict[str, Hashable] = {}
    missing: list[str] = []
    for role in ROLES:
        want = requested.get(role)
        found = (_named(names, want, role, source) if want is not None
                 else _recognise(names, role, set(chosen.values())) if header else None)
        if found is not None:
            chosen[role] = found
        elif role != "timestamp":
            missing.append(role)
    if missing:  # every column not found, in one message
        raise _missing(names, missing, source, header)
    return chosen


def _missing(names: Sequence[Hashable], roles: list[str], source: str,
             header: bool) -> DataError:
    if not header:
        example = ", ".join(f"{r}={i}" for i, r in enumerate(ROLES[: len(names)]))
        return MissingColumnError(
            f"no header row, so the {len(names)} columns cannot be recognised by name",
            path=source, column=roles[0], hint=f"pass their 0-based positions, e.g. {example}")
    what = " or ".join(roles) if len(roles) < 3 else ", ".join(roles[:-1]) + f" or {roles[-1]}"
    passes = ", ".join(f"{role}=<column name or position>" for role in roles)
    usual = "; ".join(f"{role}: {', '.join(ALIASES[role][:3])}" for role in roles)
    return MissingColumnError(
        f"no {what} column; found {[str(n) for n in names]}", path=source, column=roles[0],
        hint=f"pass {passes}, or use a usual name ({usual}...)")


# ----------------------------------------------------------------------------- sources
def _existing(source: str | os.PathLike[str]) -> Path:
    path = Path(source).expanduser()
    if path.exists():
        return path
    hint = "check the path"
    if path.parent.is_dir():
        close = difflib.get_close_matches(path.name, [p.name for p in path.parent.iterdir()], n=1)
        hint = f"did you mean {str(path.parent / close[0])!r}?" if close else hint
    raise DataError("no such file or folder", path=path, hint=hint)


def format_of(path: Path, format: str | None) -> str:
    """The format (a key of :data:`FORMATS`) of ``path``: ``format``, or from its suffix.

    Raises:
        ConfigError: for an unknown ``format``.
        DataError: when the suffix says nothing.
    """
    if format is not None:
        name = format.lower().lstrip(".")
        aliases = {suffix.lstrip("."): kind for kind, sfx in FORMATS.items() for suffix in sfx}
        if name in FORMATS or name in aliases:
            return name if name in FORMATS else aliases[name]
        raise ConfigError("format", format, f"is not one of {sorted(FORMATS)}",
                          hint="leave format=None to go by the file's suffix")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    kind = next((kind for kind, sfx in FORMATS.items() if suffix in sfx), None)
    if kind is None or (kind not in _TEXT and path.suffix.lower() in _COMPRESSION):
        known = " ".join(s for sfx in FORMATS.values() for s in sfx)
        raise DataError(f"cannot tell the format from the suffix {suffix or '(none)'!r}",
                        path=path, value=suffix,
                        hint=f"known suffixes: {known} (text may be .gz/.bz2/.zst); pass "
                             f"format= one of {sorted(FORMATS)} to read it anyway")
    return kind


def text_format(path: Path, kind: str, sep: str | None) -> TextFormat:
    """The layout of a delimited file of format ``kind``, from its first lines."""
    return sniff(path, sep=sep, prefer={"csv": ",", "tsv": "\t"}.get(kind))


def text_raw(path: Path, requested: dict[str, ColumnRef | None], kind: str, sep: str | None,
              strict: bool, part: Path | None = None) -> RawRatings:
    """Read a delimited file's rating columns (those of ``part``, a piece of it, when given)."""
    fmt = text_format(path, kind, sep)
    if (not fmt.header and all(v is None for v in requested.values())
            and _GROUPLENS_NO_HEADER.match(path.name) and len(fmt.names) in (3, 4)):
        requested = dict(zip(ROLES, range(len(fmt.names)), strict=False))
    chosen = resolve_columns(fmt.names, requested, source=str(path), header=fmt.header)
    return read_raw_ratings(part or path, fmt,
                            {role: str(name) for role, name in chosen.items()}, strict=strict)


def _parquet_raw(path: Path, requested: dict[str, ColumnRef | None]) -> RawRatings:
    try:
        schema = pq.read_schema(path)
        chosen = resolve_columns(schema.names, requested, source=str(path))
        table = pq.read_table(path, columns=[str(name) for name in chosen.values()])
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"not a readable Parquet file: {error}", path=path,
                        hint="check the file, or pass format= if it is not Parquet") from None
    return RawRatings.of({role: arrow_column(table.column(str(name)), role, str(name))
                          for role, name in chosen.items()}, Locator(str(path), "row"))


def _row_labels(index: pd.Index) -> Any:
    def labels(rows: np.ndarray) -> list[str]:
        return [f"row {v!r}" if isinstance(v, str) else f"row {v}" for v in index[rows].tolist()]

    return labels


def _frame_raw(frame: pd.DataFrame, requested: dict[str, ColumnRef | None],
               source: str) -> RawRatings:
    chosen = resolve_columns(list(frame.columns), requested, source=source)
    return RawRatings.of({role: series_column(frame[name], role, str(name))
                          for role, name in chosen.items()},
                         Locator(source, "row", labels=_row_labels(frame.index)))


def _sparse_raw(matrix: Any, source: str) -> RawRatings:
    coo = sparse.coo_matrix(matrix)
    zeros = coo.data == 0
    if zeros.any():
        log.info("%s: %d stored zeros are not ratings; left out", source, int(zeros.sum()))
    rows, cols, data = coo.row[~zeros], coo.col[~zeros], coo.data[~zeros]

    def labels(positions: np.ndarray) -> list[str]:
        return [f"entry ({r}, {c})" for r, c in zip(rows[positions].tolist(),
                                                   cols[positions].tolist(), strict=True)]

    return RawRatings(numpy_column(rows.astype(np.int64), "user", "row index"),
                      numpy_column(cols.astype(np.int64), "item", "column index"),
                      numpy_column(np.asarray(data), "rating", "value"), None,
                      Locator(source, "entry", labels=labels))


def _no_columns(requested: dict[str, ColumnRef | None]) -> None:
    for role, want in requested.items():
        if want is not None:
            raise ConfigError(role, want, "does not apply to a sparse matrix",
                              hint="its rows are the users, its columns the items, its "
                                   "non-zeros the ratings")


def _npz_raw(path: Path) -> RawRatings:
    try:
        matrix = sparse.load_npz(path)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        raise DataError(f"not a SciPy sparse matrix file: {error}", path=path,
                        hint="save the user x item matrix with scipy.sparse.save_npz; a dense "
                             "np.savez array is not read") from None
    return _sparse_raw(matrix, str(path))


def _r_raw(path: Path, requested: dict[str, ColumnRef | None], kind: str) -> RawRatings:
    try:
        import rdata
    except ImportError:
        raise DataError("reading R data files needs the rdata package", path=path,
                        hint='pip install "embrec[r]"') from None
    try:
        found = rdata.read_rds(path) if kind == "rds" else rdata.read_rda(path)
    except (ValueError, OSError, EOFError, KeyError, TypeError, NotImplementedError) as error:
        raise DataError(f"not a readable R data file: {error}", path=path,
                        hint="save it from R with save(ratings, file=...) or saveRDS()") from None
    objects = found if isinstance(found, dict) else {"(rds)": found}
    frames = {name: obj for name, obj in objects.items() if isinstance(obj, pd.DataFrame)}
    if isinstance(frames.get("ratings"), pd.DataFrame) or len(frames) == 1:
        name = "ratings" if "ratings" in frames else next(iter(frames))
        frame = frames[name]  # rows keep R's row names, "1", "2"... read as numbers
        if len(frame) and bool(frame.index.astype(str).str.fullmatch(r"\d+").all()):
            frame = frame.set_axis(frame.index.astype(np.int64))
        return _frame_raw(frame, requested, str(path))
    raise DataError(f"holds {len(frames)} data frames {sorted(frames)} and none is named "
                    f"'ratings'", path=path, value=sorted(objects),
                    hint="load it with rdata.read_rda() and pass the data frame to read_ratings")


# ----------------------------------------------------------------------------- public
def read_ratings(
    source: str | os.PathLike[str] | pd.DataFrame | Any,
    *,
    user: ColumnRef | None = None,
    item: ColumnRef | None = None,
    rating: ColumnRef | None = None,
    timestamp: ColumnRef | None = None,
    format: str | None = None,
    sep: str | None = None,
    scale: tuple[float, float] | None = None,
    duplicates: Duplicates = "error",
    on_bad_lines: OnBadLines = "error",
) -> Ratings:
    """Read explicit ratings from a file, a folder, a DataFrame or a sparse matrix.

    Args:
        source: a path to delimited text (``.csv``, ``.tsv``, ``.txt``, ``.dat``,
            optionally ``.gz``/``.bz2``/``.zst``), Parquet, a ``scipy.sparse.save_npz``
            user x item matrix (non-zeros are ratings; row and column indices are
            the raw ids), an R ``.RData``/``.rda``/``.rds`` file holding a ratings
            data frame (the one named ``ratings``, or the only one), or a folder in
            a known layout (see :data:`embrec.data.layouts.LAYOUTS`); or a pandas
            DataFrame or SciPy sparse matrix.
        user: the user id column, by name or 0-based position; recognised by
            its usual names (``userId``, ``user_id``, ``user``...) when None.
        item: the item id column (``movieId``, ``item_id``, ``book_id``, ``item``...).
        rating: the rating column (``rating``, ``score``, ``stars``...).
        timestamp: the optional timestamp column (``timestamp``, ``time``, ``ts``, ``date``).
        format: one of :data:`FORMATS`, or a layout name for a folder; from the
            suffix when None.
        sep: the field separator of delimited text (``::`` works too); guessed when None.
        scale: ``(min, max)`` to enforce; inferred from the data (or the layout) when None.
        duplicates: repeated (user, item) pairs: ``"error"``, keep the ``"last"``, or
            take the ``"mean"``.
        on_bad_lines: ``"error"`` raises on malformed lines and bad values; ``"skip"``
            drops them and issues one :class:`~embrec.errors.DataWarning` saying which.

    Returns:
        The validated ratings; ``source`` records the path or layout name.

    Raises:
        DataError: for a missing file, an unknown suffix, an empty file or no ratings.
        MissingColumnError: if a needed column is absent or cannot be recognised.
        ParseError: for malformed lines and bad values, with file, line, column and value.
        DuplicateRatingError: for repeated pairs when ``duplicates="error"``.
        ConfigError: for an unknown option value.
        TypeError: if ``source`` is none of the supported kinds.
    """
    check_options(scale, duplicates, on_bad_lines)
    requested = {"user": user, "item": item, "rating": rating, "timestamp": timestamp}
    if isinstance(source, pd.DataFrame):
        raw, name = _frame_raw(source, requested, "DataFrame"), "DataFrame"
    elif sparse.issparse(source):
        _no_columns(requested)
        raw, name = _sparse_raw(source, "sparse matrix"), "sparse matrix"
    elif isinstance(source, str | os.PathLike):
        path = _existing(source)
        if path.is_dir():
            for option, value in (*requested.items(), ("sep", sep)):
                if value is not None:
                    raise ConfigError(option, value, "does not apply to a folder",
                                      hint="a folder layout names its own columns; pass "
                                           "the ratings file itself to choose them")
            ratings, skipped = load_layout(path, format, scale=scale, duplicates=duplicates,
                                           on_bad_lines=on_bad_lines)
            warn_skipped(skipped)
            return ratings
        raw, name = _path_raw(path, requested, format, sep, on_bad_lines == "error"), str(path)
    else:
        raise TypeError(f"cannot read ratings from a {type(source).__name__}; pass a path, "
                        "a pandas DataFrame or a scipy sparse matrix")
    ratings, summary = build_ratings(raw, scale=scale, duplicates=duplicates,
                                     on_bad_lines=on_bad_lines, source=name)
    warn_skipped([summary] if summary else [])
    return ratings


def _path_raw(path: Path, requested: dict[str, ColumnRef | None], format: str | None,
              sep: str | None, strict: bool) -> RawRatings:
    kind = format_of(path, format)
    if kind in _TEXT:
        return text_raw(path, requested, kind, sep, strict)
    if kind == "parquet":
        return _parquet_raw(path, requested)
    if kind == "npz":
        _no_columns(requested)
        return _npz_raw(path)
    return _r_raw(path, requested, kind)

