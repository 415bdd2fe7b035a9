"""Publishers' folder layouts (GroupLens MovieLens, goodbooks-10k): ratings plus titles and genres.

Each entry of :data:`LAYOUTS` describes one layout as published: its ratings file,
separator, columns and scale, and the metadata files beside it, read into ``item_info``
and ``user_info`` indexed by raw id.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from embrec.data.columns import arrow_column
from embrec.data.delimited import read_raw_ratings, read_text, sniff
from embrec.data.features import layout_features
from embrec.data.ratings import Duplicates, Ratings
from embrec.data.validation import (
    OnBadLines,
    build_ratings,
    check_options,
    raise_problems,
    summarise,
    warn_skipped,
)
from embrec.errors import ConfigError, DataError, MissingColumnError

__all__ = ["LAYOUTS", "InfoFile", "Layout", "detect_layout", "load_layout", "read_layout"]

log = logging.getLogger(__name__)

GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclass(frozen=True, slots=True)
class InfoFile:
    """A user or item metadata file.

    Attributes:
        name: file name inside the folder.
        sep: field separator.
        names: the file's column names when it has no header row, else None.
        id: the column holding the raw id.
        keep: ``(file column, info column)`` pairs to keep.
        flags: 0/1 genre columns joined into a ``genres`` string (``"Action|Comedy"``).
        encoding: text encoding.
        quoting: whether ``"`` quotes fields.
    """

    name: str
    sep: str
    names: tuple[str, ...] | None
    id: str
    keep: tuple[tuple[str, str], ...]
    flags: tuple[str, ...] = ()
    encoding: str = "utf-8"
    quoting: bool = True


@dataclass(frozen=True, slots=True)
class Layout:
    """One publisher's folder layout.

    Attributes:
        name: the layout name, stored in ``Ratings.source``.
        ratings: the ratings file name.
        sep: its field separator.
        header: whether it has a header row.
        columns: user, item, rating and timestamp columns (header names, or
            positions as text without a header); timestamp may be None.
        scale: the rating scale ``(min, max)``.
        items: the item metadata file, if any.
        users: the user metadata file, if any.
    """

    name: str
    ratings: str
    sep: str
    header: bool
    columns: tuple[str, str, str, str | None]
    scale: tuple[float, float]
    items: InfoFile | None = None
    users: InfoFile | None = None


_U_ITEM = InfoFile("u.item", "|", ("id", "title", "release_date", "video_release_date",
                                   "imdb_url", *GENRES_100K), "id",
                   (("title", "title"), ("release_date", "release_date")),
                   flags=GENRES_100K, encoding="latin-1", quoting=False)
_U_USER = InfoFile("u.user", "|", ("id", "age", "gender", "occupation", "zip_code"), "id",
                   (("age", "age"), ("gender", "gender"), ("occupation", "occupation"),
                    ("zip_code", "zip_code")), quoting=False)
_MOVIES_DAT = InfoFile("movies.dat", "::", ("id", "title", "genres"), "id",
                       (("title", "title"), ("genres", "genres")), encoding="latin-1",
                       quoting=False)
_USERS_DAT = InfoFile("users.dat", "::", ("id", "gender", "age", "occupation", "zip_code"), "id",
                      (("gender", "gender"), ("age", "age"), ("occupation", "occupation"),
                       ("zip_code", "zip_code")), quoting=False)
_MOVIES_CSV = InfoFile("movies.csv", ",", None, "movieId", (("title", "title"),
                                                            ("genres", "genres")))
_BOOKS_CSV = InfoFile("books.csv", ",", None, "book_id", (("title", "title"),
                                                          ("authors", "authors")))
_NO_HEADER = ("0", "1", "2", "3")
# "1984" stays a title
_TEXT_COLUMNS = ("title", "genres", "authors", "gender", "zip_code", "release_date")
_ML_CSV = ("userId", "movieId", "rating", "timestamp")


def _movielens_csv(name: str) -> Layout:
    return Layout(name, "ratings.csv", ",", True, _ML_CSV, (0.5, 5.0), _MOVIES_CSV)


#: Known layouts by name; the datasets registry reads folders with ``read_layout(folder, name)``.
LAYOUTS: dict[str, Layout] = {
    "ml-100k": Layout("ml-100k", "u.data", "\t", False, _NO_HEADER, (1.0, 5.0), _U_ITEM,
                      _U_USER),
    "ml-1m": Layout("ml-1m", "ratings.dat", "::", False, _NO_HEADER, (1.0, 5.0), _MOVIES_DAT,
                    _USERS_DAT),
    **{name: _movielens_csv(name)
       for name in ("ml-latest-small", "ml-latest", "ml-20m", "ml-25m", "ml-32m")},
    "goodbooks-10k": Layout("goodbooks-10k", "ratings.csv", ",", True,
                            ("user_id", "book_id", "rating", None), (1.0, 5.0), _BOOKS_CSV),
}


def detect_layout(folder: Path) -> str:
    """Name the layout of ``folder``: by the folder's name first, then by its files.

    Args:
        folder: a folder holding a data set's files.

    Returns:
        A key of :data:`LAYOUTS`.

    Raises:
        DataError: if the folder matches no known layout.
    """
    name = folder.name.lower()
    if name in LAYOUTS and (folder / LAYOUTS[name].ratings).is_file():
        return name
    files = sorted(p.name for p in folder.iterdir())
    if "u.data" in files:
        return "ml-100k"
    if "ratings.dat" in files:
        return "ml-1m"
    if "ratings.csv" in files:
        return "goodbooks-10k" if "books.csv" in files else "ml-latest"
    raise DataError(f"not a known data set layout; found {files[:10]}", path=folder,
                    hint=f"known layouts: {', '.join(LAYOUTS)}; or pass the ratings file "
                         "itself to read_ratings")


def _info(folder: Path, spec: InfoFile | None,
          strict: bool) -> tuple[pd.DataFrame | None, list[str]]:
    """Read a metadata file into a DataFrame indexed by raw id; None when absent."""
    if spec is None:
        return None, []
    path = folder / spec.name
    if not path.is_file():
        log.info("%s: no %s; going on without its titles", folder, spec.name)
        return None, []
    header = spec.names is None
    fmt = sniff(path, sep=spec.sep, header=header, encoding=spec.encoding, quoting=spec.quoting)
    if spec.names is not None:
        fmt = dataclasses.replace(fmt, names=list(spec.names))
    wanted = [spec.id, *(column for column, _ in spec.keep), *spec.flags]
    _require(fmt.names, wanted, path, f"is this {spec.name} as published?")
    types = {column: pa.string() for column, _ in spec.keep if column in _TEXT_COLUMNS}
    table = read_text(path, fmt, wanted, types, strict=strict)
    skipped = []
    if table.n_invalid and strict:
        raise_problems(table.invalid, table.n_invalid, table.locator)
    if table.n_invalid:
        skipped.append(summarise(table.invalid, table.n_invalid, table.locator))
    ids = arrow_column(table.columns[spec.id], "item", spec.id).values
    info = pd.DataFrame({name: table.columns[column].to_pandas() for column, name in spec.keep})
    if spec.flags:
        info["genres"] = _genres(table, spec.flags)
    info.index = pd.Index(ids, name="id")
    return info, skipped


def _require(names: list[str], wanted: list[str], path: Path, hint: str) -> None:
    absent = [column for column in wanted if column not in names]
    if absent:
        raise MissingColumnError(f"no column {absent[0]!r}; found {names}", path=path,
                                 column=absent[0], hint=hint)


def _genres(table: Any, flags: tuple[str, ...]) -> pd.Series:
    """Join 0/1 genre columns into ``"Action|Comedy"`` strings, vectorised."""
    marks = np.column_stack([np.asarray(table.columns[f].to_numpy()) == 1 for f in flags])
    names = np.array([f"{flag}|" for flag in flags], dtype=object)
    joined = np.where(marks, names, "").astype(object).sum(axis=1)
    return pd.Series(joined.tolist()).str.rstrip("|")


def load_layout(
    folder: str | os.PathLike[str],
    layout: str | None = None,
    *,
    scale: tuple[float, float] | None = None,
    duplicates: Duplicates = "error",
    on_bad_lines: OnBadLines = "error",
) -> tuple[Ratings, list[str]]:
    """:func:`read_layout`, returning one summary per file with skipped lines instead of warning.

    Raises:
        DataError: as :func:`read_layout` says.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError("no such folder", path=folder, hint="check the path")
    name = detect_layout(folder) if layout is None else layout
    if name not in LAYOUTS:
        raise ConfigError("layout", name, f"is not one of {list(LAYOUTS)}",
                          hint="leave it out to detect the layout from the files")
    spec, strict = LAYOUTS[name], on_bad_lines == "error"
    path = folder / spec.ratings
    if not path.is_file():
        raise DataError(f"no {spec.ratings} in this {name} folder", path=folder,
                        hint=f"a {name} folder holds {spec.ratings}; check the path")
    fmt = sniff(path, sep=spec.sep, header=spec.header, quoting=len(spec.sep) == 1)
    chosen = {role: column for role, column in zip(("user", "item", "rating", "timestamp"),
                                                   spec.columns, strict=True) if column}
    _require(fmt.names, list(chosen.values()), path, f"is this {name}'s {spec.ratings}?")
    raw = read_raw_ratings(path, fmt, chosen, strict=strict)
    ratings, summary = build_ratings(raw, scale=scale or spec.scale, duplicates=duplicates,
                                     on_bad_lines=on_bad_lines, source=name)
    skipped = [summary] if summary else []
    item_info, more = _info(folder, spec.items, strict)
    user_info, more_users = _info(folder, spec.users, strict)
    user_features, item_features = layout_features(name, user_info, item_info)
    ratings = dataclasses.replace(ratings, item_info=item_info, user_info=user_info,
                                  user_features=user_features, item_features=item_features)
    return ratings, skipped + more + more_users


