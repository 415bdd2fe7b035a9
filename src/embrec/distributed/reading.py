"""Sharded reading for torchrun runs: each rank reads its rows; the ranks agree on the rest.

With a Parquet file and the random split, rank ``r`` reads only the row groups
overlapping its file rows (:mod:`embrec.distributed.shards`), validates them, and the
ranks then agree, with a few collectives over small arrays, on what one process
would have computed from the whole file:

- the row count (after bad rows are skipped) and each rank's offset, so the
  split's seeded permutation gives each row its exact train or test place;
- the id indexes: every rank's distinct ids are gathered and merged as
  :meth:`IdIndex.factorize <embrec.data.ids.IdIndex.factorize>` would merge
  them over every row;
- the rating scale (minimum and maximum over every rank) and repeated
  (user, item) pairs across ranks (each rank checks its own rows as the reader
  does; pairs split over ranks are found by hashing pair keys to an owner rank).

Training then runs on each rank's rows (:class:`ShardedRatings` carries their
places). After training, rank 0 alone gathers the training and test rows, a
chunk at a time, to build what is saved and evaluated (seen items, the data
fingerprint, the test metrics); the train metrics are summed over the ranks.
Checked per rank, not over the whole file: the far-outlier warning of an
inferred scale, and where a bad row is reported (each rank reports its own).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings
from embrec.data.readers import format_of
from embrec.data.validation import build_ratings, warn_skipped
from embrec.distributed.collectives import (
    CHUNK,
    gather_array,
    gather_floats,
    gather_rows,
    stream_rows,
)
from embrec.distributed.exchange import Group, shard_bounds
from embrec.distributed.shards import (
    ShardedRatings,
    file_rows,
    id_digest,
    merged_index,
    read_parquet_rows,
    read_text_rows,
    split_positions,
    text_bounds,
)
from embrec.errors import DataError, DuplicateRatingError, EmbrecError
from embrec.training.closed_form import solves_itself

NO_ROWS = ("no ratings found", "the file is empty")
"""How a reader's error begins when a part of the file holds no ratings at all."""

__all__ = ["Shards", "gathered_test", "gathered_train", "read_sharded", "summed_errors",
           "whole_file_reason"]

@dataclass(frozen=True, slots=True)
class Shards:
    """What a rank holds after sharded reading.

    Attributes:
        train: this rank's training rows, indexed with the whole training set's ids.
        test_positions: places of this rank's test rows in the test set (sorted).
        test_rows: per test row, whole-file user and item indices and the rating's bits
            (three int32 columns).
        users, items: the whole file's user and item indexes.
        n_test: rows in the whole test set.
        facts: per-rank reading facts for the run's metadata.
    """

    train: ShardedRatings
    test_positions: np.ndarray
    test_rows: list[np.ndarray]
    users: IdIndex
    items: IdIndex
    n_test: int
    facts: dict[str, Any]


def _no_rows(error: EmbrecError) -> bool:
    """Whether a rank's error only says its part holds no ratings (blank, header, all skipped)."""
    return type(error) is DataError and \
        error.message.removeprefix(f"{error.path}: ").startswith(NO_ROWS)


