"""Delimited text read by PyArrow's CSV reader, with exact 1-based file lines.

:func:`sniff` settles the separator and header from the first lines; :func:`read_text`
reads the wanted columns, collects malformed lines instead of dropping them, re-reads
a column as text when a value does not convert (to locate it), and splits on
multi-character separators such as MovieLens' ``::``. Row positions become file lines
only when a message needs them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from embrec.data.columns import NUMBER, arrow_column
from embrec.data.validation import SHOWN, Locator, Problem, RawRatings, raise_problems
from embrec.errors import DataError, ParseError

__all__ = ["TextFormat", "TextTable", "column_label", "read_raw_ratings", "read_text", "sniff"]

SEPARATORS = ("::", "\t", ",", ";", "|")
_SAMPLE_BYTES = 1 << 16
_SUBSTITUTES = (b"\x1f", b"\x1e", b"\x1d")
_FAILED_COLUMN = re.compile(r"In CSV column #(\d+)")
_BLOCK = 1 << 22  # PyArrow's block: no line may be longer
THREADED_BYTES = 4 * _BLOCK
"""Smaller files are read on one thread: as fast, and PyArrow's threaded reader can leave a
read-ahead thread running after it returns, aborting a process that exits at once (134)."""
BAD_LINE_LIMIT = 1000  # in strict mode, stop parsing after this many malformed lines


@dataclass(frozen=True, slots=True)
class TextFormat:
    """How a delimited file is laid out.

    Attributes:
        sep: the field separator (one or more characters).
        header: whether the first line names the columns.
        names: the header's names, or ``"0"``, ``"1"``... without a header.
        quoting: whether ``"`` quotes fields.
    """

    sep: str
    header: bool
    names: list[str]
    encoding: str = "utf-8"
    quoting: bool = True


@dataclass(frozen=True, slots=True)
class TextTable:
    """The wanted columns of a delimited file, with where each row came from."""

    columns: dict[str, Any]
    locator: Locator
    invalid: list[Problem] = field(default_factory=list)
    n_invalid: int = 0


def _head(path: Path, encoding: str) -> list[str]:
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            head = stream.read(_SAMPLE_BYTES)
    except (OSError, pa.ArrowInvalid) as error:
        raise _arrow_error(error, path) from None
    _check_not_binary(head, path, encoding)
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    lines = head.decode(codec, errors="replace").splitlines()
    if len(head) == _SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # cut mid-line
    return [line for line in lines if line.strip()][:20]


def _check_not_binary(head: bytes, path: Path, encoding: str) -> None:
    """UTF-16 text and binary files: a clear error before PyArrow misreads them."""
    if encoding.lower().replace("_", "-").startswith("utf-16"):
        return
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        what = "UTF-16 text" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "binary data"
        raise ParseError(f"the file holds {what}, not {encoding} text", path=path,
                         hint="re-save it as UTF-8 text (or check that it is a ratings file)")


def _guess_sep(lines: list[str], prefer: str | None) -> str:
    for sep in (prefer, *SEPARATORS, " "):
        if sep is None:
            continue
        counts = [line.count(sep) for line in lines]
        if counts[0] > 0 and all(count == counts[0] for count in counts):
            return sep
    best = max(SEPARATORS, key=lambda sep: lines[0].count(sep))
    return best if lines[0].count(best) else ","


def sniff(path: Path, *, sep: str | None = None, header: bool | None = None,
          encoding: str = "utf-8", quoting: bool = True, prefer: str | None = None,
          names: list[str] | None = None) -> TextFormat:
    """Settle the separator and header of a (possibly compressed) delimited file.

    ``sep`` is guessed among ``:: \\t , ; |`` and space (``prefer`` first) when None;
    a first line is taken for a header when none of its fields is a number. ``names``
    names the columns of a file without a header.

    Raises:
        DataError: if the file holds no text.
    """
    lines = _head(path, encoding)
    if not lines:
        raise DataError("the file is empty", path=path,
                        hint="pass a file that holds ratings, one per line")
    sep = sep or _guess_sep(lines, prefer)
    fields = (next(csv.reader(lines[:1], delimiter=sep)) if len(sep) == 1 and quoting
              else lines[0].split(sep))
    if header is None:
        header = not any(re.match(NUMBER, f) for f in fields)
    if names is None:
        names = fields if header else [str(i) for i in range(len(fields))]
    return TextFormat(sep, header, names, encoding, quoting)


class _BadLines:
    """PyArrow ``invalid_row_handler``: remember malformed lines, skip them, stop at a limit."""

    def __init__(self, limit: int | None) -> None:
        self.numbers: list[int | None] = []
        self.first: list[Any] = []
        self.limit = limit
        self.stopped = False

    def __call__(self, row: Any) -> str:
        self.numbers.append(row.number)
        if len(self.first) < SHOWN:
            self.first.append(row)
        if self.limit is not None and len(self.numbers) >= self.limit:
            self.stopped = True
            return "error"
        return "skip"


@dataclass(slots=True)
class _Source:
    """A file path, or its bytes with a multi-character separator replaced by one byte."""

    path: Path
    fmt: TextFormat
    data: Any = None  # pyarrow Buffer when the separator was replaced
    sep: str = ""

    def __post_init__(self) -> None:
        self.sep = self.fmt.sep
        if len(self.fmt.sep) == 1:
            return
        with pa.input_stream(str(self.path), compression="detect") as stream:
            raw = stream.read()
        free = next((b for b in _SUBSTITUTES if b not in raw), None)
        if free is None:
            raise DataError(f"cannot split on {self.fmt.sep!r}", path=self.path,
                            hint="convert the file to CSV or TSV first")
        self.data = pa.py_buffer(raw.replace(self.fmt.sep.encode(self.fmt.encoding), free))
        self.sep = free.decode()

    def arrow_input(self) -> Any:
        return str(self.path) if self.data is None else pa.BufferReader(self.data)

    def stream(self) -> Any:
        if self.data is None:
            return pa.input_stream(str(self.path), compression="detect")
        return pa.BufferReader(self.data)

    def text(self, line: str) -> str:
        return line if self.sep == self.fmt.sep else line.replace(self.sep, self.fmt.sep)


_SCAN_BYTES = 1 << 20
"""The byte scan's block: its temporaries (about 30 bytes a byte) stay near 30 MiB."""


