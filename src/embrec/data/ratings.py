"""Ratings: explicit feedback as contiguous columnar arrays plus one IdIndex per side.

Raw ids stay in the two ``IdIndex`` objects, metadata (titles, genres) in small
DataFrames keyed by raw id. Every constructor validates: bad ratings and duplicate
(user, item) pairs are reported, never dropped silently.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from embrec.data.features import Features
from embrec.data.ids import IdIndex
from embrec.errors import DataWarning, DuplicateRatingError, MissingColumnError, ParseError

__all__ = ["Duplicates", "Ratings"]

log = logging.getLogger(__name__)

Duplicates = Literal["error", "last", "mean"]


@dataclass(frozen=True, slots=True, eq=False)
class Ratings:
    """Explicit ratings as columnar arrays.

    Attributes:
        user: int32 user indices into ``users``.
        item: int32 item indices into ``items``.
        rating: float32 ratings.
        users: raw user ids.
        items: raw item ids.
        timestamp: optional int64 timestamps (seconds), one per rating.
        scale: ``(min, max)`` of the rating scale.
        item_info: optional item metadata indexed by raw item id (``title``, ``genres``...).
        user_info: optional user metadata indexed by raw user id.
        source: where the ratings came from (a data set name or a path).
        user_features: optional encoded user side features (:mod:`embrec.data.features`).
        item_features: optional encoded item side features.
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    users: IdIndex
    items: IdIndex
    timestamp: np.ndarray | None = None
    scale: tuple[float, float] = (1.0, 5.0)
    item_info: pd.DataFrame | None = None
    user_info: pd.DataFrame | None = None
    source: str = ""
    user_features: Features | None = None
    item_features: Features | None = None
    _fingerprint: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        n = len(self.rating)
        lengths = {len(self.user), len(self.item), n}
        if self.timestamp is not None:
            lengths.add(len(self.timestamp))
        if len(lengths) != 1:
            raise ValueError(f"Ratings columns differ in length: {sorted(lengths)}")
        for name, dtype in (("user", np.int32), ("item", np.int32), ("rating", np.float32),
                            ("timestamp", np.int64)):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype))
        object.__setattr__(self, "scale", (float(self.scale[0]), float(self.scale[1])))

    # ------------------------------------------------------------------ build
    @classmethod
    def from_arrays(
        cls,
        user: Any,
        item: Any,
        rating: Any,
        timestamp: Any = None,
        *,
        scale: tuple[float, float] | None = None,
        duplicates: Duplicates = "error",
        item_info: pd.DataFrame | None = None,
        user_info: pd.DataFrame | None = None,
        source: str = "",
    ) -> Ratings:
        """Build ratings from raw id arrays, indexing the ids.

        Args:
            user: raw user ids, one per rating.
            item: raw item ids, one per rating.
            rating: the ratings (numbers).
            timestamp: optional timestamps (seconds or datetimes).
            scale: ``(min, max)``; inferred from the data when omitted.
            duplicates: repeated (user, item) pairs: ``"error"``, keep the ``"last"``,
                or take the ``"mean"``.
            item_info: optional item metadata indexed by raw item id.
            user_info: optional user metadata indexed by raw user id.
            source: a name for where the ratings came from.

        Raises:
            ParseError: for NaN or non-numeric ratings or ratings outside ``scale``.
            DuplicateRatingError: for repeated pairs when ``duplicates="error"``.
        """
        values = _numeric_ratings(rating, source)
        if scale is not None:
            _check_scale(values, scale, source)
        users, user_codes = IdIndex.factorize(user, kind="user")
        items, item_codes = IdIndex.factorize(item, kind="item")
        ts = _timestamps(timestamp) if timestamp is not None else None
        keep, values = _resolve_duplicates(user_codes, item_codes, values, len(items),
                                           duplicates, users, items, source)
        if keep is not None:
            user_codes, item_codes = user_codes[keep], item_codes[keep]
            ts = ts[keep] if ts is not None else None
        if scale is None:
            scale = _inferred_scale(values, source)
        return cls(user_codes, item_codes, values, users, items, ts, scale=scale,
                   item_info=item_info, user_info=user_info, source=source)

    @classmethod
    def from_pandas(
        cls,
        frame: pd.DataFrame,
        *,
        user: str = "user",
        item: str = "item",
        rating: str = "rating",
        timestamp: str | None = None,
        scale: tuple[float, float] | None = None,
        duplicates: Duplicates = "error",
        source: str = "DataFrame",
    ) -> Ratings:
        """Build ratings from the named columns of ``frame``, as :meth:`from_arrays` does.

        Raises:
            MissingColumnError: if a named column is absent.
            ParseError: for bad rating values.
            DuplicateRatingError: for repeated pairs when ``duplicates="error"``.
        """
        for role, name in (("user", user), ("item", item), ("rating", rating),
                           ("timestamp", timestamp)):
            if name is not None and name not in frame.columns:
                raise MissingColumnError(
                    f"no {role} column {name!r}; found {list(map(str, frame.columns))}",
                    path=source, column=name, hint=f"pass {role}=<column name>",
                )
        ts = frame[timestamp].to_numpy() if timestamp is not None else None
        return cls.from_arrays(frame[user].to_numpy(), frame[item].to_numpy(),
                               frame[rating].to_numpy(), ts, scale=scale,
                               duplicates=duplicates, source=source)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.rating)

    def __repr__(self) -> str:
        return (f"Ratings({len(self):,} ratings, {self.n_users:,} users, {self.n_items:,} items, "
                f"scale={self.scale}, source={self.source!r})")

    @property
    def n_users(self) -> int:
        """Number of distinct users in the index."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of distinct items in the index."""
        return len(self.items)

    @property
    def item_titles(self) -> pd.Series | None:
        """Item titles indexed by raw item id, when the data set carries them."""
        if self.item_info is None or "title" not in self.item_info.columns:
            return None
        return self.item_info["title"]

    def to_pandas(self) -> pd.DataFrame:
        """Return the ratings with raw ids: columns user, item, rating[, timestamp]."""
        columns = {"user": self.users.id_of(self.user), "item": self.items.id_of(self.item),
                   "rating": self.rating, "timestamp": self.timestamp}
        return pd.DataFrame({k: v for k, v in columns.items() if v is not None})

    def take(self, rows: np.ndarray, *, reindex: bool = True) -> Ratings:
        """Return the ratings at ``rows`` (positions or a boolean mask), metadata carried over.

        With ``reindex`` only the users and items present in the subset stay in the
        indexes (what a training set needs); otherwise this object's indexes are shared.
        """
        user, item = self.user[rows], self.item[rows]
        users, items = self.users, self.items
        if reindex:
            used_users, user = np.unique(user, return_inverse=True)
            used_items, item = np.unique(item, return_inverse=True)
            users = IdIndex(self.users.ids[used_users], kind="user")
            items = IdIndex(self.items.ids[used_items], kind="item")
        ts = self.timestamp[rows] if self.timestamp is not None else None
        return Ratings(user, item, self.rating[rows], users, items, ts, scale=self.scale,
                       item_info=self.item_info, user_info=self.user_info, source=self.source,
                       user_features=self.user_features, item_features=self.item_features)

    def fingerprint(self) -> str:
        """Return a SHA-256 over the ratings with their raw ids: the same rows in the same
        order share it, whatever their internal indexing."""
        if self._fingerprint:
            return self._fingerprint[0]
        digest = hashlib.sha256()
        for ids, codes in ((self.users.ids, self.user), (self.items.ids, self.item)):
            raw = ids[codes]
            if raw.dtype.kind in "iu":
                digest.update(np.ascontiguousarray(raw, dtype=np.int64).tobytes())
            else:
                digest.update(pd.util.hash_array(raw.astype(str)).tobytes())
        digest.update(self.rating.tobytes())
        self._fingerprint.append(digest.hexdigest())
        return self._fingerprint[0]

    def describe(self) -> dict[str, Any]:
        """Summarise the ratings: counts, density, scale, per-user/item quantiles."""
        per_user = np.bincount(self.user, minlength=self.n_users)
        per_item = np.bincount(self.item, minlength=self.n_items)
        quantiles = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)

        def q(counts: np.ndarray) -> dict[str, float]:
            if len(counts) == 0:
                return {}
            return {f"p{int(p * 100)}": float(np.quantile(counts, p)) for p in quantiles}

        cells = self.n_users * self.n_items
        return {"source": self.source, "ratings": len(self), "users": self.n_users,
                "items": self.n_items, "density": len(self) / cells if cells else 0.0,
                "scale": [self.scale[0], self.scale[1]],
                "mean_rating": float(self.rating.mean()) if len(self) else float("nan"),
                "has_timestamps": self.timestamp is not None,
                "has_titles": self.item_titles is not None,
                "ratings_per_user": q(per_user), "ratings_per_item": q(per_item)}


