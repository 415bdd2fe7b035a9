"""Recommender: predictions with data-bias fallbacks, top-N, similar items, on planted models.

The tiny ``DotModel`` here (dot product plus biases, optionally squashed into
the scale) has hand-set weights, so the right answers are known exactly; the
other test modules of the recommender import it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from embrec.config import TrainConfig
from embrec.data.ids import IdIndex
from embrec.errors import ConfigError, UnknownIdError
from embrec.models.base import RatingModel
from embrec.recommender import BIAS_DAMPING, Recommender


class DotModel(RatingModel):
    """``mean + <p_u, q_i> + b_u + b_i``; ``bounded`` squashes it into the scale (not affine)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 3, *, mean: float = 3.0,
                 bounded: bool = False, scale: tuple[float, float] = (1.0, 5.0)) -> None:
        super().__init__(n_users, n_items)
        self.dim, self.bounded, self.scale = dim, bounded, scale
        self.user_embedding = nn.Embedding(n_users, dim + 1)  # last column: the bias
        self.item_embedding = nn.Embedding(n_items, dim + 1)
        nn.init.normal_(self.user_embedding.weight, std=0.3)
        nn.init.normal_(self.item_embedding.weight, std=0.3)
        self.register_buffer("mean", torch.tensor(float(mean)))

    def user_vectors(self, user: Tensor) -> Tensor:
        return self.user_embedding(user)

    def item_vectors(self, item: Tensor) -> Tensor:
        return self.item_embedding(item)

    def _squash(self, raw: Tensor) -> Tensor:
        if not self.bounded:
            return raw
        low, high = self.scale
        return low + (high - low) * torch.sigmoid(raw - (low + high) / 2)

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        d = self.dim
        raw = (self.mean + (user_vectors[:, :d] * item_vectors[:, :d]).sum(1)
               + user_vectors[:, d] + item_vectors[:, d])
        return self._squash(raw)

    def item_factors(self) -> Tensor:
        return self.item_embedding.weight[:, : self.dim]


class FastDotModel(DotModel):
    """The same model with a one-matmul ``score_matrix`` (the fast path of top-N)."""

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        d = self.dim
        raw = (self.mean + user_vectors[:, :d] @ item_vectors[:, :d].T
               + user_vectors[:, d:] + item_vectors[:, d].unsqueeze(0))
        return self._squash(raw)


@dataclass(frozen=True, kw_only=True, slots=True)
class DotConfig:
    """Config of the test models; registered as ``dot-test`` where a registry is needed."""

    name: ClassVar[str] = "dot-test"
    dim: int = 3
    bounded: bool = False
    fast: bool = True

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float],
              mean: float) -> DotModel:
        cls = FastDotModel if self.fast else DotModel
        return cls(n_users, n_items, self.dim, mean=mean, bounded=self.bounded, scale=scale)

    def to_dict(self) -> dict[str, Any]:
        return {"dim": self.dim, "bounded": self.bounded, "fast": self.fast}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DotConfig:
        return cls(**data)


def make_rec(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    seen: list[tuple[int, int, float]],
    *,
    config: DotConfig | None = None,
    user_ids: Any = None,
    item_ids: Any = None,
    mean: float = 3.0,
    item_info: pd.DataFrame | None = None,
) -> Recommender:
    """A recommender around a DotModel with the given ``(n, dim + 1)`` vectors (bias last)."""
    config = config or DotConfig(dim=user_vectors.shape[1] - 1)
    n_users, n_items = len(user_vectors), len(item_vectors)
    model = config.build(n_users, n_items, scale=(1.0, 5.0), mean=mean)
    with torch.no_grad():
        model.user_embedding.weight.copy_(torch.as_tensor(user_vectors, dtype=torch.float32))
        model.item_embedding.weight.copy_(torch.as_tensor(item_vectors, dtype=torch.float32))
    model.eval()
    rows, cols, values = (np.array(c) for c in zip(*seen, strict=True)) if seen else ([], [], [])
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(n_users, n_items))
    users = IdIndex(np.arange(1, n_users + 1) if user_ids is None else user_ids, kind="user")
    items = IdIndex(np.arange(1, n_items + 1) if item_ids is None else item_ids, kind="item")
    return Recommender(model, config, TrainConfig(), users, items, (1.0, 5.0), mean, matrix,
                       item_info=item_info)