def read_layout(
    folder: str | os.PathLike[str],
    layout: str | None = None,
    *,
    scale: tuple[float, float] | None = None,
    duplicates: Duplicates = "error",
    on_bad_lines: OnBadLines = "error",
) -> Ratings:
    """Read a folder in a publisher's layout (MovieLens, goodbooks-10k) with its titles.

    Args:
        folder: the data set's folder, e.g. ``~/.cache/embrec/datasets/ml-100k``.
        layout: a key of :data:`LAYOUTS`; detected from the folder's name or files when None.
        scale: overrides the layout's rating scale.
        duplicates: repeated (user, item) pairs: ``"error"``, ``"last"`` or ``"mean"``.
        on_bad_lines: ``"error"`` raises on bad lines; ``"skip"`` drops them with one
            :class:`~embrec.errors.DataWarning`.

    Returns:
        Ratings whose ``source`` is the layout name and whose ``item_info`` (and
        ``user_info`` where published) is indexed by raw id.

    Raises:
        ConfigError: for an unknown layout name or option.
        DataError: if the folder or its ratings file is missing, or matches no layout.
        MissingColumnError: if a file lacks the layout's columns.
        ParseError: for malformed lines and bad values when ``on_bad_lines="error"``.
        DuplicateRatingError: for repeated pairs when ``duplicates="error"``.
    """
    check_options(scale, duplicates, on_bad_lines)
    ratings, skipped = load_layout(folder, layout, scale=scale, duplicates=duplicates,
                                   on_bad_lines=on_bad_lines)
    warn_skipped(skipped)
    return ratings
