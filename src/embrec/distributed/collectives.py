"""Collectives over NumPy arrays for sharded reading: ids, flags, floats, rows streamed to rank 0.

Small helpers on top of ``torch.distributed`` (gloo, CPU tensors): arrays of any
length are padded to the longest and trimmed back; text travels as Arrow string
buffers, floats as their bits. Nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist

from embrec.distributed.exchange import Group

__all__ = ["CHUNK", "gather_array", "gather_floats", "gather_rows", "stream_rows"]

CHUNK = 1 << 20
"""Rows moved to rank 0 per collective when gathering rows."""


def gather_rows(group: Group, rows: np.ndarray, dst: int | None = None) -> list[np.ndarray]:
    """Every rank's ``rows`` (any count, padded to the longest and trimmed back), by rank.

    On every rank with ``dst=None`` (all-gather); else on rank ``dst`` only
    (an empty list elsewhere).
    """
    sizes = [s[0] for s in group.gather_ints([len(rows)])]
    padded = np.zeros((max(*sizes, 1), *rows.shape[1:]), dtype=rows.dtype)
    padded[:len(rows)] = rows
    box = torch.from_numpy(padded)
    every = [torch.empty_like(box) for _ in sizes] if dst in (None, group.rank) else []
    if dst is None:
        dist.all_gather(every, box)
    else:
        dist.gather(box, every or None, dst=dst)
    return [got[:size].numpy() for got, size in zip(every, sizes, strict=False)]


def gather_array(group: Group, array: np.ndarray) -> list[np.ndarray]:
    """Every rank's 1-D array of ids, flags or numbers (int64, float64, bool or text)."""
    if array.dtype.kind in "iufb":
        raw = gather_rows(group, array.view(np.uint8))
        return [part.view(array.dtype) for part in raw]
    text = pa.array(array.astype(object), type=pa.large_string())
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[:len(text) + 1]
    values = np.frombuffer(text.buffers()[2] or b"", dtype=np.uint8)[:offsets[-1]]
    every = zip(gather_rows(group, (offsets - offsets[0]).view(np.uint8)),
                gather_rows(group, values[offsets[0]:]), strict=True)
    return [pa.LargeStringArray.from_buffers(len(o) // 8 - 1, pa.py_buffer(o), pa.py_buffer(v))
            .to_numpy(zero_copy_only=False).astype(object) for o, v in every]


def gather_floats(group: Group, values: list[float]) -> list[list[float]]:
    """Every rank's floats (the same count on every rank), bit for bit."""
    bits = np.asarray(values, dtype=np.float64).view(np.int64).tolist()
    return [np.asarray(r, dtype=np.int64).view(np.float64).tolist()
            for r in group.gather_ints(bits)]


def stream_rows(group: Group, positions: np.ndarray, rows: list[np.ndarray], total: int,
                chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Gather every rank's rows onto rank 0 in place order, ``chunk`` places at a time.

    ``positions`` are this rank's rows' places in ``0..total-1`` (sorted,
    disjoint between ranks, covering every place together); ``rows`` are
    integer columns (a float column viewed as same-width integers). Every rank
    must walk the iterator to its end (each chunk is a collective); rank 0 alone
    gets the rows of places ``[k * chunk, (k + 1) * chunk)``, in order.
    """
    width = len(rows)
    for start in range(0, total, chunk):
        stop = min(total, start + chunk)
        low, high = np.searchsorted(positions, [start, stop])
        mine = np.empty((high - low, width + 1), dtype=np.int64)
        mine[:, 0] = positions[low:high] - start
        for k, column in enumerate(rows):
            mine[:, 1 + k] = column[low:high]
        every = gather_rows(group, mine, dst=0)
        if group.rank == 0:
            out = np.empty((stop - start, width), dtype=np.int64)
            for part in every:
                out[part[:, 0]] = part[:, 1:]
            yield out
