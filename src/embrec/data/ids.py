"""IdIndex: the one mapping between raw ids (ints or strings) and indices 0..n-1.

Raw ids live outside the library, contiguous indices inside. Every mapping is
vectorised through a pandas hash index; unknown ids follow an explicit policy
(raise, or return -1) instead of a sentinel id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from embrec.errors import UnknownIdError

__all__ = ["IdIndex"]

_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*")
"""The one spelling of an integer that equals an integer id (no sign, zeros or exponent)."""


def _integer_like(value: Any) -> bool:
    if isinstance(value, str):
        return _CANONICAL_INT.fullmatch(value) is not None
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)

OnUnknown = Literal["error", "missing"]


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy()
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        values = [values]
    # a Series keeps mixed ids (3 and "a") as objects instead of turning 3 into "3"
    return pd.Series(list(values)).to_numpy()


class IdIndex:
    """Maps raw ids to contiguous int64 indices and back.

    Args:
        ids: the distinct raw ids, in index order (index ``i`` is ``ids[i]``).
        kind: ``"user"`` or ``"item"``, used in error messages.

    Raises:
        ValueError: if ``ids`` holds duplicates.
    """

    __slots__ = ("_lookup", "ids", "kind")

    def __init__(self, ids: Any, *, kind: str = "id") -> None:
        array = _as_array(ids)
        if array.dtype.kind in "iub":
            array = array.astype(np.int64, copy=False)
        elif array.dtype.kind == "U":
            array = array.astype(object)
        self.ids: np.ndarray = array
        self.kind = kind
        self._lookup = pd.Index(array)
        if not self._lookup.is_unique:
            raise ValueError(f"IdIndex ids must be distinct; {kind} ids repeat")

    @classmethod
    def factorize(cls, values: Any, *, kind: str = "id") -> tuple[IdIndex, np.ndarray]:
        """Index the distinct values of ``values`` and return their codes.

        Ids are sorted when they are comparable (so the same set of ids always
        gives the same indices) and kept in first-seen order otherwise. The codes
        are int32.
        """
        array = _as_array(values)
        try:
            codes, uniques = pd.factorize(array, sort=True)
        except TypeError:  # mixed ids that do not compare, e.g. 3 and "a"
            codes, uniques = pd.factorize(array, sort=False)
        return cls(np.asarray(uniques), kind=kind), codes.astype(np.int32, copy=False)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, raw: object) -> bool:
        return bool(self.index(self.coerce(raw), on_unknown="missing")[0] >= 0)

    def __repr__(self) -> str:
        head = ", ".join(repr(i) for i in self.ids[:3].tolist())
        more = ", ..." if len(self) > 3 else ""
        return f"IdIndex({self.kind}, n={len(self)}, ids=[{head}{more}])"

    @property
    def is_integer(self) -> bool:
        """Whether the raw ids are integers."""
        return self.ids.dtype.kind in "iu"

    def coerce(self, raw: Any) -> Any:
        """Convert ids that arrive as text (a URL, a CSV) to the index's id type.

        ``"196"`` becomes ``196`` when the index holds integer ids; only the
        canonical spelling of an integer converts (``"0196"``, ``"196.0"``,
        ``"1.96e2"`` do not), and anything that does not convert is returned
        unchanged (and will be unknown).
        """
        if not self.is_integer:
            return raw
        array = _as_array(raw)
        if array.dtype.kind in "iu":
            return raw
        values = array.tolist()
        if not all(_integer_like(v) for v in values):
            return raw  # "196.0", "0196", "1e3" are not the integer id 196, 196, 1000
        try:
            converted = np.asarray([int(v) for v in values], dtype=np.int64)
        except OverflowError:
            return raw
        return converted if isinstance(raw, Iterable) and not isinstance(raw, str) else converted[0]

    def index(self, raw: Any, *, on_unknown: OnUnknown = "error") -> np.ndarray:
        """Return the int64 indices of raw ids; an unknown id raises, or is -1 under
        ``on_unknown="missing"``.

        Raises:
            UnknownIdError: for unknown ids when ``on_unknown="error"``.
        """
        array = _as_array(raw)
        positions: np.ndarray = self._lookup.get_indexer(array).astype(np.int64, copy=False)
        if on_unknown == "error":
            unknown = positions < 0
            if unknown.any():
                raise UnknownIdError(self.kind, pd.unique(array[unknown]).tolist())
        return positions

    def id_of(self, indices: Any) -> np.ndarray:
        """Return the raw ids at ``indices`` (the inverse of :meth:`index`)."""
        return self.ids[np.asarray(indices, dtype=np.int64)]

    def to_list(self) -> list[Any]:
        """Return the raw ids as plain Python values, in index order."""
        return list(self.ids.tolist())
