"""One rank's part of a ratings file: its Parquet row groups, its split rows, its ids.

Under ``torchrun`` a run whose data is a Parquet file need not read the whole
file on every rank: rank ``r`` of ``W`` owns the file rows
``[n * r // W, n * (r + 1) // W)`` (``n`` from the file's metadata, no data
read) and reads only the row groups that overlap them
(:func:`read_parquet_rows`). The pieces here are the file- and array-side of
that; the collectives that make the ranks agree live in
:mod:`embrec.distributed.reading`.

What a single process would compute from the whole file is kept exactly:
:func:`split_positions` gives each of a rank's rows its place in the seeded
permutation the random split draws, and :func:`merged_index` builds the id
index one process would build from every rank's distinct ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from embrec.data.columns import arrow_column
from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings
from embrec.data.readers import ColumnRef, resolve_columns, text_format, text_raw
from embrec.data.validation import Locator, Problem, RawRatings
from embrec.errors import DataError

__all__ = ["Part", "ShardedRatings", "file_rows", "id_digest", "merged_index",
           "read_parquet_rows", "read_text_rows", "split_positions", "text_bounds"]


@dataclass(frozen=True, slots=True, eq=False)
class ShardedRatings(Ratings):
    """The training rows one rank holds, indexed with the ids of the *whole* training set.

    ``users``, ``items`` and ``scale`` are those one process would get from the
    whole file; the arrays hold only this rank's rows, ordered by their place in
    the training set.

    Attributes:
        positions: each row's place in the whole training set (sorted, int64).
        total: rows in the whole training set (over every rank).
        identity: a digest of the whole training set, the same on every rank;
            returned by :meth:`fingerprint` (checkpoints compare it on resume).
    """

    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    total: int = 0
    identity: str = ""

    def fingerprint(self) -> str:
        """Return :attr:`identity` (no rank holds every row to hash them in order)."""
        return self.identity


@dataclass(frozen=True, slots=True)
class Part:
    """What a rank read of a file.

    Attributes:
        raw: the columns of the rank's rows (messages place rows in the whole file).
        facts: counts about the reading: ``file_rows`` parsed, and ``row_groups``
            and ``decoded_rows`` (Parquet) or ``bytes`` (text).
    """

    raw: RawRatings
    facts: dict[str, int]


def file_rows(path: Path) -> tuple[int, np.ndarray]:
    """Return the rows of a Parquet file and its row-group boundaries, from the metadata only.

    Raises:
        DataError: for a file that is not readable Parquet.
    """
    with _unreadable(path):
        meta = pq.ParquetFile(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return int(meta.num_rows), np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))


@contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """Turn Arrow's read errors into a ``DataError`` naming the file."""
    try:
        yield
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"not a readable Parquet file: {error}", path=path,
                        hint="check the file, or pass format= if it is not Parquet") from None


def read_parquet_rows(path: Path, requested: dict[str, ColumnRef | None], start: int,
                      stop: int) -> Part:
    """Read file rows ``[start, stop)`` of a Parquet file: only the row groups they overlap.

    Messages name rows by their place in the whole file; ``requested`` gives per
    role a column name or position, or None to recognise it.

    Raises:
        DataError: for an unreadable file.
        MissingColumnError: if a needed column is absent or cannot be recognised.
    """
    _, bounds = file_rows(path)
    groups = [g for g in range(len(bounds) - 1) if bounds[g] < stop and bounds[g + 1] > start]
    with _unreadable(path):
        parquet = pq.ParquetFile(path)
        chosen = resolve_columns(parquet.schema_arrow.names, requested, source=str(path))
        table = parquet.read_row_groups(groups, columns=[str(name) for name in chosen.values()])
    facts = {"file_rows": stop - start, "row_groups": len(groups), "decoded_rows": table.num_rows}
    table = table.slice(start - (int(bounds[groups[0]]) if groups else start), stop - start)
    columns = {role: arrow_column(table.column(str(name)), role, str(name))
               for role, name in chosen.items()}
    return Part(RawRatings.of(columns, Locator(str(path), "row",
                                               keys=lambda rows: np.asarray(rows) + start)), facts)


