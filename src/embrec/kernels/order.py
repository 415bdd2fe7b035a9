"""LIBMF's grid: an epoch's ratings regrouped so that each stretch touches few rows.

A rating's update reads and writes its user's and its item's rows. In a fully
random order over a large catalogue every update misses the CPU caches twice; on
the 10M-rating benchmark set (70k users, 11k items) the kernel then waits on
memory most of the time. Cutting users and items into ``blocks`` ranges each and
visiting the ``blocks²`` cells of that grid one after another, in a seeded random
order of cells, keeps a cell's rows in the cache while its ratings are trained
(Chin et al., "A fast parallel SGD for matrix factorization", LIBMF). Within a
cell the ratings keep the epoch's random order, so this is a stable regrouping
of the shuffle, not a new one, and a seed still fixes it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["CACHE_BYTES", "blocked", "grid_size"]

CACHE_BYTES = 1 << 21
"""Target bytes of one range of a table's rows: about a core's share of the last-level cache."""
MAX_BLOCKS = 32


def grid_size(n_users: int, n_items: int, row_bytes: int) -> int:
    """Ranges to cut each side into so a range's rows fit :data:`CACHE_BYTES` (1: no grid)."""
    largest = max(n_users, n_items) * row_bytes
    return max(1, min(MAX_BLOCKS, math.ceil(largest / CACHE_BYTES)))


@njit(nogil=True, cache=True)
def blocked(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, blocks: int,
            cell_rank: np.ndarray) -> np.ndarray:
    """The positions of the ratings in grid order: cells by ``cell_rank``, stable within.

    Args:
        users, items: the epoch's shuffled columns.
        n_users, n_items: the table sizes.
        blocks: ranges per side.
        cell_rank: a permutation of ``range(blocks * blocks)``: each cell's turn.

    Returns:
        ``positions`` such that ``users[positions]`` is the grid order (a counting sort).
    """
    n = users.shape[0]
    cell = np.empty(n, dtype=np.int64)
    counts = np.zeros(blocks * blocks + 1, dtype=np.int64)
    for j in range(n):
        c = cell_rank[(users[j] * blocks // n_users) * blocks + items[j] * blocks // n_items]
        cell[j] = c
        counts[c + 1] += 1
    for c in range(blocks * blocks):
        counts[c + 1] += counts[c]
    positions = np.empty(n, dtype=np.int64)
    for j in range(n):
        positions[counts[cell[j]]] = j
        counts[cell[j]] += 1
    return positions