def random_rec(n_users: int = 12, n_items: int = 30, *, dim: int = 3, seed: int = 0,
               density: float = 0.3, **kwargs: Any) -> Recommender:
    rng = np.random.default_rng(seed)
    cells = [(u, i, float(rng.integers(1, 6))) for u in range(n_users) for i in range(n_items)
             if rng.random() < density]
    return make_rec(rng.normal(0, 0.7, (n_users, dim + 1)), rng.normal(0, 0.7, (n_items, dim + 1)),
                    cells, **kwargs)


def brute_force(rec: Recommender, user: int, exclude_seen: bool = True) -> list[int]:
    """Item indices ranked by predicted score (ties to the lower index), from predict_indices."""
    scores = rec.predict_indices(np.full(rec.n_items, user), np.arange(rec.n_items), clip=False)
    order = np.lexsort((np.arange(rec.n_items), -scores.astype(np.float64)))
    seen = set(rec.seen[user].indices.tolist()) if exclude_seen else set()
    return [int(i) for i in order if int(i) not in seen]


# ----------------------------------------------------------------------------- tests
def test_planted_favourite_first_and_seen_items_excluded() -> None:
    items = np.zeros((6, 3))
    items[:, 0] = [0.1, 0.2, 0.3, 1.5, 0.4, 2.0]  # item 6 (index 5) is best, item 4 next
    users = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    rec = make_rec(users, items, [(0, 5, 5.0), (0, 0, 2.0)])
    top = rec.recommend(user=1, n=3)
    assert list(top.columns) == ["item", "score"]
    assert top["item"].tolist() == [4, 5, 3]
    assert 6 not in top["item"].tolist() and 1 not in top["item"].tolist()
    assert rec.recommend(user=2, n=1)["item"].tolist() == [6]
    assert rec.recommend(user=1, n=1, exclude_seen=False)["item"].tolist() == [6]


@pytest.mark.parametrize("fast", [True, False])
def test_recommend_matches_brute_force_ranking(fast: bool) -> None:
    rec = random_rec(config=DotConfig(fast=fast))
    for user in range(rec.n_users):
        frame = rec.recommend(user=user + 1, n=7)
        expected = brute_force(rec, user)[:7]
        assert rec.items.index(frame["item"].to_numpy()).tolist() == expected
        assert frame["score"].is_monotonic_decreasing


def test_batch_equals_single() -> None:
    rec = random_rec(seed=1)
    ids = [3, 1, 7, 3]
    batch = rec.recommend(users=ids, n=5)
    assert list(batch.columns) == ["user", "rank", "item", "score"]
    for user in ids:
        rows = batch[batch["user"] == user].drop_duplicates(["rank"])
        single = rec.recommend(user=user, n=5)
        assert rows["rank"].tolist() == [1, 2, 3, 4, 5]
        assert rows["item"].tolist() == single["item"].tolist()
        np.testing.assert_allclose(rows["score"], single["score"], rtol=1e-6)


def test_n_larger_than_catalogue_gives_every_unseen_item() -> None:
    rec = random_rec(n_items=9, seed=2)
    for user in range(rec.n_users):
        unseen = rec.n_items - rec.seen[user].nnz
        assert len(rec.recommend(user=user + 1, n=100)) == unseen
        assert len(rec.recommend(user=user + 1, n=100, exclude_seen=False)) == rec.n_items
    batch = rec.recommend(users=[1, 2], n=100)
    assert len(batch) == 2 * rec.n_items - rec.seen[0].nnz - rec.seen[1].nnz


def test_user_who_has_seen_everything_gets_nothing() -> None:
    rec = make_rec(np.ones((2, 2)), np.ones((3, 2)), [(0, i, 4.0) for i in range(3)])
    assert rec.recommend(user=1).empty
    batch = rec.recommend(users=[1, 2], n=2)
    assert batch["user"].tolist() == [2, 2] and batch["rank"].tolist() == [1, 2]


