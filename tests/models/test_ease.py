"""ease: the closed form against a direct numpy solve, its size refusal, save/load and fold-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models import EASEConfig
from embrec.recommender import load
from embrec.training.fit import fit


def _random_ratings(seed: int = 0, n_users: int = 30, n_items: int = 12) -> Ratings:
    rng = np.random.default_rng(seed)
    rated = rng.random((n_users, n_items)) < 0.4
    rated[:, 0] = True  # every item and user present, in index order
    rated[0, :] = True
    user, item = np.nonzero(rated)
    stars = rng.integers(1, 6, len(user)).astype(float)
    return Ratings.from_arrays(user + 1, item + 101, stars, scale=(1.0, 5.0))


def _numpy_ease(x: np.ndarray, l2: float) -> np.ndarray:
    """Steck (2019), Algorithm 1, literally: B = I - P diagMat(1 / diag(P))."""
    gram = x.T @ x + l2 * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    b = np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))
    return x @ b


@pytest.mark.parametrize("values", ["binary", "rating"])
def test_scores_equal_a_direct_numpy_solve(values: str) -> None:
    ratings = _random_ratings()
    x = np.zeros((ratings.n_users, ratings.n_items))
    x[ratings.user, ratings.item] = 1.0 if values == "binary" else ratings.rating
    expected = _numpy_ease(x, l2=7.0)
    rec = fit(EASEConfig(l2=7.0, values=values), ratings)
    users = np.repeat(rec.users.ids, rec.n_items)
    items = np.tile(rec.items.ids, rec.n_users)
    got = rec.predict(users, items, kind="score").reshape(rec.n_users, rec.n_items)
    order = np.ix_(rec.users.index(ratings.users.ids), rec.items.index(ratings.items.ids))
    np.testing.assert_allclose(got[order], expected, rtol=1e-4, atol=1e-5)
    top = rec.recommend(user=5, n=3, exclude_seen=False)  # the batched path agrees
    best = np.argsort(-expected[ratings.users.index([5])[0]], kind="stable")[:3]
    assert top["item"].tolist() == ratings.items.id_of(best).tolist()
    np.testing.assert_allclose(top["score"], np.sort(expected[4])[::-1][:3], rtol=1e-4)


def test_refuses_a_big_catalogue_before_allocating() -> None:
    with pytest.raises(ConfigError, match=(
            r"(?s)max_items=30000 is below this catalogue's 1,000,000 items: ease needs a "
            r"dense 1,000,000 x 1,000,000 item-item matrix, 3,725.3 GiB to keep.*"
            r"hint: raise max_items")):
        EASEConfig().build(10, 1_000_000)  # 4 TB: raising is the only way this test passes
    with pytest.raises(ConfigError, match="max_items=5 is below this catalogue's 12 items"):
        fit(EASEConfig(max_items=5), _random_ratings())


def test_save_load_round_trip(tmp_path: Path) -> None:
    ratings = _random_ratings(seed=1)
    rec = fit(EASEConfig(l2=3.0), ratings)
    loaded = load(rec.save(tmp_path / "ease"))
    assert loaded.scores == "ranking" and loaded.model_config == rec.model_config
    users, items = np.repeat(rec.users.ids, 4), np.tile(rec.items.ids[:4], rec.n_users)
    np.testing.assert_array_equal(loaded.predict(users, items, kind="score"),
                                  rec.predict(users, items, kind="score"))
    pd.testing.assert_frame_equal(loaded.recommend(users=[1, 2, 3], n=4),
                                  rec.recommend(users=[1, 2, 3], n=4))
    with pytest.raises(ConfigError, match="kind='rating' is not available"):
        loaded.predict(1, 101)


def test_fold_in_is_exact_for_a_training_user() -> None:
    ratings = _random_ratings(seed=2)
    rec = fit(EASEConfig(l2=3.0), ratings)
    mine = ratings.user == ratings.users.index([4])[0]
    history = dict(zip(ratings.items.id_of(ratings.item[mine]).tolist(),
                       ratings.rating[mine].tolist(), strict=True))
    folded = rec.recommend_for_ratings(history, n=5)
    known = rec.recommend(user=4, n=5)
    assert folded["item"].tolist() == known["item"].tolist()
    np.testing.assert_allclose(folded["score"], known["score"], rtol=1e-5)


def test_similar_items_come_from_the_item_weights() -> None:
    rec = fit(EASEConfig(l2=3.0), _random_ratings(seed=3))
    frame = rec.similar_items(101, n=4)
    assert len(frame) == 4 and 101 not in set(frame["item"])
    assert (np.diff(frame["similarity"]) <= 1e-7).all()