def _plain(value: Any) -> Any:
    """Turn a NumPy scalar into the Python value it holds, for readable messages."""
    return value.item() if isinstance(value, np.generic) else value


def _numeric_ratings(rating: Any, source: str) -> np.ndarray:
    raw = rating.to_numpy() if isinstance(rating, pd.Series) else np.asarray(rating)
    if raw.dtype.kind not in "iufb":
        parsed = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy()
        bad = np.flatnonzero(np.isnan(parsed) & pd.notna(pd.Series(raw)).to_numpy())
        if len(bad):
            raise ParseError(
                f"row {bad[0]}: column 'rating': cannot parse {_plain(raw[bad[0]])!r} as a number"
                f" ({len(bad)} such rows)",
                path=source or None, column="rating", value=_plain(raw[bad[0]]),
                hint="ratings must be numbers; fix or drop those rows",
            )
        raw = parsed
    with np.errstate(over="ignore", invalid="ignore"):  # 1e39: named below, not a NumPy warning
        values = raw.astype(np.float32)
    missing = np.flatnonzero(~np.isfinite(values))
    if len(missing):
        raise ParseError(
            f"row {missing[0]}: column 'rating': missing, non-finite or too large a value"
            f" ({len(missing)} such rows)",
            path=source or None, column="rating", value=_plain(raw[missing[0]]),
            hint="drop rows without a rating before loading, or use a lenient reader",
        )
    return values


