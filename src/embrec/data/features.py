"""Side features of users and items: tables keyed by raw id, encoded once into sparse columns.

A column is ``categorical`` (one-hot: gender), ``multi`` (values joined by ``|``, one
column each: genres), ``numeric`` (standardised: age) or a 0/1 ``flag``. The
:class:`FeatureSchema` keeps the vocabulary and standardisation, so a new user's
features encode exactly as training's did (the cold start).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from embrec.data.ids import IdIndex
from embrec.errors import DataError, MissingColumnError, ParseError

if TYPE_CHECKING:
    pass

__all__ = ["FeatureColumn", "FeatureSchema", "Features", "features_from_frame", "layout_features"]

KINDS = ("categorical", "multi", "numeric", "flag")


@dataclass(frozen=True, slots=True)
class FeatureColumn:
    """How one source column (``name``) of a :data:`KINDS` kind encodes: its vocabulary
    (categorical and multi, one encoded column each), or its training mean and standard
    deviation (numeric; 1 when constant)."""

    name: str
    kind: str
    values: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def width(self) -> int:
        """Encoded columns this source column gives."""
        return len(self.values) if self.kind in ("categorical", "multi") else 1


@dataclass(frozen=True, slots=True)
class FeatureSchema:
    """The encoding of a feature table: its columns and the multi-value separator."""

    columns: tuple[FeatureColumn, ...]
    sep: str = "|"

    @property
    def names(self) -> list[str]:
        """The encoded column names (``gender=F``, ``genres=Comedy``, ``age``)."""
        return [name for c in self.columns
                for name in ([f"{c.name}={v}" for v in c.values]
                             if c.kind in ("categorical", "multi") else [c.name])]

    @property
    def groups(self) -> np.ndarray:
        """The source column (0, 1, ...) of every encoded column: ``(n_columns,)`` int64."""
        return np.repeat(np.arange(len(self.columns)), [c.width for c in self.columns])

    def encode(self, frame: pd.DataFrame) -> sp.csr_matrix:
        """Encode rows of raw values (one column per source column) into ``(rows, n_columns)``.

        Unknown categories and missing values give zeros (the category's absence).
        """
        blocks = [_encode_column(frame[c.name] if c.name in frame else
                                 pd.Series([None] * len(frame), dtype=object), c, self.sep)
                  for c in self.columns]
        if not blocks:
            return sp.csr_matrix(np.zeros((len(frame), 0), np.float32))
        out: sp.csr_matrix = sp.hstack(blocks, format="csr", dtype=np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the schema as a JSON-ready dict."""
        return {"sep": self.sep, "columns": [
            {"name": c.name, "kind": c.kind, "values": list(c.values), "mean": c.mean,
             "std": c.std} for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        """Rebuild a schema from :meth:`to_dict`."""
        columns = tuple(FeatureColumn(str(c["name"]), str(c["kind"]), tuple(c["values"]),
                                      float(c["mean"]), float(c["std"]))
                        for c in data["columns"])
        return cls(columns, str(data["sep"]))


@dataclass(frozen=True, slots=True, eq=False)
class Features:
    """A ``"user"`` or ``"item"`` feature table: ``matrix`` is ``(len(ids), n_columns)``
    float32 CSR, row ``k`` for raw id ``ids.ids[k]``, encoded by ``schema``."""

    ids: IdIndex
    matrix: sp.csr_matrix
    schema: FeatureSchema
    kind: str = "user"

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"Features({self.kind}, {len(self):,} rows, {self.matrix.shape[1]} columns "
                f"from {[c.name for c in self.schema.columns]})")

    def rows(self, raw_ids: Any) -> sp.csr_matrix:
        """The encoded rows of ``raw_ids``, in order; an id without features gets a zero row."""
        raw = pd.Series(np.atleast_1d(np.asarray(raw_ids, dtype=object)), dtype=object)
        if not self.ids.is_integer:  # text ids ("x", "007"): compare as text
            raw = raw.astype(str)
        index = self.ids.index(self.ids.coerce(raw.to_numpy()), on_unknown="missing")
        known = index >= 0
        picker = sp.csr_matrix((np.ones(int(known.sum()), np.float32),
                                (np.flatnonzero(known), index[known])),
                               shape=(len(index), len(self)))
        return sp.csr_matrix(picker @ self.matrix, dtype=np.float32)


def _encode_column(values: pd.Series, column: FeatureColumn, sep: str) -> sp.csr_matrix:
    n = len(values)
    if column.kind in ("numeric", "flag"):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        numbers = np.where(np.isnan(numbers), column.mean, numbers)
        return sp.csr_matrix(((numbers - column.mean) / column.std).reshape(n, 1))
    text = values.astype(object).where(values.notna(), "").astype(str)
    if column.kind == "multi":
        parts = text.str.split(re.escape(sep), regex=True).explode()
        rows, labels = parts.index.to_numpy(), parts.to_numpy()
    else:
        rows, labels = np.arange(n), text.to_numpy()
    codes = pd.Index(column.values).get_indexer(
        pd.Index(pd.Series(labels, dtype=object).str.strip()))
    keep = codes >= 0
    return sp.csr_matrix((np.ones(int(keep.sum())), (np.asarray(rows)[keep], codes[keep])),
                         shape=(n, len(column.values)))


def features_from_frame(frame: pd.DataFrame, *, kind: str = "user", id: str | None = None,
                        columns: list[str] | None = None, multi: tuple[str, ...] = (),
                        numeric: tuple[str, ...] = (), categorical: tuple[str, ...] = (),
                        sep: str = "|", source: str = "") -> Features:
    """Encode a DataFrame of raw feature values, one row per raw id.

    Column kinds not named are inferred: a column of mostly numbers is ``numeric``
    (``flag`` when only 0 and 1), text holding ``sep`` is ``multi``, other text
    ``categorical``.

    Args:
        frame: the table; the ids are its index, or the ``id`` column.
        kind: ``"user"`` or ``"item"`` (for messages).
        id: the id column; the index when None.
        columns: the feature columns to keep; every other column when None.
        multi: columns to read as several values joined by ``sep``.
        numeric: columns to read as numbers.
        categorical: columns to read as one category each (even if numeric).
        sep: the separator of multi-valued cells.
        source: the file, for messages.

    Raises:
        MissingColumnError: for a named column that is absent.
        DataError: for a repeated or missing id.
        ParseError: for a non-numeric value in a numeric column (with its row).
    """
    table = frame.reset_index() if id is None else frame
    id_column = str(table.columns[0]) if id is None else id
    chosen = columns if columns is not None else [str(c) for c in table.columns
                                                  if str(c) != id_column]
    for name in [id_column, *chosen, *multi, *numeric, *categorical]:
        if name not in table.columns:
            raise MissingColumnError(f"no {kind} feature column {name!r}; found "
                                     f"{[str(c) for c in table.columns]}", path=source or None,
                                     column=name, hint="check the column names")
    ids = table[id_column]
    _check_ids(ids, kind, id_column, source, _lines(table))
    specs = tuple(_column(table[name], name, _kind(table[name], name, multi, numeric,
                                                   categorical, sep), sep, source, _lines(table))
                  for name in chosen)
    schema = FeatureSchema(specs, sep)
    matrix = schema.encode(table.reset_index(drop=True))
    return Features(IdIndex(_id_values(ids), kind=kind), matrix, schema, kind)


def _id_values(ids: pd.Series) -> np.ndarray:
    """Integer ids when every id is an integer ("196"), as ratings read them; else text."""
    if ids.dtype.kind in "iu":
        return ids.to_numpy()
    text = ids.astype(str).str.strip()
    if text.str.fullmatch(r"0|-?[1-9][0-9]{0,17}").all():
        return text.astype(np.int64).to_numpy()
    return text.to_numpy()


def _lines(table: pd.DataFrame) -> np.ndarray:
    """The file line of every row (``attrs['lines']`` from :func:`read_features`), else row + 1."""
    lines = table.attrs.get("lines")
    return np.asarray(lines) if lines is not None else np.arange(1, len(table) + 1)


def _kind(values: pd.Series, name: str, multi: tuple[str, ...], numeric: tuple[str, ...],
          categorical: tuple[str, ...], sep: str) -> str:
    if name in multi:
        return "multi"
    if name in categorical:
        return "categorical"
    numbers = pd.to_numeric(values, errors="coerce")
    text = values.astype(str).str.strip()
    filled = int((text != "").sum())
    # mostly numbers: numeric, and a stray word is a ParseError rather than a category
    if name in numeric or (filled and 2 * int(numbers.notna().sum()) >= filled):
        present = numbers.dropna()
        return "flag" if name not in numeric and present.isin([0, 1]).all() else "numeric"
    return "multi" if text.str.contains(sep, regex=False).any() else "categorical"


def _column(values: pd.Series, name: str, kind: str, sep: str, source: str,
            lines: np.ndarray) -> FeatureColumn:
    if kind in ("numeric", "flag"):
        numbers = pd.to_numeric(values, errors="coerce")
        empty = values.isna() | (values.astype(str).str.strip() == "")
        bad = np.flatnonzero((numbers.isna() & ~empty).to_numpy())
        if len(bad):
            row = int(bad[0])
            raise ParseError(f"column {name!r}: cannot parse {values.iloc[row]!r} as a number "
                             f"({len(bad)} such value{'s' * (len(bad) > 1)})",
                             path=source or None, line=int(lines[row]), column=name,
                             value=values.iloc[row], hint=f"fix the value, or pass "
                             f"categorical=({name!r},) to read the column as categories")
        if kind == "flag":
            return FeatureColumn(name, kind)
        std = float(numbers.std(ddof=0)) if numbers.notna().sum() > 1 else 0.0
        return FeatureColumn(name, kind, mean=float(numbers.mean()) if numbers.notna().any()
                             else 0.0, std=std if std > 0 else 1.0)
    text = values.dropna().astype(str)
    labels = text.str.split(re.escape(sep), regex=True).explode() if kind == "multi" else text
    vocabulary = sorted(set(labels.str.strip()) - {""})
    return FeatureColumn(name, kind, tuple(vocabulary))


def _check_ids(ids: pd.Series, kind: str, column: str, source: str, lines: np.ndarray) -> None:
    empty = np.flatnonzero((ids.isna() | (ids.astype(str).str.strip() == "")).to_numpy())
    if len(empty):
        raise ParseError(f"column {column!r}: empty {kind} id", path=source or None,
                         line=int(lines[empty[0]]), column=column, value="",
                         hint=f"every row needs a {kind} id")
    repeated = np.flatnonzero(ids.duplicated().to_numpy())
    if len(repeated):
        row = int(repeated[0])
        first = int(lines[int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])])
        raise DataError(f"column {column!r}: {kind} {ids.iloc[row]!r} appears again (first on "
                        f"line {first}; {len(repeated)} repeated id{'s' * (len(repeated) > 1)})",
                        path=source or None, line=int(lines[row]), column=column,
                        value=ids.iloc[row], hint=f"give each {kind} one row of features")


