"""One rank's part of a ratings file: its Parquet row groups, its split rows, its ids.

Under ``torchrun`` a run whose data is a Parquet file need not read the whole
file on every rank: rank ``r`` of ``W`` owns the file rows
``[n * r // W, n * (r + 1) // W)`` (``n`` from the file's metadata, no data
read) and reads only the row groups that overlap them
(:func:`read_parquet_rows`). The pieces here are the file- and array-side of
that; the collectives that make the ranks agree live in
:mod:`embrec.training.sharded`.

What a single process would compute from the whole file is kept exactly:
:func:`split_positions` gives each of a rank's rows its place in the seeded
permutation the random split draws, and :func:`merged_index` builds the id
index one process would build from every rank's distinct ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from embrec.data.columns import arrow_column
from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings
from embrec.data.readers import ColumnRef, resolve_columns
from embrec.data.validation import Locator, RawRatings
from embrec.errors import DataError

__all__ = ["ParquetRows", "ShardedRatings", "file_rows", "id_digest", "merged_index",
           "read_parquet_rows", "shard_identity", "split_positions"]


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
class ParquetRows:
    """What a rank read of a Parquet file.

    Attributes:
        raw: the columns of rows ``[start, stop)``.
        start: the first file row read.
        stop: one past the last file row read.
        row_groups: the row groups read (their indices in the file).
        decoded: rows decoded (the whole row groups, before slicing).
    """

    raw: RawRatings
    start: int
    stop: int
    row_groups: list[int]
    decoded: int


def file_rows(path: Path) -> tuple[int, np.ndarray]:
    """Return the rows of a Parquet file and its row-group boundaries, from the metadata only.

    Raises:
        DataError: for a file that is not readable Parquet.
    """
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"not a readable Parquet file: {error}", path=path,
                        hint="check the file, or pass format= if it is not Parquet") from None
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return int(meta.num_rows), np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))


def read_parquet_rows(path: Path, requested: dict[str, ColumnRef | None], start: int,
                      stop: int) -> ParquetRows:
    """Read file rows ``[start, stop)`` of a Parquet file: only the row groups they overlap.

    Args:
        path: the Parquet file.
        requested: per role, a column name or position, or None to recognise it.
        start: the first row wanted.
        stop: one past the last row wanted.

    Returns:
        The rows' columns (messages name rows by their place in the whole file)
        and which row groups were read.

    Raises:
        DataError: for an unreadable file.
        MissingColumnError: if a needed column is absent or cannot be recognised.
    """
    _, bounds = file_rows(path)
    groups = [g for g in range(len(bounds) - 1) if bounds[g] < stop and bounds[g + 1] > start]
    try:
        parquet = pq.ParquetFile(path)
        chosen = resolve_columns(parquet.schema_arrow.names, requested, source=str(path))
        names = [str(name) for name in chosen.values()]
        table = parquet.read_row_groups(groups, columns=names)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"not a readable Parquet file: {error}", path=path,
                        hint="check the file, or pass format= if it is not Parquet") from None
    decoded = table.num_rows
    first = int(bounds[groups[0]]) if groups else start
    table = table.slice(start - first, stop - start)
    columns = {role: arrow_column(table.column(str(name)), role, str(name))
               for role, name in chosen.items()}
    locator = Locator(str(path), "row", keys=lambda rows: np.asarray(rows) + start)
    raw = RawRatings(columns["user"], columns["item"], columns["rating"],
                     columns.get("timestamp"), locator)
    return ParquetRows(raw, start, stop, groups, decoded)


def split_positions(n: int, seed: int, offset: int, count: int,
                    chunk: int = 1 << 22) -> np.ndarray:
    """Each of rows ``[offset, offset + count)``'s place in the random split's permutation.

    The random split (:func:`embrec.data.split.split`) draws
    ``perm = default_rng(seed).permutation(n)``; training row ``p`` is file row
    ``perm[p]`` for ``p < n - n_test`` and test row ``p - (n - n_test)``
    after. This returns ``p`` for each of a rank's rows, drawing the same
    permutation and inverting it a chunk at a time.

    Args:
        n: rows in the whole file (after bad rows are dropped).
        seed: the split's seed.
        offset: this rank's first row.
        count: this rank's rows.
        chunk: permutation entries scanned at a time.

    Returns:
        int64 places, one per row of the rank.
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

    Args:
        parts: per rank, its distinct raw ids in its own index order.
        used: per rank, whether each of those ids has a training row there.
        kind: ``"user"`` or ``"item"``.

    Returns:
        The whole file's index (what :meth:`IdIndex.factorize` gives over every
        row), the training set's (that index restricted to ids with a training
        row, as ``Ratings.take(..., reindex=True)`` gives), and per rank the map
        from its local indices to each of the two (``-1`` for an id with no
        training row).
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


def shard_identity(parts: list[bytes]) -> str:
    """One digest of every rank's digest, in rank order (the same on every rank)."""
    return hashlib.sha256(b"".join(parts)).hexdigest()
