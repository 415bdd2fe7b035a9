"""Turn raw rating columns into validated ``Ratings``, reporting every bad row by where it lives.

Every reader hands its columns to :func:`build_ratings` with a :class:`Locator` that
says how a row position reads to a person (a file line, a row label, a matrix entry).
The first few problems become one :class:`~embrec.errors.ParseError`, or, under
``on_bad_lines="skip"``, one :class:`~embrec.errors.DataWarning`: nothing is dropped
silently.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from embrec.data.ratings import Duplicates, Ratings
from embrec.errors import ConfigError, DataError, DataWarning, DuplicateRatingError, ParseError

__all__ = [
    "SHOWN",
    "Column",
    "Locator",
    "OnBadLines",
    "Problem",
    "RawRatings",
    "build_ratings",
    "check_options",
    "raise_problems",
    "summarise",
    "warn_skipped",
]

log = logging.getLogger("embrec.data.readers")

OnBadLines = Literal["error", "skip"]
SHOWN = 5  # problems quoted in a message


def check_options(scale: tuple[float, float] | None, duplicates: str, on_bad_lines: str) -> None:
    """Reject reader options outside their allowed values.

    Raises:
        ConfigError: naming the option and what it must be.
    """
    if duplicates not in get_args(Duplicates):
        raise ConfigError("duplicates", duplicates, f"is not one of {list(get_args(Duplicates))}")
    if on_bad_lines not in get_args(OnBadLines):
        raise ConfigError("on_bad_lines", on_bad_lines,
                          f"is not one of {list(get_args(OnBadLines))}")
    if scale is not None and not (len(scale) == 2 and float(scale[0]) < float(scale[1])):
        raise ConfigError("scale", scale, "must be (min, max) with min < max")


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One bad row: where it is (``key`` sorts, ``where`` reads) and what is wrong."""

    key: int
    where: str = field(compare=False)
    message: str = field(compare=False)
    column: str | None = field(default=None, compare=False)
    value: Any = field(default=None, compare=False)
    kind: str = field(default="value", compare=False)


@dataclass(frozen=True, slots=True)
class Locator:
    """Says where row position ``i`` of a table came from.

    Attributes:
        source: the file path or a name such as ``"DataFrame"``, shown first.
        unit: ``"line"`` for text files (keys are 1-based file lines), else
            ``"row"`` or ``"entry"``.
        keys: maps row positions to sort keys (file lines); identity when omitted.
        labels: maps row positions to labels (``"row 'a'"``); ``"<unit> <key>"`` when omitted.
    """

    source: str
    unit: str = "row"
    keys: Callable[[np.ndarray], np.ndarray] | None = None
    labels: Callable[[np.ndarray], list[str]] | None = None

    def key_of(self, rows: np.ndarray) -> np.ndarray:
        """Return the sort keys (file lines for text) of row positions."""
        rows = np.asarray(rows, dtype=np.int64)
        return rows if self.keys is None else np.asarray(self.keys(rows), dtype=np.int64)

    def where(self, rows: np.ndarray, keys: np.ndarray) -> list[str]:
        """Return readable locations (``"line 12"``) of row positions."""
        if self.labels is not None:
            return self.labels(rows)
        return [f"{self.unit} {key}" for key in keys.tolist()]


@dataclass(frozen=True, slots=True)
class Column:
    """One converted column plus masks of the values that were absent or unreadable.

    Attributes:
        values: the converted values (ids, float64 ratings or int64 seconds).
        label: how messages name the column, e.g. ``"column 'rating'"``.
        original: returns the value at a row as the source held it, for messages.
        missing: True where the source had no value.
        unparsed: True where a value was present but could not be converted.
        what: what an unparsed value should have been (``"a number"``, ``"a time"``).
        name: the column's name in the source, for ``DataError.column``.
    """

    values: np.ndarray
    label: str
    original: Callable[[int], Any]
    missing: np.ndarray | None = None
    unparsed: np.ndarray | None = None
    what: str = "a number"
    name: str = ""


@dataclass(frozen=True, slots=True)
class RawRatings:
    """The columns of one source, where its rows came from, and the malformed lines parsing
    skipped (the first few in ``invalid``, their count in ``n_invalid``)."""

    user: Column
    item: Column
    rating: Column
    timestamp: Column | None
    locator: Locator
    invalid: list[Problem] = field(default_factory=list)
    n_invalid: int = 0

    @classmethod
    def of(cls, columns: dict[str, Column], locator: Locator, invalid: list[Problem] | None = None,
           n_invalid: int = 0) -> RawRatings:
        """Build from columns keyed by role (``timestamp`` optional)."""
        return cls(columns["user"], columns["item"], columns["rating"], columns.get("timestamp"),
                   locator, invalid or [], n_invalid)