def _agree_read(group: Group, path: Path, options: dict[str, Any], kind: str,
                bounds: list[int]) -> tuple[Ratings, dict[str, int]] | str:
    """Read and validate this rank's rows and facts; if any rank fails, every rank raises.

    Returns (on every rank) why the file must be read whole instead when a
    rank's part held no ratings, though others may (one process then decides).
    """
    error: EmbrecError | None = None
    start, stop = bounds[group.rank], bounds[group.rank + 1]
    requested = {r: options.get(r) for r in ("user", "item", "rating", "timestamp")}
    bad_lines = options.get("on_bad_lines", "error")
    with tempfile.TemporaryDirectory(prefix="embrec-part-") as folder:
        try:
            part = read_parquet_rows(path, requested, start, stop) if kind == "parquet" else \
                read_text_rows(path, requested, kind, options.get("sep"), bad_lines == "error",
                               start, stop, Path(folder))
            ratings, summary = build_ratings(part.raw, scale=options.get("scale"),
                                             duplicates="error", on_bad_lines=bad_lines,
                                             source=str(path))
            warn_skipped([summary] if summary else [], stacklevel=4)
            facts = part.facts
            del part
        except EmbrecError as caught:
            error = caught
    pa.default_memory_pool().release_unused()  # the Arrow pool keeps freed pages otherwise
    empty = error is not None and _no_rows(error)
    flags = group.gather_ints([int(error is not None and not empty), int(empty)])
    failed, blank = [f[0] for f in flags], [f[1] for f in flags]
    if error is not None and not empty:
        raise error
    if any(failed):
        raise DataError(f"rank {failed.index(1)} could not read its rows of the file", path=path,
                        hint="that rank printed the reason; fix the file and run again")
    if any(blank):
        return f"rank {blank.index(1)}'s part of the file holds no ratings"
    return ratings, facts


def _bounds(path: Path, kind: str, world_size: int) -> list[int] | str:
    """Where each rank's rows start (file rows, or bytes of text), or why not to shard."""
    if kind == "parquet":
        total, _ = file_rows(path)
        bounds = [shard_bounds(total, r, world_size)[0] for r in range(world_size)] + [total]
    else:
        bounds = text_bounds(path, world_size)
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        return f"the file is too small to give each of {world_size} ranks some rows"
    return bounds


def _kind(ids: np.ndarray) -> int:
    """0 integers, 1 floats, 2 text, 3 exact Python integers past int64 (uint64 hashes)."""
    if ids.dtype.kind == "O" and len(ids) and not isinstance(ids[0], str):
        return 3  # _ids keeps uint64 ids past int64 as Python ints: they travel as neither
    return {"i": 0, "u": 0, "f": 1}.get(ids.dtype.kind, 2)


def read_sharded(path: Path, options: dict[str, Any], seed: int, test_size: float,
                 group: Group) -> Shards | str:
    """Read this rank's rows of a Parquet file and agree with the other ranks on the split.

    ``seed`` and ``test_size`` are the random split's. Returns this rank's
    shards, or why the file must be read whole after all (the same answer on
    every rank).

    Raises:
        DataError: for bad rows, repeated pairs (on one rank or across ranks) or
            an unreadable file, on every rank.
    """
    kind = format_of(path, options.get("format"))
    bounds = _bounds(path, kind, group.world_size)
    if isinstance(bounds, str):
        return bounds
    agreed = _agree_read(group, path, options, kind, bounds)
    if isinstance(agreed, str):
        return agreed
    local, read = agreed
    kinds = group.gather_ints([_kind(local.users.ids), _kind(local.items.ids)])
    if any(k != kinds[0] for k in kinds):
        return "the ranks' rows hold ids of different types (e.g. text on one, numbers on another)"
    if 3 in kinds[0]:
        return "ids past int64 (e.g. uint64 hashes) are read whole"
    counts = [c[0] for c in group.gather_ints([len(local)])]
    n, offset = sum(counts), sum(counts[:group.rank])
    where = split_positions(n, seed, offset, len(local))
    n_train = n - int(test_size * n)
    in_train = where < n_train
    sides = [_side(group, ids, codes, in_train, kind) for ids, codes, kind in
             ((local.users.ids, local.user, "user"), (local.items.ids, local.item, "item"))]
    keys = sides[0][2][local.user] * max(len(sides[1][0]), 1) + sides[1][2][local.item]
    _check_pairs(group, keys, sides[0][0], sides[1][0], path)
    scale = options.get("scale") or _scale(group, local.rating)
    train = _train_shard(group, local, where, in_train, sides, scale, n_train, str(path))
    test = np.flatnonzero(~in_train)
    test = test[np.argsort(where[test])]
    rows = [sides[0][2][local.user[test]].astype(np.int32),
            sides[1][2][local.item[test]].astype(np.int32), local.rating[test].view(np.int32)]
    every = group.gather_ints(list(read.values()))
    facts = {"read_rows_per_rank": counts,
             **{f"{key}_per_rank": [r[k] for r in every] for k, key in enumerate(read)}}
    return Shards(train, where[test] - n_train, rows, sides[0][0], sides[1][0], n - n_train,
                  facts)


