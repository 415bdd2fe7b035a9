"""JSON that is always valid: NaN and infinities become ``null``, NumPy values plain numbers.

``json.dumps`` writes a bare ``NaN`` for a float NaN, which no JSON parser
accepts; every JSON embrec prints goes through :func:`dumps` instead.
"""

from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import Any

__all__ = ["dumps", "finite"]


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively."""
    if hasattr(value, "item") and not isinstance(value, dict | list | tuple | str):
        try:
            value = value.item()  # a NumPy or PyTorch scalar
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


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """Serialise ``value`` as strict JSON (``null`` for NaN and infinities).

    Raises:
        TypeError: for a value JSON cannot hold.
    """
    return json.dumps(finite(value), indent=indent, allow_nan=False)
