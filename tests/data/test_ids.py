"""IdIndex: round trips for int, string and mixed ids; duplicates collapse; unknown policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embrec.data.ids import IdIndex
from embrec.errors import UnknownIdError

ids_strategy = st.one_of(
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=50),
    st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=50),
    st.lists(st.one_of(st.integers(0, 100), st.text(max_size=4)), min_size=1, max_size=50),
)


@settings(max_examples=60, deadline=None)
@given(ids_strategy)
def test_factorize_round_trip(values: list[object]) -> None:
    index, codes = IdIndex.factorize(values, kind="user")
    assert len(index) == len(set(values))  # duplicates collapse
    assert codes.dtype == np.int32
    assert index.id_of(codes).tolist() == values
    assert index.index(values).tolist() == codes.tolist()


def test_sorted_ids_give_stable_indices() -> None:
    first, _ = IdIndex.factorize([30, 10, 20, 10])
    second, _ = IdIndex.factorize([20, 30, 10])
    assert first.to_list() == second.to_list() == [10, 20, 30]


def test_unknown_ids_raise_with_the_ids_named() -> None:
    index = IdIndex([1, 2, 3], kind="user")
    with pytest.raises(UnknownIdError, match="unknown users 7, 8") as info:
        index.index([1, 7, 8, 7])
    assert info.value.ids == [7, 8]
    assert isinstance(info.value, KeyError)


def test_unknown_error_lists_at_most_five() -> None:
    index = IdIndex(["a"], kind="item")
    with pytest.raises(UnknownIdError, match="and 2 more"):
        index.index(list("bcdefgh"))


def test_missing_policy_returns_minus_one() -> None:
    index = IdIndex(["x", "y"], kind="item")
    assert index.index(["y", "z", "x"], on_unknown="missing").tolist() == [1, -1, 0]


def test_coerce_turns_text_into_integer_ids() -> None:
    index = IdIndex([196, 242], kind="user")
    assert index.coerce("196") == 196
    assert index.coerce(["242", "196"]).tolist() == [242, 196]
    assert index.coerce("abc") == "abc"
    assert "196" in index and "5" not in index
    text = IdIndex(["196"], kind="user")
    assert text.coerce("196") == "196"


def test_duplicate_ids_rejected() -> None:
    with pytest.raises(ValueError, match="distinct"):
        IdIndex([1, 1])
