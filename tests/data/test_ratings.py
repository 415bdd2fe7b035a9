"""Ratings: construction, validation messages, duplicate policies, subsets, fingerprints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embrec.data.ratings import Ratings
from embrec.errors import DuplicateRatingError, MissingColumnError, ParseError


def test_from_arrays_indexes_ids_and_infers_scale() -> None:
    r = Ratings.from_arrays(["b", "a", "b"], [10, 20, 20], [1.0, 5.0, 3.5], [3, 1, 2])
    assert (len(r), r.n_users, r.n_items) == (3, 2, 2)
    assert r.scale == (1.0, 5.0)
    assert r.user.dtype == np.int32 and r.rating.dtype == np.float32
    assert r.timestamp is not None and r.timestamp.dtype == np.int64
    frame = r.to_pandas()
    assert frame["user"].tolist() == ["b", "a", "b"]
    assert frame["item"].tolist() == [10, 20, 20]


def test_non_numeric_rating_names_row_and_value() -> None:
    with pytest.raises(ParseError, match=r"row 1: column 'rating': cannot parse 'five'"):
        Ratings.from_arrays([1, 2], [1, 2], ["4", "five"], source="r.csv")


def test_nan_rating_is_reported_not_dropped() -> None:
    with pytest.raises(ParseError, match="row 2.*non-finite"):
        Ratings.from_arrays([1, 2, 3], [1, 2, 3], [4.0, 3.0, np.nan])


def test_rating_outside_scale() -> None:
    with pytest.raises(ParseError, match=r"7 is outside the scale \[1, 5\]") as info:
        Ratings.from_arrays([1, 2], [1, 2], [4, 7], scale=(1, 5))
    assert "hint:" in str(info.value)


def test_duplicates_error_by_default_with_count() -> None:
    with pytest.raises(DuplicateRatingError, match="2 duplicate .* user 1, item 1"):
        Ratings.from_arrays([1, 1, 1, 2], [1, 1, 1, 1], [1, 2, 3, 4])


def test_duplicates_last_and_mean() -> None:
    users, items, values = [1, 2, 1, 1], [1, 1, 1, 2], [1.0, 4.0, 3.0, 5.0]
    last = Ratings.from_arrays(users, items, values, duplicates="last").to_pandas()
    assert last.values.tolist() == [[2, 1, 4.0], [1, 1, 3.0], [1, 2, 5.0]]
    mean = Ratings.from_arrays(users, items, values, duplicates="mean").to_pandas()
    assert mean.values.tolist() == [[1, 1, 2.0], [2, 1, 4.0], [1, 2, 5.0]]


def test_from_pandas_missing_column_lists_columns() -> None:
    frame = pd.DataFrame({"userId": [1], "movieId": [2], "ts": [3]})
    with pytest.raises(MissingColumnError, match=r"no rating column 'rating'; found \['userId'"):
        Ratings.from_pandas(frame, user="userId", item="movieId")


def test_take_reindexes_to_subset_ids() -> None:
    r = Ratings.from_arrays([1, 2, 3, 3], ["a", "b", "c", "a"], [1, 2, 3, 4])
    sub = r.take(np.array([1, 2]))
    assert sub.users.to_list() == [2, 3] and sub.items.to_list() == ["b", "c"]
    assert sub.to_pandas().values.tolist() == [[2, "b", 2.0], [3, "c", 3.0]]
    shared = r.take(np.array([1, 2]), reindex=False)
    assert shared.n_users == 3


def test_fingerprint_depends_on_content_not_indexing() -> None:
    a = Ratings.from_arrays([5, 1], [1, 2], [3, 4])
    b = Ratings.from_arrays([5, 1, 9], [1, 2, 3], [3, 4, 5]).take(np.array([0, 1]))
    c = Ratings.from_arrays([5, 1], [1, 2], [3, 5])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_describe_counts(tiny: Ratings) -> None:
    info = tiny.describe()
    assert info["ratings"] == len(tiny) == 1200
    assert info["users"] == 60 and info["items"] == 40
    assert info["density"] == pytest.approx(1200 / 2400)
    assert info["scale"] == [1.0, 5.0]
    assert info["ratings_per_user"]["p100"] == np.bincount(tiny.user).max()
