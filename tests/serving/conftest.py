"""Fixtures for the HTTP tests: a tiny real Recommender and a TestClient around it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns (an error here) on plain httpx.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.models import BiasedMFConfig
from embrec.recommender import Recommender
from embrec.serving import create_app
from embrec.training.fit import fit


def tiny_recommender(ratings: Ratings) -> Recommender:
    """A biased-MF model trained for two epochs on ``ratings``, with a title for every item."""
    rec = fit(BiasedMFConfig(embedding_dim=4), ratings, TrainConfig(epochs=2, seed=0),
              metadata={"metrics": {"test": {"rmse": 0.9}}})
    ids = rec.items.ids
    rec.item_info = pd.DataFrame({"title": [f"Movie {i}" for i in ids]}, index=ids)
    return rec


@pytest.fixture()
def rec(tiny: Ratings) -> Recommender:
    return tiny_recommender(tiny)


@pytest.fixture()
def client(rec: Recommender) -> Iterator[TestClient]:
    with TestClient(create_app(rec, max_n=50, max_batch=100)) as test_client:
        yield test_client
