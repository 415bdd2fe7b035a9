"""Serving a model trained on a ranking loss: /model says its scores rank; ratings are refused."""

from __future__ import annotations

from pathlib import Path

import embrec
from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.models import BiasedMFConfig
from embrec.serving import create_app
from tests.serving.conftest import TestClient


def test_a_ranking_loss_model_serves_rankings_and_refuses_ratings(tiny: Ratings,
                                                                  tmp_path: Path) -> None:
    rec = embrec.fit(BiasedMFConfig(embedding_dim=4), tiny,
                     TrainConfig(epochs=5, learning_rate=0.05, loss="sampled-softmax",
                                 negatives=16, seed=0))
    rec = embrec.load(rec.save(tmp_path / "ranking"))  # what it says survives a save
    assert rec.scores == "ranking"
    user, item = int(rec.users.ids[0]), int(rec.items.ids[0])
    with TestClient(create_app(rec)) as client:
        assert client.get("/model").json()["scores"] == "ranking"
        top = client.get(f"/users/{user}/recommendations?n=5").json()["items"]
        scores = [row["score"] for row in top]
        assert len(top) == 5 and scores == sorted(scores, reverse=True)
        answer = client.post("/predict", json={"pairs": [{"user": user, "item": item}]})
        assert answer.status_code == 422 and answer.json()["error"] == "ConfigError"
