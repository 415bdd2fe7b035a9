"""Threads that train shared embedding rows without waiting for each other (Hogwild).

An epoch's ratings are cut into chunks; each thread takes the next
chunk from a shared counter until none is left, and calls a compiled kernel that
releases the GIL. Rows are updated in place by whichever thread reads them (as
LIBMF and the ``implicit`` library do): two threads rarely touch the same row at
once, and when they do, one update is partly lost, which SGD tolerates. Nothing
waits per step, so a busy core slows its thread alone; the others take more
chunks. The only shared scalar state, the dense parameters (biased MF's global
bias), is copied per thread and averaged when the range is done: every rating
writes it, and one cache line bounced between cores per rating would cost more
than the arithmetic.

With one thread the chunks run in order on the caller's thread and the result
is exactly the sequential one (bitwise reproducible for a seed).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import numpy as np

__all__ = ["Chunk", "train_range"]

Chunk = Callable[[int, int, int, list[np.ndarray]], None]
"""``kernel(start, stop, row, shared)``: train steps ``start:stop``, held from array ``row`` on."""


def train_range(kernel: Chunk, bounds: list[tuple[int, int, int]], threads: int,
                shared: list[np.ndarray], done: Callable[[int], None] | None = None) -> None:
    """Train the chunks ``bounds`` (``(start, stop, row)`` each, in one thread's order) with
    ``kernel`` (which must release the GIL) on ``threads`` threads, the caller's included.

    ``shared`` holds the dense parameters and their optimiser state; with several threads
    each works on its own copy and the copies are averaged. ``done`` is called on the
    caller's thread with the rows finished so far.
    """
    finished, counter = [0], itertools.count()  # next() is atomic under the GIL
    one = threads <= 1 or len(bounds) <= 1  # in order, on the caller's thread, on ``shared``
    copies = [shared] if one else [[a.copy() for a in shared] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(mine: list[np.ndarray], report: bool) -> None:
        try:
            while not errors and (k := next(counter)) < len(bounds):  # stop once one failed
                s, e, row = bounds[k]
                kernel(s, e, row, mine)
                finished[0] += e - s
                if report and done is not None:
                    done(finished[0])
        except BaseException as error:  # re-raised on the caller's thread
            errors.append(error)

    helpers = [threading.Thread(target=work, args=(copies[t], False), daemon=True)
               for t in range(1, len(copies))]
    for helper in helpers:
        helper.start()
    work(copies[0], True)
    for helper in helpers:
        helper.join()
    if errors:
        raise errors[0]
    for k, array in enumerate(shared if not one else ()):
        array[:] = np.mean([c[k] for c in copies], axis=0)
