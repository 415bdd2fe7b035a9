"""Convert source columns (PyArrow, pandas, NumPy) into typed rating columns with problem masks.

Ids stay raw (whole-number floats become int64), ratings become float64 and timestamps
int64 seconds. Nothing is dropped here: absent or unconvertible values are flagged in
``missing`` / ``unparsed`` masks for :mod:`embrec.data.validation` to report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from embrec.data.ratings import _plain
from embrec.data.validation import Column

__all__ = ["ROLES", "arrow_column", "numpy_column", "series_column"]

ROLES = ("user", "item", "rating", "timestamp")
NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
"""A number as text (no thousands separators), for finding the values that are not one."""


def _or(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or not a.any():
        return b if b is not None and b.any() else None
    return a if b is None else a | b


def _is_text(kind: Any) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


# ----------------------------------------------------------------------------- NumPy
def _ids(values: np.ndarray, missing: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    if values.dtype.kind == "O":
        missing = _or(missing, np.asarray(pd.isna(values) | (values == ""), dtype=bool))
    elif values.dtype.kind == "f":
        missing = _or(missing, np.isnan(values))
        filled = values if missing is None else np.where(missing, 0.0, values)
        if np.all(filled == np.round(filled)) and np.abs(filled).max(initial=0) < 2**62:
            values = filled.astype(np.int64)
    elif values.dtype.kind == "u" and values.max(initial=0) > np.iinfo(np.int64).max:
        values = values.astype(object)  # exact Python ints: int64 would wrap them round
    elif values.dtype.kind in "iub":
        values = values.astype(np.int64, copy=False)
    return values, missing


def _ratings(values: np.ndarray, missing: np.ndarray | None
             ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    if values.dtype.kind in "iufb":
        numbers = values.astype(np.float64, copy=missing is not None)
        if missing is not None:
            numbers[missing] = np.nan
        return numbers, missing, None
    text = pd.Series(values, dtype=object)
    missing = _or(missing, np.asarray(text.isna() | (text.astype(str).str.strip() == "")))
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    unparsed = np.isnan(numbers)
    if missing is not None:
        unparsed &= ~missing
    return numbers, missing, unparsed if unparsed.any() else None


def _times(values: np.ndarray, missing: np.ndarray | None
           ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    kind = values.dtype.kind
    if kind == "M":
        missing = _or(missing, np.isnat(values))
        seconds = values.astype("datetime64[s]").astype(np.int64)
        return np.where(missing, 0, seconds) if missing is not None else seconds, missing, None
    if kind in "iub":
        return values.astype(np.int64), missing, None
    if kind == "f":
        missing = _or(missing, np.isnan(values))
        return np.where(np.isnan(values), 0, values).astype(np.int64), missing, None
    text = pd.Series(values, dtype=object)
    missing = _or(missing, np.asarray(text.isna() | (text.astype(str).str.strip() == "")))
    absent = np.zeros(len(text), dtype=bool) if missing is None else missing
    numbers = pd.to_numeric(text, errors="coerce")
    numeric = np.asarray(numbers.notna())
    seconds = numbers.fillna(0).to_numpy(dtype=np.int64)
    dated = ~numeric & ~absent
    if dated.any():  # text that is not a number: a date
        moments = pd.to_datetime(text[dated], errors="coerce", utc=True, format="mixed")
        parsed = moments.dt.tz_convert(None).to_numpy(dtype="datetime64[s]")
        unparsed = np.zeros(len(text), dtype=bool)
        unparsed[dated] = np.isnat(parsed)
        seconds[dated] = np.where(np.isnat(parsed), 0, parsed.astype(np.int64))
        return seconds, missing, unparsed if unparsed.any() else None
    return seconds, missing, None


def numpy_column(values: np.ndarray, role: str, label: str, missing: np.ndarray | None = None,
                 *, original: Callable[[int], Any] | None = None,
                 name: str | None = None) -> Column:
    """Convert a NumPy array of any dtype to a :class:`Column` for ``role`` (one of :data:`ROLES`).

    ``missing`` marks rows the source had no value for; ``original`` returns a row's
    source value for messages (``values[row]`` by default); ``name`` is the column's
    name in the source (``label`` by default).
    """
    source, absent = values, missing
    show = original or (lambda row: None if absent is not None and absent[row]
                        else _plain(source[row]))
    if role in ("user", "item"):
        ids, missing = _ids(values, missing)
        return Column(ids, label, show, missing, name=name or label)
    convert = _ratings if role == "rating" else _times
    converted, missing, unparsed = convert(values, missing)
    what = "a number" if role == "rating" else "a time"
    return Column(converted, label, show, missing, unparsed, what, name or label)


def series_column(series: pd.Series, role: str, name: str) -> Column:
    """Convert one pandas column (NumPy or extension dtype) named ``name`` to a :class:`Column`."""
    missing = np.asarray(series.isna(), dtype=bool) if series.hasnans else None
    dtype = series.dtype
    values: np.ndarray
    if pd.api.types.is_unsigned_integer_dtype(dtype) and not series.hasnans:
        values = series.to_numpy()  # _ids keeps ids past int64 as exact Python ints
    elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        values = series.to_numpy(dtype=np.int64, na_value=0)
    elif pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=False)
    elif isinstance(dtype, pd.DatetimeTZDtype):
        values = series.dt.tz_convert(None).to_numpy(dtype="datetime64[s]")
    elif pd.api.types.is_datetime64_dtype(dtype):
        values = series.to_numpy(dtype="datetime64[s]")
    else:
        values = series.to_numpy(dtype=object)
    return numpy_column(values, role, f"column {name!r}", missing,
                        original=lambda row: _plain(series.iloc[row]), name=name)


# ----------------------------------------------------------------------------- PyArrow
def _arrow_original(column: Any) -> Callable[[int], Any]:
    return lambda row: column[row].as_py()


def _arrow_rating_text(column: Any, label: str, name: str,
                       missing: np.ndarray | None) -> Column:
    ok = pc.match_substring_regex(column, NUMBER)
    unparsed = np.asarray(pc.invert(ok).fill_null(False).to_numpy(zero_copy_only=False))
    clean = pc.if_else(ok, pc.utf8_trim_whitespace(column), pa.scalar(None, pa.string()))
    values = np.asarray(pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False),
                        dtype=np.float64)
    return Column(values, label, _arrow_original(column), missing,
                  unparsed if unparsed.any() else None, name=name)


_INTEGER_ID = r"^(0|-?[1-9][0-9]{0,18})$"


def _text_ids_as_integers(column: Any) -> Any:
    """Ids read as text: int64 when every value is an integer spelled canonically, else text.

    So ``007`` and ``7``, ``1e3`` and ``1000``, ``true`` and ``1`` stay distinct
    ids, and an id of 2**63 or more never turns the column into floats.
    """
    canonical = pc.match_substring_regex(column, _INTEGER_ID)
    if not pc.all(canonical.fill_null(True)).as_py():
        return column
    try:
        return pc.cast(column, pa.int64())
    except (pa.ArrowInvalid, OverflowError):  # out of int64's range: keep the text
        return column


def arrow_column(column: Any, role: str, name: str, *, label: str | None = None) -> Column:
    """Convert one PyArrow ChunkedArray to a :class:`Column` (``label``: ``column '<name>'``)."""
    missing = None
    if column.null_count:
        missing = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if role in ("user", "item") and _is_text(column.type) and len(column):
        column = _text_ids_as_integers(column)
    kind = column.type
    if role == "rating" and _is_text(kind):
        return _arrow_rating_text(column, label or f"column {name!r}", name, missing)
    # text keeps the PyArrow column for messages; numbers are shown from the NumPy copy
    original = _arrow_original(column) if _is_text(kind) else None
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        column = pc.cast(pc.cast(column, pa.timestamp("s")), pa.int64())
    elif pa.types.is_dictionary(kind):
        column = pc.cast(column, kind.value_type)
    if missing is not None and not _is_text(column.type):
        column = column.fill_null(False if pa.types.is_boolean(column.type) else 0)
    values = np.asarray(column.to_numpy())
    return numpy_column(values, role, label or f"column {name!r}", missing, original=original,
                        name=name)