LAYOUT_FEATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "ml-100k": (("age", "gender", "occupation"), ("genres", "year"), ()),
    "ml-1m": (("gender", "age", "occupation"), ("genres",), ("age", "occupation")),
    **dict.fromkeys(("ml-latest-small", "ml-latest", "ml-20m", "ml-25m", "ml-32m"),
                    ((), ("genres",), ())),
}
"""Per publisher layout: (user columns, item columns, columns that are codes, not numbers);
``year`` is the year of ``release_date`` (ML-100K's ``01-Jan-1995``), else the title's
trailing ``(1995)``."""


def _year(info: pd.DataFrame) -> pd.Series:
    """Release year from ``release_date``, else from a title ending in ``(1995)``; NaN if none."""
    year: pd.Series = pd.Series(np.nan, index=info.index, dtype=np.float64)
    if "release_date" in info.columns:
        dates = pd.to_datetime(info["release_date"], format="%d-%b-%Y", errors="coerce")
        year = dates.dt.year.astype(np.float64)
    if "title" in info.columns:
        titled = pd.to_numeric(info["title"].astype(str).str.extract(r"\((\d{4})\)\s*$")[0])
        year = year.fillna(titled)
    return year.astype(np.float64)


def layout_features(layout: str, user_info: pd.DataFrame | None,
                    item_info: pd.DataFrame | None) -> tuple[Features | None, Features | None]:
    """The (user, item) features a layout's metadata (indexed by raw id) gives; None where
    there are none, as for layouts outside :data:`LAYOUT_FEATURES`."""
    users, items, codes = LAYOUT_FEATURES.get(layout, ((), (), ()))
    if item_info is not None and "year" in items:
        item_info = item_info.assign(year=_year(item_info))
    found: list[Features | None] = [None, None]
    for side, (kind, info, columns) in enumerate((("user", user_info, users),
                                                  ("item", item_info, items))):
        present = [c for c in columns if info is not None and c in info.columns]
        if info is not None and present:
            found[side] = features_from_frame(
                info, kind=kind, columns=present, multi=("genres",) if "genres" in present
                else (), categorical=tuple(c for c in codes if c in present), source=layout)
    return found[0], found[1]
