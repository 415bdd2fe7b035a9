"""``njit`` with Numba's disk cache where one can be written, and without it elsewhere.

Where no Numba cache folder is writable (``__pycache__``, ``~/.cache/numba``,
``NUMBA_CACHE_DIR``: a read-only install in a container or service),
``njit(cache=True)`` raises ``RuntimeError`` at import, which would make ``fit``
unimportable; the kernels then compile in each process instead.
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
