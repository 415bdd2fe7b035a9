"""JSON that is always valid: NaN and infinities become ``null``, NumPy values plain numbers.

``json.dumps`` writes a bare ``NaN`` for a float NaN, which no JSON parser
accepts; every JSON embrec prints or saves goes through :func:`dumps` instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

__all__ = ["dumps", "finite"]


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively."""
    if hasattr(value, "tolist") and not isinstance(value, dict | list | tuple | str):
        try:
            value = value.tolist()  # a NumPy or PyTorch scalar or array
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def dumps(value: Any, *, indent: int | None = 2,
          default: Callable[[Any], Any] | None = None) -> str:
    """Serialise ``value`` as strict JSON (``null`` for NaN and infinities); ``indent`` and
    ``default`` as for ``json.dumps`` (``default=str`` keeps any value readable).

    Raises:
        TypeError: for a value JSON cannot hold, without ``default``.
    """
    return json.dumps(finite(value), indent=indent, allow_nan=False, default=default)