@dataclass(frozen=True, slots=True)
class _Issue:
    mask: np.ndarray
    column: Column
    describe: Callable[[Any], str]
    kind: str = "value"


def _column_issues(column: Column, noun: str) -> list[_Issue]:
    issues = []
    if column.missing is not None and column.missing.any():
        issues.append(_Issue(column.missing, column, lambda _: f"no {noun}"))
    if column.unparsed is not None and column.unparsed.any():
        what = column.what
        issues.append(_Issue(column.unparsed, column, lambda v: f"cannot parse {v!r} as {what}"))
    return issues


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _rating_issues(column: Column, scale: tuple[float, float] | None) -> list[_Issue]:
    issues = _column_issues(column, "rating")
    values = column.values
    absent = np.zeros(len(values), dtype=bool)
    for mask in (column.missing, column.unparsed):
        if mask is not None:
            absent |= mask
    finite = np.isfinite(values)
    odd = ~finite & ~absent
    if odd.any():
        issues.append(_Issue(odd, column, lambda v: f"{v!r} is not a finite number"))
    with np.errstate(invalid="ignore"):  # ratings are kept as float32: 1e39 would become inf
        huge = finite & (np.abs(values) > FLOAT32_MAX)
    if huge.any():
        issues.append(_Issue(huge, column, lambda v: f"{float(v):g} is too large for a rating "
                             f"(at most {FLOAT32_MAX:.3g})"))
        finite = finite & ~huge
    if scale is not None:
        low, high = scale
        outside = finite & ((values < low) | (values > high))
        if outside.any():
            issues.append(_Issue(outside, column, lambda v: f"{float(v):g} is outside the "
                                 f"scale [{low:g}, {high:g}]", kind="scale"))
    return issues


def _gather(raw: RawRatings, issues: list[_Issue]) -> tuple[np.ndarray | None, list[Problem], int]:
    """Return the mask of bad rows, the first problems (sorted by line) and the bad-row count."""
    problems = list(raw.invalid)
    if not issues:
        return None, problems[:SHOWN], raw.n_invalid
    bad = np.zeros(len(raw.rating.values), dtype=bool)
    for issue in issues:
        bad |= issue.mask
        rows = np.flatnonzero(issue.mask)[:SHOWN]
        keys = raw.locator.key_of(rows)
        for row, key, where in zip(rows.tolist(), keys.tolist(), raw.locator.where(rows, keys),
                                   strict=True):
            value = issue.column.original(row)
            problems.append(Problem(key, where, f"{issue.column.label}: {issue.describe(value)}",
                                    issue.column.name or issue.column.label, value, issue.kind))
    problems.sort()
    return bad, problems[:SHOWN], int(bad.sum()) + raw.n_invalid


def _plural(unit: str) -> str:
    return "entries" if unit == "entry" else f"{unit}s"


def _hint(problems: list[Problem], unit: str) -> str:
    kinds = {p.kind for p in problems}
    parts = []
    if "fields" in kinds:
        parts.append("check the separator (pass sep=...) and that every line has the same fields")
    if "scale" in kinds:
        parts.append("pass the data set's real scale=(min, max) if the scale is wider")
    parts.append(f"fix or remove those {_plural(unit)}, or pass on_bad_lines='skip' "
                 "to skip them with a warning")
    return "; ".join(parts)


def raise_problems(problems: list[Problem], total: int, locator: Locator, *,
                   at_least: bool = False) -> None:
    """Raise one ParseError quoting the first ``problems`` (sorted by line) and counting all
    ``total`` bad rows (a lower bound when reading stopped early: ``at_least``).

    Raises:
        ParseError: always.
    """
    first = problems[0]
    lines = [first.message] + [f"  {p.where}: {p.message}" for p in problems[1:]]
    if total > len(problems) or at_least:
        count = f"at least {total}" if at_least else str(total)
        lines.append(f"  ... {count} bad {_plural(locator.unit)} in all")
    message = "\n".join(lines)
    if locator.unit == "line":
        raise ParseError(message, path=locator.source, line=first.key, column=first.column,
                         value=first.value, hint=_hint(problems, locator.unit))
    raise ParseError(f"{first.where}: {message}", path=locator.source, column=first.column,
                     value=first.value, hint=_hint(problems, locator.unit))


def summarise(problems: list[Problem], total: int, locator: Locator) -> str:
    """One line saying how many rows were skipped and where the first few were."""
    shown = "; ".join(f"{p.where}: {p.message}" for p in problems)
    more = f" (first {len(problems)} shown)" if total > len(problems) else ""
    noun = locator.unit if total == 1 else _plural(locator.unit)
    return f"{locator.source}: skipped {total} bad {noun}: {shown}{more}"


