"""autorec: the masked objective by hand, predictions against a direct forward pass,
early stopping, U-AutoRec's exact fold-in and save/load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embrec.config import TrainConfig
from embrec.models import AutoRecConfig
from embrec.recommender import load
from embrec.training.autorec import masked_loss, rating_rows
from embrec.training.fit import fit


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_masked_loss_equals_a_hand_computation() -> None:
    torch.manual_seed(0)
    model = AutoRecConfig(hidden=3, l2=4.0).build(4, 2)  # I-AutoRec: 2 item rows of 4 users
    rows = torch.tensor([[5.0, 0.0, 3.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    observed = (rows > 0).float()
    v, c = model.encoder.weight.detach().numpy(), model.encoder.bias.detach().numpy()
    w, b = model.decoder.weight.detach().numpy(), model.decoder.bias.detach().numpy()
    x = rows.numpy()
    out = _sigmoid(x @ v.T + c) @ w.T + b
    error = sum((out[r, u] - x[r, u]) ** 2 for r, u in [(0, 0), (0, 2), (1, 1)])
    expected = error + 0.5 * 4.0 * 0.25 * ((v**2).sum() + (w**2).sum())
    got = masked_loss(model, rows, observed, share=0.25)
    assert float(got.detach()) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("based", ["item", "user"])
def test_predictions_are_the_decoded_training_rows(based: str, tiny: Any) -> None:
    config = AutoRecConfig(hidden=6, based=based, epochs=3)
    rec = fit(config, tiny, TrainConfig(seed=0))
    model = rec.model
    x = rating_rows(tiny, based).toarray()
    with torch.no_grad():
        out = model.reconstruct(torch.as_tensor(x)).numpy()  # (rows, columns)
    user, item = tiny.user[:50], tiny.item[:50]
    expected = out[item, user] if based == "item" else out[user, item]
    got = rec.predict(tiny.users.id_of(user), tiny.items.id_of(item), clip=False)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_early_stopping_keeps_the_best_epoch(tiny: Any) -> None:
    rec = fit(AutoRecConfig(hidden=16, l2=0.0, epochs=300, patience=3, learning_rate=0.05,
                            validation=0.2), tiny, TrainConfig(seed=1))
    history = rec.model.history
    assert len(history) < 300  # no penalty on tiny data: it overfits, and stops
    best = min(range(len(history)), key=lambda k: history[k]["validation_rmse"])
    assert len(history) - 1 - best == 3


def test_user_autorec_folds_a_user_in_by_their_code(tiny: Any, tmp_path: Path) -> None:
    rec = fit(AutoRecConfig(hidden=6, based="user", epochs=3), tiny, TrainConfig(seed=2))
    rows = tiny.user == 0
    code = rec.model.history_vector(tiny.item[rows], tiny.rating[rows])
    torch.testing.assert_close(code, rec.model.user_vectors(torch.tensor([0])))
    folded = rec.recommend_for_ratings(dict(zip(tiny.items.id_of(tiny.item[rows]),
                                                tiny.rating[rows], strict=True)), n=5)
    direct = rec.recommend(user=tiny.users.id_of(np.array([0]))[0], n=5)
    assert folded["item"].tolist() == direct["item"].tolist()
    loaded = load(rec.save(tmp_path / "u-autorec"))
    assert loaded.recommend(user=tiny.users.id_of(np.array([0]))[0], n=5).equals(direct)


def test_item_autorec_folds_a_user_in_by_ridge_on_the_codes(tiny: Any) -> None:
    rec = fit(AutoRecConfig(hidden=6, epochs=3), tiny, TrainConfig(seed=3))
    assert not hasattr(rec.model, "history_vector")
    items = tiny.items.id_of(np.arange(5))
    out = rec.recommend_for_ratings(dict(zip(items, [5.0, 4.0, 1.0, 2.0, 5.0], strict=True)),
                                    n=4)
    assert len(out) == 4 and not set(out["item"]) & set(items)
    assert rec.similar_items(items[0], n=3)["similarity"].between(-1, 1).all()
