"""``njit`` with Numba's disk cache where one can be written, and without it elsewhere.

Numba caches a compiled function in the ``__pycache__`` beside its module, else
in the user's cache folder (``~/.cache/numba``), else in ``NUMBA_CACHE_DIR``
when set; where none is writable (a read-only site-packages run by a user
without a writable home: containers, services) ``njit(cache=True)`` raises
``RuntimeError`` when the module is imported, which would make ``fit``
unimportable. Then the kernels compile in each process instead (a few seconds
on a fit's first kernel call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit

__all__ = ["cached_njit"]


def cached_njit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(cache=True, **options)``, falling back to no cache where none can be written."""
    def wrap(func: Callable[..., Any]) -> Any:
        try:
            return njit(cache=True, **options)(func)
        except RuntimeError as error:
            if "cannot cache" not in str(error):
                raise
            return njit(**options)(func)

    return wrap
