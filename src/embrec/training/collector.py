"""Python's cycle collector, paused while ``fit`` trains and resumed as it was found.

The training loop makes no reference cycles (reference counts free every
tensor), but its thousands of short-lived tensors trigger collections, and a
full one scans every object of the process (with torch imported, hundreds of
thousands), work that frees nothing here. ``timeit`` pauses the collector for the
same reason (timings: ``python benchmarks/engine.py collector``).

The collector's switch is process-wide, so pauses are counted: when fits run in
several threads at once, the first to start pauses it and the last to finish
puts it back as the first found it (on, or off if the caller had turned it off).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["paused"]


class _Pauses:
    lock = threading.Lock()
    count = 0
    was_enabled = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause the cycle collector for the block (nested and concurrent blocks included)."""
    with _Pauses.lock:
        if _Pauses.count == 0:
            _Pauses.was_enabled = gc.isenabled()
            gc.disable()
        _Pauses.count += 1
    try:
        yield
    finally:
        with _Pauses.lock:
            _Pauses.count -= 1
            if _Pauses.count == 0 and _Pauses.was_enabled:
                gc.enable()
