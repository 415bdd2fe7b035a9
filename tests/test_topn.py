"""Top-N helpers: deterministic top-k against a sort oracle, seen masking, chunked scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from embrec import topn
from embrec.topn import mask_seen, score_block, top_k, top_n, top_similar
from tests.test_recommender import DotModel, FastDotModel


def _oracle(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row: indices sorted by score descending, then index ascending; first k."""
    return np.stack([np.lexsort((np.arange(len(row)), -row))[:k] for row in scores])


@settings(max_examples=60, deadline=None)
@given(
    scores=arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 12)),
                  elements=st.sampled_from([-np.inf, 0.0, 1.0, 2.0, 2.5])),
    k=st.integers(1, 14),
)
def test_top_k_matches_a_stable_sort(scores: np.ndarray, k: int) -> None:
    values, indices = top_k(torch.as_tensor(scores), k)
    expected = _oracle(scores, min(k, scores.shape[1]))
    np.testing.assert_array_equal(indices.numpy(), expected)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(scores, expected, 1))


def test_top_k_on_random_scores_without_ties() -> None:
    scores = torch.randn(5, 1000, generator=torch.Generator().manual_seed(0))
    values, indices = top_k(scores, 10)
    np.testing.assert_array_equal(indices.numpy(), _oracle(scores.numpy(), 10))
    assert torch.equal(values, torch.topk(scores, 10).values)


def test_mask_seen_matches_the_dense_matrix() -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    dense = rng.random((8, 11)) < 0.3
    csr = sp.csr_matrix(dense.astype(np.float32))
    users = np.array([5, 0, 7, 5])
    scores = torch.zeros(4, 11)
    mask_seen(scores, users, csr.indptr, csr.indices)
    np.testing.assert_array_equal(torch.isinf(scores).numpy(), dense[users])


def test_chunked_generic_scoring_equals_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    model = DotModel(3, 50, dim=4, bounded=True).eval()
    with torch.no_grad():
        users, items = model.user_vectors(torch.arange(3)), model.item_vectors(torch.arange(50))
        full = model.score_matrix(users, items)
        monkeypatch.setattr(topn, "PAIR_BUDGET", 3 * 10 * 7)  # chunks of 7 items
        chunked = score_block(model, users, items)
    torch.testing.assert_close(chunked, full)


def test_top_n_pads_users_with_too_few_unseen_items() -> None:
    import scipy.sparse as sp

    model = FastDotModel(2, 4, dim=2).eval()
    seen = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 0]], dtype=np.float32))
    with torch.no_grad():
        vectors = model.item_vectors(torch.arange(4))
    items, scores = top_n(model, np.array([0, 1]), vectors, 3, seen=(seen.indptr, seen.indices))
    assert items[0].tolist() == [3, -1, -1] and np.isnan(scores[0, 1:]).all()
    assert sorted(items[1].tolist()) != [-1, -1, -1] and (items[1] >= 0).all()


def test_top_similar_excludes_the_item_and_ranks_by_cosine() -> None:
    factors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    unit = factors / factors.norm(dim=1, keepdim=True)
    items, similarity = top_similar(unit, 0, 10)
    assert items.tolist() == [1, 2, 3]
    np.testing.assert_allclose(similarity, [0.9 / np.hypot(0.9, 0.1), 0.0, -1.0], atol=1e-6)