_Side = tuple[IdIndex, IdIndex, np.ndarray, np.ndarray]


def _side(group: Group, ids: np.ndarray, codes: np.ndarray, in_train: np.ndarray,
          kind: str) -> _Side:
    """One id column's whole-file and training indexes, and this rank's maps into them."""
    used = np.zeros(len(ids), dtype=bool)
    used[codes[in_train]] = True
    whole, train, to_whole, to_train = merged_index(gather_array(group, ids),
                                                    gather_array(group, used), kind)
    return whole, train, to_whole[group.rank], to_train[group.rank]


def _check_pairs(group: Group, keys: np.ndarray, users: IdIndex, items: IdIndex,
                 path: Path) -> None:
    """Raise on every rank if a (user, item) pair is on more than one rank.

    Each key goes to rank ``key % world_size``, which looks for repeats among
    what it received: a rank holds about ``1 / world_size`` of the keys.
    """
    found = [0, -1]
    owner = (keys % group.world_size).astype(np.int32)
    for rank in range(group.world_size):
        every = gather_rows(group, keys[owner == rank], dst=rank)
        if group.rank == rank:
            got = np.sort(np.concatenate(every))
            repeats = got[1:][got[1:] == got[:-1]]
            found = [len(repeats), int(repeats.min()) if len(repeats) else -1]
    every_found = group.gather_ints(found)
    count = sum(f[0] for f in every_found)
    if count:
        key = min(f[1] for f in every_found if f[0])
        user, item = users.ids[key // max(len(items), 1)], items.ids[key % max(len(items), 1)]
        pair = (user.item() if isinstance(user, np.generic) else user,
                item.item() if isinstance(item, np.generic) else item)
        raise DuplicateRatingError(
            f"{count} duplicate (user, item) ratings, first: user {pair[0]!r}, item "
            f"{pair[1]!r} (on different ranks' rows)", path=path, value=pair,
            hint="pass duplicates='last' to keep the latest rating or 'mean' to average them")


def _scale(group: Group, rating: np.ndarray) -> tuple[float, float]:
    """The inferred scale over every rank's ratings: the minimum and the maximum."""
    every = gather_floats(group, [float(rating.min()), float(rating.max())])
    return min(e[0] for e in every), max(e[1] for e in every)


def _train_shard(group: Group, local: Ratings, where: np.ndarray, in_train: np.ndarray,
                 sides: list[_Side], scale: tuple[float, float], n_train: int,
                 source: str) -> ShardedRatings:
    """This rank's training rows, ordered by their place in the training set."""
    rows = np.flatnonzero(in_train)
    rows = rows[np.argsort(where[rows])]
    user = sides[0][3][local.user[rows]].astype(np.int32)
    item = sides[1][3][local.item[rows]].astype(np.int32)
    rating, positions = local.rating[rows], where[rows]
    digest = hashlib.sha256()
    for start in range(0, len(rows), CHUNK):  # a chunk at a time: no copy of the whole shard
        part = slice(start, start + CHUNK)
        for piece in (positions[part].tobytes(), id_digest(sides[0][1].ids[user[part]]),
                      id_digest(sides[1][1].ids[item[part]]), rating[part].tobytes()):
            digest.update(piece)
    every = gather_array(group, np.frombuffer(digest.digest(), dtype=np.uint8))
    identity = hashlib.sha256(b"".join(d.tobytes() for d in every)).hexdigest()  # rank order
    return ShardedRatings(user, item, rating, sides[0][1], sides[1][1], None, scale=scale,
                          source=source, positions=positions, total=n_train, identity=identity)


def _gathered(group: Group, positions: np.ndarray, rows: list[np.ndarray], total: int,
              users: IdIndex, items: IdIndex, like: Ratings) -> Ratings | None:
    """Every rank's (user, item, rating bits) rows on rank 0, in place order; ``None`` elsewhere.

    The chunks are written straight into int32 columns, so rank 0 holds 12
    bytes a row, as one process does.
    """
    got = np.empty((3, total if group.rank == 0 else 0), dtype=np.int32)
    for k, chunk in enumerate(stream_rows(group, positions, rows, total, CHUNK)):
        got[:, k * CHUNK:k * CHUNK + len(chunk)] = chunk.T
    return Ratings(got[0], got[1], got[2].view(np.float32), users, items, None,
                   scale=like.scale, source=like.source) if group.rank == 0 else None


def gathered_train(group: Group, shard: ShardedRatings) -> Ratings | None:
    """The whole training set on rank 0 (``None`` elsewhere), gathered a chunk at a time."""
    return _gathered(group, shard.positions, [shard.user, shard.item, shard.rating.view(np.int32)],
                     shard.total, shard.users, shard.items, shard)


def gathered_test(group: Group, shards: Shards) -> Ratings | None:
    """The whole test set on rank 0 (``None`` elsewhere), indexed as the random split does."""
    whole = _gathered(group, shards.test_positions, shards.test_rows, shards.n_test,
                      shards.users, shards.items, shards.train)
    return None if whole is None else whole.take(np.arange(len(whole)), reindex=True)


def summed_errors(group: Group, result: dict[str, Any]) -> dict[str, float]:
    """Rating errors over every rank's rows, from each rank's ``evaluate`` result."""
    n = float(result["n"])
    mine = [float(result["mse"]) * n, float(result["mae"]) * n, n, float(result["unknown"])]
    sse, sae, total, unknown = (sum(column) for column in zip(*gather_floats(group, mine),
                                                               strict=True))
    mse = sse / total if total else math.nan
    return {"rmse": math.sqrt(mse), "mae": sae / total if total else math.nan, "mse": mse,
            "n": total, "unknown": unknown}


def whole_file_reason(data: str, options: dict[str, Any], method: str, test_data: str | None,
                      model_config: Any, train_config: Any, group: Group) -> str | None:
    """Why this run's ranks must each read the whole file; ``None`` when each can read its part.

    Every input is the same on every rank, so every rank gives the same answer.
    """
    path = Path(data).expanduser()
    if not path.is_file():
        return "folders and named data sets are read whole"
    try:
        kind = format_of(path, options.get("format"))
    except EmbrecError as error:
        return str(error)
    reasons = [
        (kind not in ("parquet", "csv", "tsv", "text"),
         f"only Parquet and delimited text are read per rank, not {kind}"),
        (kind != "parquet" and path.suffix.lower() in (".gz", ".bz2", ".zst", ".lz4", ".br"),
         "compressed text cannot be cut into byte ranges (decompress it, or use Parquet)"),
        (group.device.type != "cpu", "reading per rank runs on CPU ranks (gloo) for now"),
        (test_data is not None, "a separate test file was given"),
        (method != "random", f"the {method!r} split needs all of a user's rows"),
        (options.get("duplicates", "error") != "error",
         "duplicates='last'/'mean' merge rows that may sit on different ranks"),
        (train_config.validation > 0, "validation rows are held out of the whole training set"),
        (train_config.loss != "rating", "ranking losses train in one process"),
        (solves_itself(model_config), "closed-form models fit in one process"),
    ]
    return next((why for bad, why in reasons if bad), None)