@dataclass(frozen=True, slots=True)
class _Runs:
    """Sorted line numbers kept as runs of consecutive lines: 200 MB of blank lines is one run."""

    starts: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, numbers: np.ndarray) -> _Runs:
        """The runs of sorted, distinct ``numbers``."""
        if len(numbers) == 0:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        cut = np.flatnonzero(np.diff(numbers) != 1) + 1
        starts = numbers[np.concatenate(([0], cut))]
        ends = numbers[np.concatenate((cut - 1, [len(numbers) - 1]))]
        return cls(starts.astype(np.int64), (ends - starts + 1).astype(np.int64))

    @classmethod
    def join(cls, parts: list[_Runs]) -> _Runs:
        """One set of runs from consecutive parts (a run cut at a block's edge is rejoined)."""
        starts: list[int] = []
        lengths: list[int] = []
        for part in parts:
            for start, length in zip(part.starts.tolist(), part.lengths.tolist(), strict=True):
                if starts and starts[-1] + lengths[-1] == start:
                    lengths[-1] += length
                else:
                    starts.append(start)
                    lengths.append(length)
        return cls(np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64))


def _blank_lines(source: _Source) -> _Runs:
    """Physical numbers of the empty lines PyArrow skipped, by a blocked byte scan, as runs."""
    found: list[_Runs] = []
    previous, lines, last_byte, offset = -1, 0, 0, 0
    with source.stream() as stream:
        while chunk := stream.read(_SCAN_BYTES):
            data = np.frombuffer(chunk, dtype=np.uint8)
            ends = np.flatnonzero(data == 10) + offset
            if len(ends):
                starts = np.concatenate(([previous + 1], ends[:-1] + 1))
                length = ends - starts
                local = starts - offset
                first_byte = np.where(local >= 0, data[np.clip(local, 0, None)], last_byte)
                blank = (length == 0) | ((length == 1) & (first_byte == 13))
                found.append(_Runs.of(np.flatnonzero(blank) + lines + 1))
                if len(found) > 64:  # keep the list short: fold it into one
                    found = [_Runs.join(found)]
                previous, lines = int(ends[-1]), lines + len(ends)
            last_byte, offset = int(data[-1]), offset + len(data)
    return _Runs.join(found)


