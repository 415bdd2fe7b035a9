"""Ranking objectives: what they read, what they learn, how they are seeded and recorded."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import embrec
from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models import BiasedMFConfig, GMFConfig, MLPConfig
from embrec.training.batches import Columns
from embrec.training.losses import NegativeSampler, RankingLoss, objective_for
from embrec.training.step import RatingLoss, autograd_step

RANKING = ["bpr", "softmax", "sampled-softmax", "in-batch"]


def two_tastes(seed: int = 0) -> tuple[Ratings, np.ndarray]:
    """40 users, 40 items: even users rate items 0-19, odd users items 20-39; half are seen.

    Returns the ratings and each user's group (0 or 1). Ratings are 4-5 for the
    user's own group; a few 1-2 ratings of the other group's items make them
    negatives for a threshold of 4.
    """
    rng = np.random.default_rng(seed)
    users, items, values = [], [], []
    for user in range(40):
        own = np.arange(20) + 20 * (user % 2)
        liked = rng.choice(own, 10, replace=False)
        disliked = rng.choice(np.setdiff1d(np.arange(40), own), 2, replace=False)
        users += [user] * 12
        items += [*liked, *disliked]
        values += [*rng.choice([4.0, 5.0], 10), *rng.choice([1.0, 2.0], 2)]
    ratings = Ratings.from_arrays(np.array(users), np.array(items), np.array(values))
    return ratings, np.arange(40) % 2


def in_group_share(rec: Any, groups: np.ndarray) -> float:
    """Share of each user's top-5 unseen items that belong to the user's group."""
    users = np.arange(40)
    frame = rec.recommend(users=rec.users.id_of(users), n=5)
    item_group = (frame["item"].to_numpy() >= 20).astype(int)
    return float((item_group == groups[frame["user"].to_numpy()]).mean())


@pytest.mark.parametrize("loss", RANKING)
def test_ranking_losses_learn_the_planted_tastes(loss: str) -> None:
    """Trained only on ranking, every loss recommends the user's own group (random: 50%)."""
    ratings, groups = two_tastes()
    config = TrainConfig(epochs=30, batch_size=64, learning_rate=0.05, loss=loss, negatives=8,
                         positive_threshold=4.0, seed=0)
    rec = embrec.fit(BiasedMFConfig(embedding_dim=4, init_std=0.1), ratings, config)
    assert rec.metadata["scores"] == "ranking"
    assert in_group_share(rec, groups) >= 0.9


def test_ranking_model_refuses_ratings_but_gives_scores(tiny: Ratings) -> None:
    rec = embrec.fit(BiasedMFConfig(embedding_dim=4), tiny,
                     TrainConfig(epochs=5, learning_rate=0.05, loss="bpr", seed=0))
    user, item = tiny.users.id_of(tiny.user[:3]), tiny.items.id_of(tiny.item[:3])
    with pytest.raises(ConfigError, match="kind='score'"):
        rec.predict(user, item)
    scores = rec.predict(user, item, kind="score")
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_combined_loss_keeps_rating_scores_and_accuracy(tiny: Ratings) -> None:
    """rating+bpr still predicts ratings, about as well as the rating loss alone."""
    base = TrainConfig(epochs=20, batch_size=64, learning_rate=0.02, seed=0)
    rating = embrec.fit(BiasedMFConfig(embedding_dim=4), tiny, base)
    both = embrec.fit(BiasedMFConfig(embedding_dim=4), tiny,
                      TrainConfig(**{**base.to_dict(), "loss": "rating+bpr",
                                     "ranking_weight": 0.1}))
    assert both.metadata["scores"] == "rating"
    user, item = tiny.users.id_of(tiny.user), tiny.items.id_of(tiny.item)
    errors = [np.sqrt(np.mean((r.predict(user, item) - tiny.rating) ** 2)) for r in (rating, both)]
    assert errors[1] < errors[0] * 1.2 + 0.05


def test_negatives_come_from_the_objectives_seeded_generator(tiny: Ratings) -> None:
    """The same fit seed gives the same weights; the global generator is left alone."""
    config = TrainConfig(epochs=2, batch_size=128, loss="bpr", negatives=3, seed=4)
    state = torch.random.get_rng_state()
    first = embrec.fit(BiasedMFConfig(embedding_dim=4), tiny, config)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(123)  # must not matter
    second = embrec.fit(BiasedMFConfig(embedding_dim=4), tiny, config)
    other = embrec.fit(BiasedMFConfig(embedding_dim=4), tiny, TrainConfig(
        **{**config.to_dict(), "seed": 5}))
    weights = [r.model.item_embedding.weight for r in (first, second, other)]
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)
    assert not torch.equal(weights[0], weights[2])


