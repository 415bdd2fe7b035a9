"""Vectorised top-N: score blocks of users against the whole catalogue and keep the best.

Every function works on contiguous indices and tensors, never raw ids. Seen items are
masked with ``-inf`` straight from the CSR arrays, and :func:`top_k` breaks ties towards
the lower item index, so the same model always gives the same lists.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from embrec.data.ids import IdIndex
from embrec.models.base import RatingModel

__all__ = ["block_size", "item_frame", "mask_seen", "score_block", "titles_by_index", "top_k",
           "top_n", "top_n_for_vector", "top_similar"]

SCORE_BUDGET = 1 << 24
"""Most scores held at once for a block of users (64 MB of float32)."""

PAIR_BUDGET = 1 << 25
"""Most expanded vector entries a generic ``score_matrix`` call may build (128 MB)."""


def _has_fast_score_matrix(model: RatingModel) -> bool:
    return type(model).score_matrix is not RatingModel.score_matrix


def block_size(model: RatingModel, n_items: int, width: int) -> int:
    """Return how many users (1 to 1024) to score per block against ``n_items`` items.

    ``width`` (user- plus item-vector width) sizes the generic ``score_matrix`` path;
    a model's own fast ``score_matrix`` allows bigger blocks.
    """
    per_user = n_items if _has_fast_score_matrix(model) else n_items * max(width, 1)
    budget = SCORE_BUDGET if _has_fast_score_matrix(model) else PAIR_BUDGET
    return max(1, min(1024, budget // max(per_user, 1)))


def score_block(model: RatingModel, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
    """Score a block of users against all items: ``(block, n_items)`` float32.

    Scores are unclipped. Models that keep the generic ``score_matrix`` (which expands
    every pair) are scored in item chunks so memory stays within :data:`PAIR_BUDGET`.
    """
    n_users, n_items = user_vectors.shape[0], item_vectors.shape[0]
    width = user_vectors.shape[1] + item_vectors.shape[1]
    chunk = n_items
    if not _has_fast_score_matrix(model):
        chunk = max(1, PAIR_BUDGET // max(n_users * width, 1))
    if chunk >= n_items:
        return model.score_matrix(user_vectors, item_vectors).float()
    out = torch.empty(n_users, n_items, device=user_vectors.device)
    for start in range(0, n_items, chunk):
        stop = min(start + chunk, n_items)
        out[:, start:stop] = model.score_matrix(user_vectors, item_vectors[start:stop])
    return out


def mask_seen(scores: Tensor, users: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> None:
    """Set ``scores[row, item]`` to ``-inf`` for every item ``users[row]`` rated, in place
    (``indptr``, ``indices``: the seen matrix's CSR arrays)."""
    starts, stops = indptr[users], indptr[users + 1]
    counts = stops - starts
    total = int(counts.sum())
    if total == 0:
        return
    rows = np.repeat(np.arange(len(users)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = indices[np.repeat(starts, counts) + offsets]
    device = scores.device
    scores[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = -torch.inf


def top_k(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Return the ``k`` best scores per row, best first, ties to the lower index.

    ``torch.topk`` alone leaves the order of equal scores unspecified; when a
    tie straddles the cut-off, the tied items with the lowest indices are kept.
    Returns ``(values, indices)``, each ``(rows, min(k, n))``.
    """
    k = min(k, scores.shape[1])
    values, indices = torch.topk(scores, k, dim=1)
    if k == 0:
        return values, indices
    cutoff = values[:, -1:]
    if bool(((scores >= cutoff).sum(dim=1) > k).any()):
        greater = scores > cutoff
        equal = scores == cutoff
        need = k - greater.sum(dim=1, keepdim=True)
        chosen = greater | (equal & (equal.cumsum(dim=1) <= need))
        indices = chosen.nonzero()[:, 1].reshape(-1, k)  # ascending within each row
    else:
        indices = indices.sort(dim=1).values
    values = scores.gather(1, indices)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, order), indices.gather(1, order)


def top_n(model: RatingModel, users: np.ndarray, item_vectors: Tensor, n: int, *,
          seen: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rank the whole catalogue (``item_vectors`` on the model's device) for each user and
    keep the ``n`` best items, leaving out the ``seen`` CSR ``(indptr, indices)``: ``(items,
    scores)``, each ``(b, min(n, n_items))``, int64 item indices padded with -1 where a user
    has fewer unseen items and float32 raw (unclipped) scores padded with NaN.
    """
    users = np.asarray(users, dtype=np.int64)
    k = min(n, item_vectors.shape[0])
    items_out = np.full((len(users), k), -1, dtype=np.int64)
    scores_out = np.full((len(users), k), np.nan, dtype=np.float32)
    size = block_size(model, item_vectors.shape[0], item_vectors.shape[1] * 2)
    device = item_vectors.device
    with torch.inference_mode():
        for start in range(0, len(users), size):
            block = slice(start, start + size)
            vectors = model.user_vectors(torch.as_tensor(users[block], device=device))
            scores = score_block(model, vectors, item_vectors)
            if seen is not None:
                mask_seen(scores, users[block], *seen)
            values, indices = top_k(scores, k)
            values_np, indices_np = values.cpu().numpy(), indices.cpu().numpy()
            keep = np.isfinite(values_np)
            items_out[block] = np.where(keep, indices_np, -1)
            scores_out[block] = np.where(keep, values_np, np.nan)
    return items_out, scores_out


def top_n_for_vector(model: RatingModel, vector: Tensor, item_vectors: Tensor, n: int, *,
                     exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rank the catalogue for one ``(1, user_dim)`` vector not in the model (a folded-in
    user): ``(items, scores)``, int64 indices and raw float32 scores, best first, but
    for the ``exclude`` items."""
    with torch.inference_mode():
        scores = score_block(model, vector.to(item_vectors.dtype), item_vectors)
        if exclude is not None:
            scores[0, torch.as_tensor(exclude, device=scores.device)] = -torch.inf
        values, indices = top_k(scores, n)
        keep = torch.isfinite(values[0])
        return indices[0][keep].cpu().numpy(), values[0][keep].float().cpu().numpy()


def top_similar(unit_factors: Tensor, item: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``n`` items (int64 indices, float32 cosines, best first) most similar to
    ``item`` among the row-normalised ``unit_factors``, itself excluded."""
    with torch.inference_mode():
        similarity = unit_factors @ unit_factors[item]  # (n_items,)
        similarity[item] = -torch.inf
        values, indices = top_k(similarity.unsqueeze(0), min(n, unit_factors.shape[0] - 1))
    return indices[0].cpu().numpy(), values[0].float().cpu().numpy()


def titles_by_index(item_info: pd.DataFrame | None, items: IdIndex) -> np.ndarray | None:
    """Return an object array of titles by item index (None where missing), or None when
    ``item_info`` (indexed by raw item id) has no titles."""
    if item_info is None or "title" not in item_info.columns:
        return None
    column = item_info["title"]
    column = column[~column.index.duplicated()].reindex(items.ids)
    titles: np.ndarray = column.to_numpy(dtype=object)
    titles[pd.isna(titles)] = None
    return titles


def item_frame(ids: np.ndarray, values: np.ndarray, column: str, titles: np.ndarray | None,
               index: np.ndarray) -> pd.DataFrame:
    """Build the result table: ``item``, ``column`` (the values) and, when ``titles`` (by
    item index) exist, ``title`` looked up by ``index``, in the given order."""
    frame = pd.DataFrame({"item": ids, column: np.asarray(values, dtype=np.float64)})
    if titles is not None:
        frame["title"] = pd.Series(titles[index], dtype=object)  # None stays None (JSON null)
    return frame
