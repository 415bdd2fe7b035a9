"""Fold-in: a new user's vector is recovered from their ratings with the items frozen."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embrec.errors import ConfigError, DataError, UnknownIdError
from embrec.foldin import _affine_map, fold_in, rated_items, user_prior
from embrec.recommender import Recommender
from tests.test_recommender import DotConfig, make_rec, random_rec

TRUE_USER = np.array([0.8, -0.6, 0.4, 0.3])  # three factors, then the bias


def _planted(bounded: bool, fast: bool = True) -> Recommender:
    rng = np.random.default_rng(0)
    items = rng.normal(0, 0.8, (40, 4))
    users = rng.normal(0, 0.8, (30, 4))
    return make_rec(users, items, [], config=DotConfig(bounded=bounded, fast=fast))


def _true_ratings(rec: Recommender, rated: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        user = torch.as_tensor(TRUE_USER, dtype=torch.float32).expand(len(rated), -1)
        return rec.model.score(user, rec.model.item_vectors(torch.as_tensor(rated)))


@pytest.mark.parametrize("bounded", [False, True])
def test_fold_in_recovers_a_known_user_vector(bounded: bool) -> None:
    rec = _planted(bounded)
    rated = np.arange(0, 40, 2)
    ratings = _true_ratings(rec, rated)
    with torch.no_grad():
        item_vectors = rec.model.item_vectors(torch.as_tensor(rated))
    vector = fold_in(rec.model, item_vectors, ratings, user_prior(rec.model),
                     regularization=1e-6, steps=200)
    assert vector.shape == (1, 4)
    np.testing.assert_allclose(vector[0].numpy(), TRUE_USER, atol=2e-3 if bounded else 1e-4)


def test_affinity_is_measured_not_assumed() -> None:
    generator = torch.Generator().manual_seed(0)
    for bounded, affine in ((False, True), (True, False)):
        model = _planted(bounded).model
        with torch.no_grad():
            vectors = model.item_vectors(torch.arange(10))
            found = _affine_map(model, vectors, user_prior(model), generator)
        assert (found is not None) == affine


def test_regularization_pulls_towards_the_mean_user() -> None:
    rec = _planted(False)
    prior = user_prior(rec.model)
    with torch.no_grad():
        vectors = rec.model.item_vectors(torch.tensor([0]))
    loose = fold_in(rec.model, vectors, torch.tensor([5.0]), prior, regularization=1e-3)
    tight = fold_in(rec.model, vectors, torch.tensor([5.0]), prior, regularization=1e3)
    mean = prior[0].float()
    assert (tight - mean).norm() < 0.05 * (loose - mean).norm()
    empty = fold_in(rec.model, vectors[:0], torch.tensor([]), prior)
    torch.testing.assert_close(empty, mean)


@pytest.mark.parametrize("bounded", [False, True])
def test_recommend_for_ratings_ranks_like_the_user_it_mimics(bounded: bool) -> None:
    rec = _planted(bounded, fast=False)
    rated = np.arange(0, 40, 2)
    ratings = dict(zip(rec.items.id_of(rated).tolist(),
                       _true_ratings(rec, rated).tolist(), strict=True))
    frame = rec.recommend_for_ratings(ratings, n=5)
    with torch.no_grad():
        truth = _true_ratings(rec, np.arange(40)).numpy()
    truth[rated] = -np.inf
    assert rec.items.index(frame["item"].to_numpy()).tolist() == np.argsort(-truth)[:5].tolist()
    assert not set(frame["item"]) & set(ratings)
    assert frame["score"].between(1, 5).all()
    assert len(rec.recommend_for_ratings(ratings, n=40, exclude_seen=False)) == 40


def test_fold_in_leaves_the_model_untouched() -> None:
    rec = _planted(True)
    before = {k: v.clone() for k, v in rec.model.state_dict().items()}
    rec.recommend_for_ratings({1: 5.0, 2: 1.0, 3: 4.0})
    for key, value in rec.model.state_dict().items():
        assert torch.equal(value, before[key])
    assert all(p.grad is None for p in rec.model.parameters())


def test_unknown_items_and_bad_ratings() -> None:
    rec = random_rec()
    with pytest.raises(UnknownIdError, match="(?s)unknown item 999.*on_unknown='ignore'"):
        rec.recommend_for_ratings({1: 4.0, 999: 5.0})
    kept = rec.recommend_for_ratings({1: 4.0, 999: 5.0}, on_unknown="ignore", n=50)
    assert 1 not in set(kept["item"]) and len(kept) == rec.n_items - 1
    only_unknown = rec.recommend_for_ratings({999: 5.0}, on_unknown="ignore", n=3)
    assert len(only_unknown) == 3  # the mean user's recommendations
    with pytest.raises(DataError, match="rating of item 1 is not a finite number"):
        rec.recommend_for_ratings({1: float("nan")})
    with pytest.raises(DataError, match="'five'"):
        rec.recommend_for_ratings({1: "five"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        rec.recommend_for_ratings({1: 4.0}, on_unknown="skip")  # type: ignore[arg-type]


def test_rated_items_coerces_textual_ids() -> None:
    rec = random_rec()
    index, values = rated_items(rec.items, {"3": 4, "5": 2.5})
    assert index.tolist() == [2, 4] and values.tolist() == [4.0, 2.5]