def warn_skipped(summaries: list[str], *, stacklevel: int = 3) -> None:
    """Log and warn, as one DataWarning, about the rows a lenient read skipped (one summary
    per file; nothing when empty). The default ``stacklevel`` points at the caller's caller."""
    if not summaries:
        return
    message = "\n".join(summaries)
    log.warning(message)
    warnings.warn(DataWarning(message), stacklevel=stacklevel)


def build_ratings(
    raw: RawRatings,
    *,
    scale: tuple[float, float] | None,
    duplicates: Duplicates,
    on_bad_lines: OnBadLines,
    source: str,
) -> tuple[Ratings, str | None]:
    """Validate raw columns and build ``Ratings`` named ``source``.

    Args:
        raw: the columns and where their rows came from.
        scale: the rating scale to enforce, or None to infer it.
        duplicates: the repeated-pair policy of :meth:`Ratings.from_arrays`.
        on_bad_lines: ``"error"`` raises on bad rows, ``"skip"`` drops them.
        source: the name stored in ``Ratings.source``.

    Returns:
        The ratings, and a one-line summary of skipped rows (None when none were).

    Raises:
        ParseError: for bad rows when ``on_bad_lines="error"``.
        DuplicateRatingError: for repeated pairs when ``duplicates="error"``.
        DataError: when no ratings are left.
    """
    issues = _column_issues(raw.user, "user id") + _column_issues(raw.item, "item id")
    issues += _rating_issues(raw.rating, scale)
    if raw.timestamp is not None:
        issues += _column_issues(raw.timestamp, "time")
    bad, problems, total = _gather(raw, issues)
    summary = None
    if total:
        if on_bad_lines == "error":
            raise_problems(problems, total, raw.locator)
        summary = summarise(problems, total, raw.locator)
    keep = None if bad is None else np.flatnonzero(~bad)
    columns = [c.values if keep is None else c.values[keep]
               for c in (raw.user, raw.item, raw.rating, raw.timestamp) if c is not None]
    times = columns.pop() if raw.timestamp is not None else None
    if len(columns[2]) == 0:
        left = f"; all {total} were bad" if total else ""
        hint = (f"first: {problems[0].where}: {problems[0].message}" if problems
                else "check that the file holds ratings below its header")
        raise DataError(f"no ratings found{left}", path=raw.locator.source, hint=hint)
    try:
        ratings = Ratings.from_arrays(columns[0], columns[1], columns[2], times, scale=scale,
                                      duplicates=duplicates, source=source)
    except DuplicateRatingError as error:
        raise _located_duplicates(error, raw.locator, columns, keep, source) from None
    for index in (ratings.users, ratings.items):
        warn_unservable(index, source)
    return ratings, summary


PATH_ID_LENGTH = 256
"""The longest id the HTTP service's path routes take (``embrec.serving.limits``)."""


def warn_unservable(index: Any, source: str) -> None:
    """Warn about ids the HTTP path routes cannot carry: with ``/``, or over 256 characters."""
    if index.ids.dtype.kind != "O":
        return
    text = pd.Series(index.ids, dtype=object).astype(str)
    odd = text[text.str.contains("/", regex=False) | (text.str.len() > PATH_ID_LENGTH)]
    if len(odd):
        kind = index.kind
        route = "/recommend" if kind == "user" else "/similar"
        warnings.warn(DataWarning(
            f"{source}: {len(odd)} {kind} id(s) hold '/' or are longer than {PATH_ID_LENGTH} "
            f"characters (first: {str(odd.iloc[0])[:60]!r}); embrec serve's /{kind}s/{{id}} "
            f"routes cannot carry them\n  hint: the service answers them at GET {route}, with "
            f"the id URL-encoded in its query parameter '{kind}' (up to 4096 characters)"),
            stacklevel=4)


def _located_duplicates(error: DuplicateRatingError, locator: Locator, columns: list[np.ndarray],
                        keep: np.ndarray | None, source: str) -> DuplicateRatingError:
    """Add the lines of the first repeated pair to a DuplicateRatingError."""
    user, item = error.value
    rows = np.flatnonzero((columns[0] == user) & (columns[1] == item))[:SHOWN]
    if keep is not None:
        rows = keep[rows]
    keys = locator.key_of(rows)
    where = ", ".join(locator.where(rows, keys))
    core = error.message.removeprefix(f"{source}: ")
    return DuplicateRatingError(f"{core}, at {where}", path=locator.source,
                                line=int(keys[1]) if locator.unit == "line" and len(keys) > 1
                                else None, value=error.value, hint=error.hint)