def _check_scale(values: np.ndarray, scale: tuple[float, float], source: str) -> None:
    low, high = scale
    if low >= high:
        raise ParseError(f"rating scale {scale} is empty", path=source or None,
                         hint="pass scale=(min, max) with min < max")
    outside = np.flatnonzero((values < low) | (values > high))
    if len(outside):
        row = int(outside[0])
        raise ParseError(
            f"row {row}: column 'rating': {float(values[row]):g} is outside the scale "
            f"[{low:g}, {high:g}] ({len(outside)} such rows)",
            path=source or None, column="rating", value=float(values[row]),
            hint="pass the data set's real scale=(min, max), or fix those rows",
        )


OUTLIER_SPREADS = 10.0
"""A rating further than this many spreads (the interquartile range, but at least the median
and 1) outside the middle half of the ratings looks like a typo: 1000 or 45 among 1-5. So does
any negative rating when three quarters of the ratings are not negative."""


def _inferred_scale(values: np.ndarray, source: str) -> tuple[float, float]:
    """The data's (min, max), with a DataWarning when some values lie far outside the bulk."""
    if not len(values):
        return (0.0, 1.0)
    low, high = float(values.min()), float(values.max())
    q1, median, q3 = (float(q) for q in np.quantile(values, [0.25, 0.5, 0.75]))
    spread = max(q3 - q1, abs(median), 1.0)
    far = (values < q1 - OUTLIER_SPREADS * spread) | (values > q3 + OUTLIER_SPREADS * spread)
    negative = values < 0 if q1 >= 0 else np.zeros(len(values), bool)  # -3 among 1-5
    if (far.any() and far.sum() <= max(3, 0.01 * len(values))) or negative.any():
        far |= negative  # a few strays (not a mode), or below zero under a non-negative bulk
        bulk = values[~far]
        shown = ", ".join(f"{v:g}" for v in np.unique(values[far])[:5])
        warnings.warn(DataWarning(
            f"{source or 'ratings'}: {int(far.sum())} rating(s) far outside the bulk of the "
            f"data [{float(bulk.min()):g}, {float(bulk.max()):g}]: {shown}; the inferred scale "
            f"[{low:g}, {high:g}] includes them\n  hint: fix them if they are typos, or pass "
            "scale=(min, max) (CLI: --scale) to make them an error"), stacklevel=5)
    return (low, high)


def _timestamps(timestamp: Any) -> np.ndarray:
    array = timestamp.to_numpy() if isinstance(timestamp, pd.Series) else np.asarray(timestamp)
    if array.dtype.kind == "M":
        return array.astype("datetime64[s]").astype(np.int64)
    return array.astype(np.int64)


def _resolve_duplicates(user: np.ndarray, item: np.ndarray, values: np.ndarray, n_items: int,
                        policy: Duplicates, users: IdIndex, items: IdIndex,
                        source: str) -> tuple[np.ndarray | None, np.ndarray]:
    """Find repeated (user, item) pairs and apply ``policy``; ``None`` means keep all rows."""
    key = user.astype(np.int64) * max(n_items, 1) + item
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    repeat = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    if len(repeat) == 0:
        return None, values
    first = order[repeat[0]]
    pair = (users.id_of([user[first]]).tolist()[0], items.id_of([item[first]]).tolist()[0])
    if policy == "error":
        raise DuplicateRatingError(
            f"{len(repeat)} duplicate (user, item) ratings, first: user {pair[0]!r}, "
            f"item {pair[1]!r}",
            path=source or None, value=pair,
            hint="pass duplicates='last' to keep the latest rating or 'mean' to average them",
        )
    starts = np.concatenate(([True], sorted_key[1:] != sorted_key[:-1]))
    group = np.cumsum(starts) - 1
    if policy == "last":
        ends = np.concatenate((np.flatnonzero(starts)[1:], [len(order)])) - 1
        keep = np.sort(order[ends])
        merged = values[keep]
    else:
        sums = np.bincount(group, weights=values[order])
        counts = np.bincount(group)
        firsts = order[starts]
        position = np.argsort(firsts)
        keep = firsts[position]
        merged = (sums / counts)[position].astype(np.float32)
    message = f"{len(repeat)} duplicate (user, item) ratings merged by duplicates={policy!r}"
    log.info(message)
    return keep, merged