@pytest.mark.parametrize("fast", [True, False])
def test_ties_go_to_the_lower_index_deterministically(fast: bool) -> None:
    items = np.tile([0.5, 0.0, 0.0], (10, 1))
    items[[2, 6], 0] = 0.9  # two tied favourites, then eight tied items
    rec = make_rec(np.array([[1.0, 0.0, 0.0]]), items, [(0, 0, 3.0)],
                   config=DotConfig(dim=2, fast=fast))
    first = rec.recommend(user=1, n=5)["item"].tolist()
    assert first == [3, 7, 2, 4, 5]
    assert all(rec.recommend(user=1, n=5)["item"].tolist() == first for _ in range(3))
    assert rec.recommend(users=[1], n=5)["item"].tolist() == first


def test_scores_are_clipped_to_the_scale_but_ranked_by_raw_score() -> None:
    items = np.array([[5.0, 0.0], [9.0, 0.0], [-9.0, 0.0]])
    rec = make_rec(np.array([[1.0, 0.0]]), items, [])
    frame = rec.recommend(user=1, n=3)
    assert frame["item"].tolist() == [2, 1, 3]
    assert frame["score"].tolist() == [5.0, 5.0, 1.0]


def test_unknown_and_textual_user_ids() -> None:
    rec = random_rec()
    with pytest.raises(UnknownIdError, match="unknown user 999"):
        rec.recommend(user=999)
    with pytest.raises(UnknownIdError, match="unknown users 998, 999"):
        rec.recommend(users=[1, 998, 999])
    assert rec.recommend(user="3").equals(rec.recommend(user=3))


@pytest.mark.parametrize("kwargs", [{}, {"user": 1, "users": [1]}, {"user": [1, 2]},
                                    {"user": 1, "n": 0}, {"user": 1, "n": 2.5}])
def test_bad_recommend_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        random_rec().recommend(**kwargs)


def test_titles_are_added_when_item_info_has_them() -> None:
    info = pd.DataFrame({"title": ["A", "B", "C"], "genres": ["x", "y", "z"]}, index=[10, 20, 30])
    rec = make_rec(np.ones((1, 2)), np.array([[1.0, 0], [3.0, 0], [2.0, 0], [0.5, 0]]), [],
                   item_ids=[10, 20, 30, 40], item_info=info)
    frame = rec.recommend(user=1, n=4)
    assert frame.columns.tolist() == ["item", "score", "title"]
    assert frame["title"].tolist() == ["B", "C", "A", None]
    assert rec.similar_items(10, n=1).columns.tolist() == ["item", "similarity", "title"]