def test_rows_name_the_sampled_and_the_whole_catalogue_items(tiny: Ratings) -> None:
    data = Columns(torch.tensor([0, 1, 2]), torch.tensor([5, 6, 7]),
                   torch.tensor([5.0, 3.0, 4.0]))
    bpr = RankingLoss("bpr", negatives=2, positive_threshold=4.0)
    kept = bpr.prepare(data, 10, seed=0)  # a ranking-only loss trains on the positives
    users, items = bpr.rows(kept)
    assert users.tolist() == [0, 2] and items[:2].tolist() == [5, 7]
    assert len(items) == 2 + 2 * 2  # two negatives for each of the two positives
    both = RankingLoss("bpr", negatives=2, positive_threshold=4.0, rating_weight=1.0)
    assert len(both.prepare(data, 10, seed=0)) == 3  # the rating loss needs every row
    users, items = both.rows(data)
    assert users.tolist() == [0, 1, 2] and len(items) == 3 + 2 * 2
    softmax = RankingLoss("softmax")
    softmax.prepare(data, 10, seed=0)
    assert softmax.rows(data)[1].tolist() == list(range(10))
    model = BiasedMFConfig(embedding_dim=3).build(3, 10)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    out = autograd_step(model, softmax, TrainConfig())(data)
    assert out.item_index.tolist() == list(range(10))
    assert bool((out.item_grad.abs().sum(1) > 0).all())  # every item row gets a gradient


def test_sampled_softmax_corrects_by_log_q_and_masks_accidental_hits() -> None:
    """With constant scores the loss is the softmax of -log Q, the hit left out."""
    data = Columns(torch.tensor([0]), torch.tensor([1]), torch.tensor([5.0]))
    loss = RankingLoss("sampled-softmax", negatives=8, sampling="popularity")
    counts_data = Columns(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 1, 1, 2]),
                          torch.tensor([5.0] * 4))
    loss.prepare(counts_data, 3, seed=0)
    model = BiasedMFConfig(embedding_dim=2).build(1, 3, mean=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    users, items = loss.rows(data)
    drawn = items[1:]  # the sampled items follow the batch's own
    assert 1 in drawn.tolist() and len(set(drawn.tolist())) != 1  # a hit, and other items
    value, _ = loss.loss(model, model.user_embedding(users), model.item_embedding(items), data,
                         items)
    q = torch.tensor([0.25, 0.5, 0.25])
    logits = [-math.log(q[1])] + [-math.log(q[j]) for j in drawn.tolist() if j != 1]
    expected = -logits[0] + math.log(sum(math.exp(v) for v in logits))
    assert float(value.detach()) == pytest.approx(expected, rel=1e-5)


def test_popularity_sampler_follows_the_counts() -> None:
    sampler = NegativeSampler(torch.tensor([1, 3, 6]), "popularity", seed=0)
    drawn = sampler.draw(30_000)
    share = torch.bincount(drawn, minlength=3).double() / 30_000
    torch.testing.assert_close(share, torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64),
                               atol=0.01, rtol=0)
    uniform = NegativeSampler(torch.tensor([1, 3, 6]), "uniform", seed=0).draw(30_000)
    assert abs(float((uniform == 2).double().mean()) - 1 / 3) < 0.01


@pytest.mark.parametrize("model", [GMFConfig(embedding_dim=4),
                                   MLPConfig(embedding_dim=4, hidden=(8,))])
@pytest.mark.parametrize("loss", ["bpr", "rating+softmax", "in-batch"])
def test_every_neural_model_trains_on_ranking_losses(model: Any, loss: str,
                                                     tiny: Ratings) -> None:
    rec = embrec.fit(model, tiny, TrainConfig(epochs=2, batch_size=128, loss=loss, seed=0))
    assert rec.metadata["step_path"] == "autograd"
    assert all(math.isfinite(p.sum().item()) for p in rec.model.parameters())


def test_loss_settings_are_validated(tiny: Ratings) -> None:
    with pytest.raises(ConfigError, match="did you mean 'bpr'"):
        TrainConfig(loss="bpt")
    with pytest.raises(ConfigError, match="early_stopping"):
        TrainConfig(loss="softmax", early_stopping=2, validation=0.1)
    with pytest.raises(ConfigError, match="negatives"):
        TrainConfig(negatives=0)
    with pytest.raises(ConfigError, match="no positive"):
        embrec.fit(BiasedMFConfig(), tiny, TrainConfig(loss="bpr", positive_threshold=99.0))
    assert isinstance(objective_for(TrainConfig()), RatingLoss)
    assert TrainConfig.from_dict({"loss": "rating+in-batch"}).loss == "rating+in-batch"


def test_validation_ndcg_counts_relevance_at_the_run_s_positive_threshold() -> None:
    """Every rating is a 3: relevant at threshold 3 (it was read as 4, so NDCG was NaN)."""
    rng = np.random.default_rng(0)
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, 30, 600), rng.integers(0, 20, 600),
                                              strict=True)}
    frame = {"user": [u for u, _ in pairs], "item": [i for _, i in pairs],
             "rating": [3.0] * len(pairs)}
    import pandas as pd

    ratings = embrec.read_ratings(pd.DataFrame(frame))
    rec = embrec.fit(BiasedMFConfig(embedding_dim=4), ratings, TrainConfig(
        epochs=1, batch_size=64, loss="bpr", positive_threshold=3.0, validation=0.2, seed=0))
    assert math.isfinite(rec.history[0]["validation_ndcg@10"])
