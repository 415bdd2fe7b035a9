"""Large embedding tables in memory the CPU can address quickly: transparent huge pages.

A step of a 1.5M-row catalogue touches ~4,000 rows scattered over hundreds of
megabytes. With 4 KiB pages every one of those rows is also a TLB miss (the
TLB covers a few MiB), so the step pays a page-table walk on top of the cache
miss. Backing the table with 2 MiB pages (Linux transparent huge pages, asked
for with ``madvise``) lets the TLB cover the whole table. First touching fresh
huge pages costs more, so they pay off over several epochs (timings:
``python benchmarks/engine.py hugepages``, in ``benchmarks/results/``).

Only anonymous memory that ``madvise(MADV_HUGEPAGE)`` can mark is used, and only
for CPU tables of at least :data:`HUGE_MIN_BYTES`; anywhere else (another OS,
THP disabled, a GPU) this is plain ``torch.zeros``. The memory is released when
the last tensor viewing it is gone (the tensor keeps the mapping alive).
"""

from __future__ import annotations

import mmap

import numpy as np
import torch

__all__ = ["HUGE_MIN_BYTES", "zeros"]

HUGE_MIN_BYTES = 64 << 20
"""Tables below 64 MiB fit the TLB's reach well enough; they use torch's allocator."""

_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


def zeros(rows: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Return a zero ``(rows, width)`` tensor, on huge pages when large, on the CPU and possible.

    Args:
        rows: rows of the table.
        width: columns of the table.
        dtype: element type.
        device: where the table lives.

    Returns:
        A contiguous zero tensor; its values and uses are those of ``torch.zeros``.
    """
    size = rows * width * torch.empty((), dtype=dtype).element_size()
    if device.type != "cpu" or size < HUGE_MIN_BYTES or _HUGEPAGE is None \
            or dtype not in _NUMPY:
        return torch.zeros((rows, width), dtype=dtype, device=device)
    try:
        region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(_HUGEPAGE)
    except OSError:  # no such advice on this kernel, or no memory map: torch's allocator
        return torch.zeros((rows, width), dtype=dtype, device=device)
    array = np.frombuffer(region, dtype=_NUMPY[dtype]).reshape(rows, width)
    return torch.from_numpy(array)  # anonymous maps start zeroed; the array keeps the map alive
