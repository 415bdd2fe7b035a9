"""LIBMF's grid: an epoch's ratings regrouped so that each stretch touches few rows.

A rating's update reads and writes its user's and its item's rows. In a fully
random order over a large catalogue every update misses the CPU caches twice, and
the kernel waits on memory. Cutting users and items into ``blocks`` ranges each and
visiting the ``blocks²`` cells of that grid one after another (each epoch in its
own seeded order of cells), keeps a cell's rows in the cache while its ratings are trained
(Chin et al., "A fast parallel SGD for matrix factorization", LIBMF). Within a
cell the ratings are in a seeded random order: :func:`arrange` groups and shuffles
them once per fit.
"""

from __future__ import annotations

import math

import numpy as np

from embrec.kernels.compiled import cached_njit

__all__ = ["CACHE_BYTES", "arrange", "grid_size"]

CACHE_BYTES = 1 << 21
"""Target bytes of one range of a table's rows: about a core's share of the last-level cache."""
MAX_BLOCKS = 32


def grid_size(n_users: int, n_items: int, row_bytes: int) -> int:
    """Ranges to cut each side into so a range's rows fit :data:`CACHE_BYTES` (1: no grid)."""
    largest = max(n_users, n_items) * row_bytes
    return max(1, min(MAX_BLOCKS, math.ceil(largest / CACHE_BYTES)))


@cached_njit(nogil=True)
def arrange(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, draws: np.ndarray,
            n_users: int, n_items: int,
            blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fit's columns grouped by cell of a ``blocks x blocks`` grid, each cell shuffled.

    A counting sort reads the columns once, in order; then each cell, small enough
    for the cache, is shuffled in place (Fisher-Yates, from ``draws``: one uniform
    number in [0, 1) per row, from the run's seeded generator), so the columns are
    never read in a random order. Returns the grouped columns (indices as int64) and
    each cell's first row (``starts[c]:starts[c + 1]`` is cell ``c``).
    """
    n, cells = users.shape[0], blocks * blocks
    starts = np.zeros(cells + 1, dtype=np.int64)
    for j in range(n):
        starts[(users[j] * blocks // n_users) * blocks + items[j] * blocks // n_items + 1] += 1
    for c in range(cells):
        starts[c + 1] += starts[c]
    fill = starts[:-1].copy()
    out_users = np.empty(n, dtype=np.int64)
    out_items = np.empty(n, dtype=np.int64)
    out_ratings = np.empty(n, dtype=ratings.dtype)
    for j in range(n):
        c = (users[j] * blocks // n_users) * blocks + items[j] * blocks // n_items
        out_users[fill[c]], out_items[fill[c]], out_ratings[fill[c]] = users[j], items[j], \
            ratings[j]
        fill[c] += 1
    for c in range(cells):
        first = starts[c]
        for p in range(starts[c + 1] - 1, first, -1):
            q = first + int(draws[p] * (p - first + 1))
            out_users[p], out_users[q] = out_users[q], out_users[p]
            out_items[p], out_items[q] = out_items[q], out_items[p]
            out_ratings[p], out_ratings[q] = out_ratings[q], out_ratings[p]
    return out_users, out_items, out_ratings, starts