def _skip_over(positions: np.ndarray, skipped: _Runs) -> np.ndarray:
    """Shift 1-based positions past the sorted line numbers in ``skipped``.

    Every line of a run of length ``L`` starting at ``a``, after ``C`` skipped
    lines, sits at logical position ``a - C``: a position at or past it moves by ``L``.
    """
    if len(skipped.starts) == 0:
        return positions
    before = np.concatenate(([0], np.cumsum(skipped.lengths)))
    keys = skipped.starts - before[:-1]
    return positions + before[np.searchsorted(keys, positions, side="right")]


class _Lines:
    """Maps row positions to physical file lines, past the header, malformed and blank lines.

    PyArrow numbers malformed rows by non-blank line ("logical" numbers); blank
    lines are found by a byte scan, done only when a message needs a line.
    """

    def __init__(self, source: _Source, header: bool, invalid: np.ndarray) -> None:
        self.source, self.header, self.invalid = source, header, invalid
        self._blanks: _Runs | None = None

    def file_lines(self, logical: np.ndarray) -> np.ndarray:
        if self._blanks is None:
            self._blanks = _blank_lines(self.source)
        return _skip_over(logical, self._blanks)

    def keys(self, rows: np.ndarray) -> np.ndarray:
        return self.file_lines(_skip_over(rows + 1 + int(self.header), _Runs.of(self.invalid)))

    def locator(self) -> Locator:
        return Locator(str(self.source.path), "line", keys=self.keys)

    def problems(self, bad: _BadLines) -> list[Problem]:
        if not bad.first:  # no scan for blank lines unless a message needs one
            return []
        logical = np.asarray([row.number for row in bad.first], dtype=np.int64)
        return [Problem(line, f"line {line}",
                        f"expected {row.expected_columns} fields, found {row.actual_columns}: "
                        f"{self.source.text(row.text)!r}", kind="fields")
                for row, line in zip(bad.first, self.file_lines(logical).tolist(), strict=True)]


def _read(source: _Source, wanted: list[str], types: dict[str, Any], threads: bool,
          bad: _BadLines) -> Any:
    fmt = source.fmt
    read = pcsv.ReadOptions(use_threads=threads, encoding=fmt.encoding, block_size=_BLOCK,
                            column_names=None if fmt.header else fmt.names)
    parse = pcsv.ParseOptions(delimiter=source.sep, quote_char='"' if fmt.quoting else False,
                              invalid_row_handler=bad)
    convert = pcsv.ConvertOptions(include_columns=wanted, column_types=types, null_values=[""],
                                  strings_can_be_null=True, quoted_strings_can_be_null=True)
    return pcsv.read_csv(source.arrow_input(), read_options=read, parse_options=parse,
                         convert_options=convert)


def _arrow_error(error: Exception, path: Path) -> DataError:
    text = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    if any(word in text for word in ("zlib", "compressed", "gzip", "bz2", "zstd", "lz4",
                                     "brotli", "Truncated", "inflate")):
        return ParseError(f"cannot decompress the file ({text})", path=path,
                          hint="check that it is complete and really compressed; rename a plain "
                          "text file so it does not end in .gz/.bz2/.zst")
    if "Empty CSV file" in text:
        return DataError("the file is empty", path=path,
                         hint="pass a file that holds ratings, one per line")
    if "straddl" in text or "block size" in text:
        return ParseError(f"a line is longer than {_BLOCK >> 20} MiB (a field that never ends, "
                          "such as an unclosed quote, or not a ratings file)", path=path,
                          hint="check the file's quotes and line ends, and that it is "
                          "delimited text")
    if "UTF8" in text:
        return ParseError("the file is not valid UTF-8 text", path=path,
                          hint="re-save it as UTF-8, or read it with pandas and pass the DataFrame")
    return ParseError(f"cannot read the file: {text}", path=path,
                      hint="check that it is delimited text and pass sep=... and format=...")


