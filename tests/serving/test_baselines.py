"""Serving a closed-form yardstick: recommendations, /model says scores rank, predict refuses."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from embrec.data.ratings import Ratings
from embrec.models import EASEConfig, PopularConfig
from embrec.recommender import Recommender
from embrec.serving import create_app
from embrec.training.fit import fit


@pytest.fixture(params=["popular", "ease"])
def served(request: pytest.FixtureRequest, tiny: Ratings) -> Iterator[tuple[Recommender,
                                                                            TestClient]]:
    config = PopularConfig() if request.param == "popular" else EASEConfig(l2=5.0)
    rec = fit(config, tiny)
    with TestClient(create_app(rec)) as client:
        yield rec, client


def test_recommendations_match_the_recommender(served: tuple[Recommender, TestClient]) -> None:
    rec, client = served
    user = int(rec.users.ids[3])
    body = client.get(f"/users/{user}/recommendations?n=5").json()
    expected = rec.recommend(user=user, n=5)
    assert [row["item"] for row in body["items"]] == expected["item"].tolist()
    np.testing.assert_allclose([row["score"] for row in body["items"]], expected["score"],
                               rtol=1e-6)
    seen = set(rec.items.id_of(rec.seen[rec.users.index([user])[0]].indices).tolist())
    assert not seen & {row["item"] for row in body["items"]}
    if rec.model_name == "popular":  # unclipped counts, best first
        counts = [row["score"] for row in body["items"]]
        assert counts == sorted(counts, reverse=True) and max(counts) > rec.scale[1]


def test_model_says_scores_rank_and_predict_is_refused(
        served: tuple[Recommender, TestClient]) -> None:
    rec, client = served
    info = client.get("/model").json()
    assert info["model"] == rec.model_name and info["scores"] == "ranking"
    user, item = int(rec.users.ids[0]), int(rec.items.ids[0])
    answer = client.post("/predict", json={"pairs": [{"user": user, "item": item}]})
    assert answer.status_code == 422
    assert "not ratings" in answer.json()["detail"] and answer.json()["error"] == "ConfigError"


def test_fold_in_and_similar(served: tuple[Recommender, TestClient]) -> None:
    rec, client = served
    items = [int(i) for i in rec.items.ids[:3]]
    body = client.post("/recommendations", json={"ratings": {str(i): 5 for i in items},
                                                 "n": 4}).json()
    assert len(body["items"]) == 4 and not set(items) & {row["item"] for row in body["items"]}
    similar = client.get(f"/items/{items[0]}/similar?n=3")
    assert similar.status_code == (422 if rec.model_name == "popular" else 200)


def test_a_rating_model_says_rating(tiny: Ratings) -> None:
    from tests.serving.conftest import tiny_recommender

    with TestClient(create_app(tiny_recommender(tiny))) as client:
        assert client.get("/model").json()["scores"] == "rating"