def test_similar_items_come_from_the_planted_cluster() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 2
    factors = np.repeat(centres, 5, axis=0) + rng.normal(0, 0.1, (15, 3))
    items = np.hstack([factors, rng.normal(0, 1, (15, 1))])  # biases do not matter
    rec = make_rec(np.ones((2, 4)), items, [], item_ids=[f"i{k}" for k in range(15)])
    for item in (0, 6, 13):
        frame = rec.similar_items(f"i{item}", n=4)
        cluster = {f"i{k}" for k in range(item // 5 * 5, item // 5 * 5 + 5)} - {f"i{item}"}
        assert set(frame["item"]) == cluster
        assert frame["similarity"].is_monotonic_decreasing and frame["similarity"].max() <= 1
    assert len(rec.similar_items("i0", n=100)) == 14
    with pytest.raises(UnknownIdError):
        rec.similar_items("nope")


def test_predict_fallbacks_use_damped_data_means() -> None:
    seen = [(0, 0, 5.0), (0, 1, 4.0), (1, 0, 1.0)]
    rec = make_rec(np.zeros((2, 2)), np.zeros((3, 2)), seen, mean=10 / 3)
    g, d = 10 / 3, BIAS_DAMPING
    user0 = (9.0 + d * g) / (2 + d)
    item0 = (6.0 + d * g) / (2 + d)
    out = rec.predict([1, 99, 99, 1], [99, 1, 99, 3], on_unknown="mean")
    np.testing.assert_allclose(out, [user0, item0, g, 10 / 3], rtol=1e-6)
    assert np.isnan(rec.predict(99, 1, on_unknown="nan"))
    with pytest.raises(UnknownIdError):
        rec.predict(99, 1)
    assert isinstance(rec.predict(1, 1), float)
    with pytest.raises(ConfigError, match="did you mean 'mean'"):
        rec.predict(1, 1, on_unknown="meen")  # type: ignore[arg-type]


def test_properties() -> None:
    rec = random_rec(n_users=4, n_items=6)
    assert (rec.n_users, rec.n_items, rec.model_name) == (4, 6, "dot-test")


def test_recommend_is_vectorised_over_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from embrec import topn

    rec = random_rec(n_users=20, seed=4)
    expected = rec.recommend(users=list(range(1, 21)), n=4)
    monkeypatch.setattr(topn, "SCORE_BUDGET", 60)  # two users per block
    monkeypatch.setattr(topn, "PAIR_BUDGET", 60)
    pd.testing.assert_frame_equal(rec.recommend(users=list(range(1, 21)), n=4), expected)


# ----------------------------------------------------------------------------- every model
def _registry() -> dict[str, Any]:
    import embrec.models

    return dict(getattr(embrec.models, "MODELS", {}))


NEEDS = {"blend": {"components": ({"model": "biased-mf", "config": {"embedding_dim": 4}},
                                  {"model": "autorec", "config": {"hidden": 4}})}}
"""The settings a model cannot do without (a blend's components)."""


def model_rec(name: str, n_users: int = 15, n_items: int = 25, seed: int = 0) -> Recommender:
    """A recommender around registry model ``name`` with random, spread-out weights."""
    torch.manual_seed(seed)
    config = _registry()[name](**NEEDS.get(name, {}))
    model = config.build(n_users, n_items, scale=(1.0, 5.0), mean=3.0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    model.eval()
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.3
    seen = sp.csr_matrix(np.where(dense, rng.integers(1, 6, dense.shape), 0).astype(np.float32))
    users = IdIndex(np.arange(1, n_users + 1), kind="user")
    items = IdIndex(np.arange(1, n_items + 1), kind="item")
    return Recommender(model, config, TrainConfig(), users, items, (1.0, 5.0), 3.0, seen)


@pytest.mark.parametrize("name", sorted(_registry()))
def test_every_model_recommends_its_best_unseen_items(name: str) -> None:
    rec = model_rec(name)
    batch = rec.recommend(users=list(range(1, rec.n_users + 1)), n=5)
    for user in range(rec.n_users):
        rows = batch[batch["user"] == user + 1]
        raw = rec.predict_indices(np.full(rec.n_items, user), np.arange(rec.n_items), clip=False)
        unseen = np.setdiff1d(np.arange(rec.n_items), rec.seen[user].indices)
        best = np.sort(raw[unseen])[::-1][:5]
        picked = raw[rec.items.index(rows["item"].to_numpy())]
        np.testing.assert_allclose(picked, best, rtol=1e-5, atol=1e-5)
        shown = np.clip(best, 1, 5) if rec.scores == "rating" else best  # ratings are clipped
        np.testing.assert_allclose(rows["score"], shown, rtol=1e-5, atol=1e-5)
        assert not set(rec.items.index(rows["item"].to_numpy())) & set(rec.seen[user].indices)
    if name == "popular":  # one number per item: no similarity to offer
        with pytest.raises(ConfigError, match="has no item similarity"):
            rec.similar_items(3, n=5)
        return
    similar = rec.similar_items(3, n=5)
    assert len(similar) == 5 and 3 not in set(similar["item"])


@pytest.mark.parametrize("name", sorted(_registry()))
def test_every_model_folds_a_user_in(name: str) -> None:
    from embrec.foldin import fold_in, user_prior

    rec = model_rec(name)
    rated = np.arange(0, rec.n_items, 2)
    with torch.no_grad():
        target = rec.model(torch.full((len(rated),), 4), torch.as_tensor(rated))
        vectors = rec.model.item_vectors(torch.as_tensor(rated))
    prior = user_prior(rec.model)
    fitted = fold_in(rec.model, vectors, target, prior, regularization=1e-3)
    with torch.no_grad():
        def error(vector: Tensor) -> float:
            scores = rec.model.score(vector.float().expand(len(rated), -1), vectors)
            return float(((scores - target) ** 2).mean())

        assert error(fitted) < 0.5 * error(prior[0]) + 1e-6
    ratings = dict(zip(rec.items.id_of(rated).tolist(), target.tolist(), strict=True))
    frame = rec.recommend_for_ratings(ratings, n=5)
    assert len(frame) == 5 and not set(frame["item"]) & set(ratings)
