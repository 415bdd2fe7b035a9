"""Threads that train shared embedding rows without waiting for each other (Hogwild).

An epoch's ratings are cut into chunks; thread ``t`` of ``T`` trains chunks
``t, t + T, ...`` in one call of a compiled kernel that releases the GIL and
never comes back to Python until its share is done. Rows are updated in place by
whichever thread reads them (as LIBMF and the ``implicit`` library do): two
threads rarely touch the same row at once, and when they do, one update is partly
lost, which SGD tolerates. Nothing waits per step or per chunk: threads never
come back to Python during a segment, so they never wait for the interpreter's
lock (which, on a busy core, can cost a scheduler time slice). The price is a
static split: a thread on a busier core finishes its share later.
The only shared scalar state, the dense parameters (biased MF's global
bias), is copied per thread and averaged when the range is done: every rating
writes it, and one cache line bounced between cores per rating would cost more
than the arithmetic.

With one thread the chunks run in order on the caller's thread and the result
is exactly the sequential one (bitwise reproducible for a seed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

__all__ = ["Share", "train_shares"]

Share = Callable[[int, int, list[np.ndarray]], None]
"""``kernel(thread, threads, shared)``: train thread ``thread``'s share of the work in place."""


def train_shares(kernel: Share, threads: int, shared: list[np.ndarray]) -> None:
    """Run ``kernel`` for each of ``threads`` threads (the caller's thread is one of them).

    Args:
        kernel: trains one thread's share in one call (it must release the GIL).
        threads: threads to use.
        shared: the dense parameters and their optimiser state; with several
            threads each works on its own copy and the copies are averaged.
    """
    if threads <= 1:
        kernel(0, 1, shared)
        return
    copies = [[a.copy() for a in shared] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            kernel(thread, threads, copies[thread])
        except BaseException as error:  # re-raised on the caller's thread
            errors.append(error)

    helpers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(1, threads)]
    for helper in helpers:
        helper.start()
    work(0)
    for helper in helpers:
        helper.join()
    if errors:
        raise errors[0]
    for k, array in enumerate(shared):
        array[:] = np.mean([c[k] for c in copies], axis=0)