def text_bounds(path: Path, parts: int) -> list[int]:
    """Byte offsets cutting a text file into ``parts`` pieces at line starts, then its size."""
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as file:
        for k in range(1, parts):
            at = max(size * k // parts, bounds[-1])
            file.seek(max(at - 1, 0))
            start = size
            while at and (chunk := file.read(1 << 16)):
                found = chunk.find(b"\n")
                if found >= 0:
                    start = file.tell() - len(chunk) + found + 1
                    break
            bounds.append(start if at else 0)
    return [*bounds, size]


def read_text_rows(path: Path, requested: dict[str, ColumnRef | None], kind: str,
                   sep: str | None, strict: bool, start: int, stop: int, folder: Path) -> Part:
    """Read the lines in bytes ``[start, stop)`` of a delimited file (line starts).

    The piece is copied into ``folder`` (keep it until the rows are validated:
    messages read it) behind the file's header, and read by the usual reader,
    so memory grows with the piece, not the file. Messages name the file and
    its lines.

    Raises:
        DataError: for bad lines, with the whole file's line of the first.
    """
    fmt = text_format(path, kind, sep)
    piece = folder / path.name
    head = fmt.header and start > 0
    with path.open("rb") as source, piece.open("wb") as target:
        if head:
            target.write(next(line for line in source if line.strip()))
        shift = sum(chunk.count(b"\n") for chunk in _chunks(source, 0, start)) - int(head)
        for chunk in _chunks(source, start, stop):
            target.write(chunk)
    try:
        raw = text_raw(path, requested, kind, sep, strict, part=piece)
    except DataError as error:
        where = f"{error.path}:{error.line}: " if error.line is not None else f"{error.path}: "
        raise type(error)(error.message.removeprefix(where), path=path,
                          line=None if error.line is None else error.line + shift,
                          column=error.column, value=error.value, hint=error.hint) from None
    moved = raw.locator
    invalid = [Problem(p.key + shift, f"line {p.key + shift}", p.message, p.column, p.value,
                       p.kind) for p in raw.invalid]
    raw = replace(raw, invalid=invalid, locator=Locator(
        str(path), moved.unit, keys=lambda rows: moved.key_of(rows) + shift))
    return Part(raw, {"file_rows": len(raw.rating.values) + raw.n_invalid,
                      "bytes": stop - start})


def _chunks(file: BinaryIO, start: int, stop: int) -> Iterator[bytes]:
    """Bytes ``[start, stop)`` of an open file, 16 MiB at a time."""
    file.seek(start)
    for offset in range(start, stop, 1 << 24):
        yield file.read(min(1 << 24, stop - offset))


def split_positions(n: int, seed: int, offset: int, count: int,
                    chunk: int = 1 << 20) -> np.ndarray:
    """Each of rows ``[offset, offset + count)``'s place in the random split's permutation.

    The random split (:func:`embrec.data.split.split`) draws
    ``perm = default_rng(seed).permutation(n)``; training row ``p`` is file row
    ``perm[p]`` for ``p < n - n_test`` and test row ``p - (n - n_test)``
    after. This returns ``p`` (int64) for each of a rank's rows, drawing the
    same permutation (``n``: rows in the whole file, after bad rows are dropped)
    and inverting it ``chunk`` entries at a time.
    """
    perm = np.random.default_rng(seed).permutation(n)
    where = np.empty(count, dtype=np.int64)
    for start in range(0, n, chunk):
        part = perm[start:start + chunk]
        hit = np.flatnonzero((part >= offset) & (part < offset + count))
        where[part[hit] - offset] = hit + start
    return where


def merged_index(parts: list[np.ndarray], used: list[np.ndarray],
                 kind: str) -> tuple[IdIndex, IdIndex, list[np.ndarray], list[np.ndarray]]:
    """The whole file's index and the training set's, from every rank's distinct ids.

    ``parts`` holds per rank its distinct raw ids (in its own index order) and
    ``used`` whether each has a training row there. Returns the whole file's
    index (what :meth:`IdIndex.factorize` gives over every row), the training
    set's (restricted to ids with a training row, as ``Ratings.take(...,
    reindex=True)`` gives), and per rank the map from its local indices to each
    of the two (``-1`` for an id with no training row).
    """
    whole, codes = IdIndex.factorize(np.concatenate(parts) if parts else np.zeros(0), kind=kind)
    codes = codes.astype(np.int64)
    in_train = np.zeros(len(whole), dtype=bool)
    in_train[codes[np.concatenate(used)]] = True
    train = IdIndex(whole.ids[in_train], kind=kind)
    to_train = np.where(in_train, np.cumsum(in_train) - 1, -1)
    bounds = np.cumsum([0, *(len(p) for p in parts)])
    to_whole = [codes[bounds[r]:bounds[r + 1]] for r in range(len(parts))]
    return whole, train, to_whole, [to_train[c] for c in to_whole]


def id_digest(ids: np.ndarray) -> bytes:
    """Bytes that stand for raw ids in a digest: int64 values, or a hash of their text."""
    if ids.dtype.kind in "iu":
        return np.ascontiguousarray(ids, dtype=np.int64).tobytes()
    return bytes(pd.util.hash_array(ids.astype(str)).tobytes())
