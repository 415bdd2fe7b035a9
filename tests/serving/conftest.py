"""Fixtures for the HTTP tests: a small in-memory recommender and a TestClient around it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns (an error here) on plain httpx.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from embrec.data.ids import IdIndex
from embrec.errors import UnknownIdError
from embrec.serving import create_app


class FakeRecommender:
    """Stand-in with the Recommender API: score(u, i) = u + i / 100; user u saw item 10 + u."""

    model_name = "fake"

    def __init__(self) -> None:
        self.users = IdIndex(np.arange(1, 6), kind="user")
        self.items = IdIndex(np.arange(10, 20), kind="item")
        self.n_users, self.n_items = 5, 10
        self.metadata: dict[str, Any] = {"data": "synthetic", "fingerprint": "abc",
                                         "metrics": {"test": {"rmse": 0.9}}}
        self.model_config = SimpleNamespace(to_dict=lambda: {"embedding_dim": 2})
        self.titles = {i: f"Item {i}" for i in range(10, 20)}

    def predict(self, user: Any, item: Any, *, on_unknown: str = "error", clip: bool = True) -> Any:
        policy = "error" if on_unknown == "error" else "missing"
        u = self.users.index(self.users.coerce(user), on_unknown=policy)
        i = self.items.index(self.items.coerce(item), on_unknown=policy)
        out = (self.users.id_of(np.maximum(u, 0)) + self.items.id_of(np.maximum(i, 0)) / 100)
        out = out.astype(np.float32)
        out[(u < 0) | (i < 0)] = np.nan if on_unknown == "nan" else 3.0
        return float(out[0]) if np.ndim(user) == 0 else out

    def _frame(self, items: np.ndarray, values: np.ndarray, column: str) -> pd.DataFrame:
        return pd.DataFrame({"item": items, column: values,
                             "title": [self.titles[i] for i in items]})

    def recommend(self, user: Any = None, *, users: Any = None, n: int = 10,
                  exclude_seen: bool = True) -> pd.DataFrame:
        self.users.index(user)
        items = self.items.ids[::-1]
        if exclude_seen:
            items = items[items != 10 + user]
        items = items[:n]
        return self._frame(items, self.predict(np.full(len(items), user), items), "score")

    def similar_items(self, item: Any, *, n: int = 10) -> pd.DataFrame:
        self.items.index(item)
        others = self.items.ids[self.items.ids != item][:n]
        return self._frame(others, 1.0 - np.abs(others - item) / 10, "similarity")

    def recommend_for_ratings(self, ratings: Mapping[Any, float], *, n: int = 10,
                              exclude_seen: bool = True, on_unknown: str = "error") -> pd.DataFrame:
        known = self.items.index(list(ratings), on_unknown="missing") >= 0
        if on_unknown == "error" and not known.all():
            missing = [k for k, ok in zip(ratings, known, strict=True) if not ok]
            raise UnknownIdError("item", missing)
        items = self.items.ids[::-1]
        if exclude_seen:
            items = items[~np.isin(items, list(ratings))]
        items = items[:n]
        return self._frame(items, items / 10.0, "score")


@pytest.fixture()
def rec() -> FakeRecommender:
    return FakeRecommender()


@pytest.fixture()
def client(rec: FakeRecommender) -> Iterator[TestClient]:
    with TestClient(create_app(rec, max_n=50, max_batch=100)) as test_client:  # type: ignore[arg-type]
        yield test_client
