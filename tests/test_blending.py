"""Blends: weights against SciPy's NNLS and a hand-built ranking case, the carve, save/load,
serving and the CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch

import embrec
from embrec.blending import nonnegative_weights, ranking_weights, simplex
from embrec.cli import main
from embrec.config import TrainConfig
from embrec.errors import ConfigError
from embrec.models import AutoRecConfig, BiasedMFConfig, BlendConfig, EASEConfig, PopularConfig
from embrec.recommender import load

MF = (BiasedMFConfig(embedding_dim=4), TrainConfig(epochs=3, batch_size=64, learning_rate=0.02))
AUTOREC = AutoRecConfig(hidden=8, epochs=20)


def test_rating_weights_equal_scipy_nnls_with_a_free_intercept() -> None:
    rng = np.random.default_rng(0)
    columns = rng.normal(3.5, 1.0, (200, 3))
    target = 0.6 * columns[:, 0] + 0.5 * columns[:, 1] - 0.3 * columns[:, 2] + 0.2 \
        + rng.normal(0, 0.1, 200)
    weights, intercept = nonnegative_weights(columns, target)
    # the intercept as two non-negative columns of +1 and -1: the same problem for nnls
    augmented = np.hstack([columns, np.ones((200, 1)), -np.ones((200, 1))])
    reference, _ = scipy.optimize.nnls(augmented, target)
    np.testing.assert_allclose(weights, reference[:3], atol=1e-6)
    assert intercept == pytest.approx(reference[3] - reference[4], abs=1e-6)
    assert weights[2] == 0.0 and (weights >= 0).all()


def test_simplex_grid() -> None:
    grid = simplex(3, 4)
    assert grid.shape == (15, 3) and np.allclose(grid.sum(1), 1.0) and (grid >= 0).all()
    assert simplex(1, 5).tolist() == [[1.0]]


def test_ranking_weights_pick_the_component_that_ranks_the_relevant_items() -> None:
    rng = np.random.default_rng(1)
    relevant = sp.csr_matrix(rng.random((30, 20)) < 0.2, dtype=np.float64)
    truth = torch.as_tensor(relevant.toarray() + 0.01 * rng.random((30, 20)))
    noise = torch.as_tensor(rng.normal(size=(30, 20)))
    weights, value = ranking_weights(torch.stack([noise, truth]), relevant, k=5, steps=4)
    assert weights.tolist() == [0.0, 1.0] and value == pytest.approx(1.0)


def test_rating_blend_beats_or_matches_its_parts_and_round_trips(tiny: Any,
                                                                  tmp_path: Path) -> None:
    train, test = embrec.split(tiny, test_size=0.2, seed=0)
    rec = embrec.blend([MF, AUTOREC], train, seed=3)
    report = rec.model.report
    assert len(report["weights"]) == 2 and min(report["weights"]) >= 0
    assert report["blend_validation_rmse"] <= min(report["validation_rmse"]) + 1e-9
    assert rec.scores == "rating" and rec.model_name == "blend"
    loaded = load(rec.save(tmp_path / "blend"))
    users, items = test.users.id_of(test.user), test.items.id_of(test.item)
    np.testing.assert_array_equal(loaded.predict(users, items, on_unknown="mean"),
                                  rec.predict(users, items, on_unknown="mean"))
    user = train.users.ids[0]
    assert loaded.recommend(user=user, n=5).equals(rec.recommend(user=user, n=5))
    assert len(rec.similar_items(train.items.ids[0], n=3)) == 3
    again = embrec.blend([MF, AUTOREC], train, seed=3)
    np.testing.assert_array_equal(again.predict(users, items, on_unknown="mean"),
                                  rec.predict(users, items, on_unknown="mean"))


def test_the_carve_and_refit(tiny: Any) -> None:
    rec = embrec.blend([PopularConfig(), EASEConfig(l2=5.0)], tiny, target="ranking",
                       validation=0.2, refit=False, seed=0)
    ease = rec.model.parts[1]
    assert int(ease.history_indptr[-1]) == len(tiny) - int(0.2 * len(tiny))  # fitted on 80%
    refit = embrec.blend([PopularConfig(), EASEConfig(l2=5.0)], tiny, target="ranking",
                         validation=0.2, seed=0)
    assert int(refit.model.parts[1].history_indptr[-1]) == len(tiny)
    assert refit.model.report["weights"] == rec.model.report["weights"]


def test_ranking_blend_serves_and_folds_in(tiny: Any, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    from embrec.serving import create_app

    rec = embrec.blend([EASEConfig(l2=5.0), MF], tiny, target="ranking", steps=4)
    assert rec.scores == "ranking" and sum(rec.model.report["weights"]) == pytest.approx(1.0)
    user = tiny.users.ids[0]
    with TestClient(create_app(load(rec.save(tmp_path / "ranked")))) as client:
        body = client.get(f"/users/{user}/recommendations?n=4").json()
        rated = [int(i) for i in tiny.items.ids[:3]]
        folded = client.post("/recommendations", json={"ratings": {str(i): 5.0 for i in rated},
                                                       "n": 4}).json()
    assert [row["item"] for row in body["items"]] == rec.recommend(user=user, n=4)["item"].tolist()
    assert len(folded["items"]) == 4 and not {row["item"] for row in folded["items"]} & set(rated)


def test_refusals() -> None:
    for empty in ((), None):
        with pytest.raises(ConfigError, match="must list at least one model"):
            BlendConfig(components=empty)
    with pytest.raises(ConfigError, match="did you mean 'autorec'"):
        BlendConfig(components=({"model": "autorc"},))
    with pytest.raises(ConfigError, match="cannot be a blend"):
        BlendConfig(components=({"model": "blend", "config": {"components": [{"model": "ease"}]}},))


def test_rating_blend_refuses_ranking_scores(tiny: Any) -> None:
    with pytest.raises(ConfigError, match="'ease' gives ranking scores, not ratings"):
        embrec.blend([EASEConfig(l2=5.0), MF], tiny)


def test_cli_blend_saves_a_model_folder(ratings_csv: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-blend"
    assert main(["blend", "popular", "ease", "--data", str(ratings_csv), "--target", "ranking",
                 "--no-refit", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["components"] == ["popular", "ease"] and len(summary["weights"]) == 2
    assert "ndcg@10" in summary["test"]
    assert main(["evaluate", str(out)]) == 0