def _check_text(columns: dict[str, Any], path: Path, fmt: TextFormat, lines: _Lines) -> None:
    """PyArrow reads text that is not valid in the encoding as binary: say so, and where."""
    for name, column in columns.items():
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            row, value = _first_undecodable(column, fmt.encoding)
            line = int(lines.keys(np.asarray([row]))[0]) if row >= 0 else None
            raise ParseError(f"column {name!r}: the text is not valid {fmt.encoding}: "
                             f"{value!r:.80}", path=path, line=line, column=name, value=value,
                             hint="re-save the file as UTF-8 (older MovieLens files are latin-1)")


def _first_undecodable(column: Any, encoding: str) -> tuple[int, bytes | None]:
    """The first row whose bytes do not decode (a Python loop, on the error path only)."""
    for row, value in enumerate(column.to_pylist()):
        try:
            if value is not None:
                value.decode(encoding)
        except UnicodeDecodeError:
            return row, value
    return -1, None


def _failed_column(error: Exception, names: list[str]) -> str | None:
    match = _FAILED_COLUMN.search(str(error))
    if match is None or int(match.group(1)) >= len(names):
        return None
    return names[int(match.group(1))]


def read_text(path: Path, fmt: TextFormat, wanted: list[str], types: dict[str, Any], *,
              strict: bool) -> TextTable:
    """Read the ``wanted`` columns (positions as text without a header) of a delimited file.

    A column whose values do not convert to its PyArrow type in ``types`` is read
    again as text, for the bad values to be located; ``strict`` stops after
    ``BAD_LINE_LIMIT`` malformed lines (an error anyway).

    Raises:
        ParseError: for a file PyArrow cannot read, or too many malformed lines.
        DataError: for an empty file.
    """
    try:
        source = _Source(path, fmt)
    except OSError as error:
        raise _arrow_error(error, path) from None
    types, threads = dict(types), _size(path) > THREADED_BYTES
    for _ in range(len(wanted) + 3):
        bad = _BadLines(BAD_LINE_LIMIT if strict else None)
        try:
            table = _read(source, wanted, types, threads, bad)
        except (OSError, pa.ArrowKeyError) as error:  # a broken compressed stream, I/O
            raise _arrow_error(error, path) from None
        except pa.ArrowInvalid as error:
            column = _failed_column(error, fmt.names)
            if bad.stopped and not threads:
                lines = _Lines(source, fmt.header, np.zeros(0, dtype=np.int64))
                raise_problems(lines.problems(bad), len(bad.numbers), lines.locator(),
                               at_least=True)
            if bad.stopped:
                threads = False  # PyArrow numbers malformed lines only on one thread
            elif column in wanted and types.get(column) != pa.string():
                types[column] = pa.string()
            elif column in wanted and "UTF8" in str(error):
                types[column] = pa.binary()  # for _check_text to find the line
            else:
                raise _arrow_error(error, path) from None
            continue
        if bad.numbers and threads:
            threads = False
            continue
        lines = _Lines(source, fmt.header, np.asarray(bad.numbers, dtype=np.int64))
        columns = {name: table.column(name) for name in wanted}
        _check_text(columns, path, fmt, lines)
        return TextTable(columns, lines.locator(), lines.problems(bad), len(bad.numbers))
    raise ParseError("cannot read the file", path=path, hint="pass sep=... and format=...")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def column_label(fmt: TextFormat, name: str, role: str) -> str:
    """How messages name a column: by its header name, or by position and role."""
    return f"column {name!r}" if fmt.header else f"column {name} ({role})"


def read_raw_ratings(path: Path, fmt: TextFormat, chosen: dict[str, str], *,
                     strict: bool) -> RawRatings:
    """Read the rating columns of a delimited file (``chosen``: column per role), for validation.

    Raises:
        ParseError: for a file PyArrow cannot read, or too many malformed lines.
        DataError: for an empty file.
    """
    wanted = list(dict.fromkeys(chosen.values()))
    types = {chosen["user"]: pa.string(), chosen["item"]: pa.string(),
             chosen["rating"]: pa.float64()}  # ids as text, kept exactly (see columns.py)
    table = read_text(path, fmt, wanted, types, strict=strict)
    columns = {role: arrow_column(table.columns[name], role, name,
                                  label=column_label(fmt, name, role))
               for role, name in chosen.items()}
    return RawRatings.of(columns, table.locator, table.invalid, table.n_invalid)
