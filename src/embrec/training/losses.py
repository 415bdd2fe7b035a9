"""Training objectives: the :class:`Objective` protocol, the rating MSE and the ranking losses.

A model trained to regress star values ranks obscure items with a few high
ratings first; top-N lists need a loss that compares items for a user. Every
objective is written with the model's ``score``/``score_matrix`` only, so autograd
differentiates it for any embedding model and the engine updates exactly the rows
:meth:`Objective.rows` names. The ranking losses:

- ``bpr`` (Rendle et al. 2009): ``-log sigmoid(s(u, i) - s(u, j))`` for each
  positive ``(u, i)`` and ``negatives`` sampled items ``j``.
- ``softmax``: cross-entropy of the positive among *every* item (``score_matrix``
  against the whole catalogue, so every item row gets a gradient each step: for
  small catalogues).
- ``sampled-softmax``: the positive against ``negatives`` items shared by the
  batch, each logit corrected by ``-log Q(item)``, the item's sampling
  probability (Bengio and Senécal 2008; Yi et al. 2019), accidental hits masked.
- ``in-batch``: the positive against the batch's other positives (sampled in
  proportion to popularity, so corrected by log-popularity), duplicates masked.

Explicit ratings are used as follows: positives are the ratings at or above
``positive_threshold`` (every rated item when ``None``), optionally weighted by
``rating / max rating``. ``rating+<loss>`` adds ``ranking_weight`` times the
ranking loss (on the positives) to the rating MSE (on every rating), for a
model whose scores stay ratings. Negative sampling draws from a generator the
objective owns, seeded by :meth:`RankingLoss.prepare` from ``fit``'s seed.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from embrec.config import NEGATIVE_SAMPLINGS, RANKING_LOSSES, TrainConfig, require, require_choice
from embrec.models.base import EmbeddingModel
from embrec.training.batches import Columns

__all__ = ["NegativeSampler", "Objective", "RankingLoss", "RatingLoss", "objective_for"]

Scores = Literal["rating", "ranking"]


class Objective(Protocol):
    """A training loss, written against the model's ``score`` only (autograd differentiates it).

    ``fit`` calls :meth:`prepare` once with the training rows, records :attr:`scores` as
    ``metadata["scores"]`` and checkpoints :attr:`generator`; every step calls :meth:`rows`,
    gathers those embedding rows and calls :meth:`loss` on them.

    Attributes:
        scores: what the trained model's scores mean, ``"rating"`` or ``"ranking"``.
    """

    scores: Scores

    @property
    def generator(self) -> torch.Generator | None:
        """The objective's own generator once prepared (checkpoints save it); ``None`` if it
        draws nothing. Under ``torchrun`` only objectives without one train."""
        ...

    def prepare(self, data: Columns, n_items: int, seed: int) -> Columns:
        """Bind to the training rows (``seed`` is ``fit``'s); return the rows to train on."""
        ...

    def rows(self, batch: Columns) -> tuple[Tensor, Tensor]:
        """Return the user and item indices whose embedding rows the loss reads."""
        ...

    def loss(self, model: EmbeddingModel, users: Tensor, items: Tensor, batch: Columns,
             item_index: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(scalar loss, (batch,) predictions)``; ``users`` and ``items`` are the rows
        :meth:`rows` named, ``item_index`` the item indices it returned."""
        ...


class RatingLoss:
    """Mean squared error between predicted and given ratings (the rating objective)."""

    scores: Scores = "rating"
    generator: torch.Generator | None = None

    def prepare(self, data: Columns, n_items: int, seed: int) -> Columns:
        """Every training row, unchanged."""
        return data

    def rows(self, batch: Columns) -> tuple[Tensor, Tensor]:
        """One user row and one item row per rating."""
        return batch.user, batch.item

    def loss(self, model: EmbeddingModel, users: Tensor, items: Tensor, batch: Columns,
             item_index: Tensor) -> tuple[Tensor, Tensor]:
        """``mean((score - rating)²)`` and the scores."""
        prediction = model.score(users, items)
        return F.mse_loss(prediction, batch.rating), prediction


SEED_OFFSET = 0x5EED
"""Added to ``fit``'s seed for the sampler's generator, so its stream differs from shuffling's."""


class NegativeSampler:
    """Draws item indices uniformly or in proportion to popularity, from its own generator.

    ``counts``: ``(n_items,)`` how often each item is a positive in training; ``mode``:
    ``uniform`` or ``popularity``; ``seed`` seeds the generator.
    """

    def __init__(self, counts: Tensor, mode: str, seed: int) -> None:
        self.n_items = int(counts.shape[0])
        self.mode = mode
        self.generator = torch.Generator(device=counts.device).manual_seed(seed)
        frequency = counts.double().clamp_min(1.0)  # an item never positive still has Q > 0
        frequency /= frequency.sum()
        self.cdf = frequency.cumsum(0)
        self.popularity_log = frequency.log().float()
        """``(n_items,)`` log of each item's share of the positives."""
        if mode == "uniform":
            self.log_q = torch.full_like(self.popularity_log, -math.log(self.n_items))
        else:
            self.log_q = self.popularity_log
        """``(n_items,)`` log of each item's probability of being drawn."""

    def draw(self, count: int) -> Tensor:
        """Return ``(count,)`` int64 item indices."""
        device = self.cdf.device
        if self.mode == "uniform":
            return torch.randint(0, self.n_items, (count,), generator=self.generator,
                                 device=device)
        uniform = torch.rand(count, generator=self.generator, device=device, dtype=torch.float64)
        return torch.searchsorted(self.cdf, uniform, right=True).clamp_max_(self.n_items - 1)


class RankingLoss:
    """A ranking objective, optionally added to the rating MSE (see the module docstring).

    Args:
        kind: ``bpr``, ``softmax``, ``sampled-softmax`` or ``in-batch``.
        negatives: sampled items per positive (``bpr``) or per batch (``sampled-softmax``).
        sampling: ``uniform`` or ``popularity`` (in proportion to training positives).
        positive_threshold: ratings at or above it are positives; ``None``: every rating.
        rating_weighted: weight each positive by ``rating / max rating``.
        rating_weight: weight of the rating MSE (0: a ranking-only model).
        ranking_weight: weight of the ranking loss.

    Attributes:
        scores: ``"rating"`` when the rating MSE is part of the loss, else ``"ranking"``.
    """

    def __init__(self, kind: str, *, negatives: int = 1, sampling: str = "uniform",
                 positive_threshold: float | None = None, rating_weighted: bool = False,
                 rating_weight: float = 0.0, ranking_weight: float = 1.0) -> None:
        require_choice("loss", kind, RANKING_LOSSES)
        require_choice("negative_sampling", sampling, NEGATIVE_SAMPLINGS)
        require(negatives >= 1, "negatives", negatives, "must be at least 1")
        require(rating_weight >= 0 and ranking_weight > 0, "ranking_weight",
                (rating_weight, ranking_weight), "weights must be >= 0 (ranking > 0)")
        self.kind, self.negatives, self.sampling = kind, negatives, sampling
        self.threshold, self.weighted = positive_threshold, rating_weighted
        self.rating_weight, self.ranking_weight = rating_weight, ranking_weight
        self.scores: Scores = "rating" if rating_weight > 0 else "ranking"
        self._sampler: NegativeSampler | None = None
        self._top = 1.0

    @property
    def generator(self) -> torch.Generator | None:
        """The negative sampler's generator once bound (checkpoints save and restore it)."""
        return None if self._sampler is None else self._sampler.generator

    def prepare(self, data: Columns, n_items: int, seed: int) -> Columns:
        """Count the positives' items, seed the sampler from ``seed``; return the rows to train
        on: the positives for a ranking-only loss, else ``data``.

        Raises:
            ConfigError: if no training rating is a positive.
        """
        mask = self._mask(data.rating)
        positives = data if mask is None else Columns(data.user[mask], data.item[mask],
                                                      data.rating[mask])
        require(len(positives) > 0, "positive_threshold", self.threshold,
                f"leaves no positive among the {len(data)} training ratings")
        counts = torch.bincount(positives.item.long(), minlength=n_items)
        self._sampler = NegativeSampler(counts, self.sampling, seed + SEED_OFFSET)
        self._top = float(data.rating.max()) if len(data) else 1.0
        return positives if self.scores == "ranking" else data

    @property
    def sampler(self) -> NegativeSampler:
        """The bound sampler (after :meth:`prepare`)."""
        if self._sampler is None:
            raise RuntimeError("RankingLoss.prepare(data, n_items, seed) must run first; "
                               "fit() calls it")
        return self._sampler

    def rows(self, batch: Columns) -> tuple[Tensor, Tensor]:
        """The batch's users; its items, then the sampled or whole-catalogue items."""
        if self.kind == "softmax":
            return batch.user, torch.arange(self.sampler.n_items, device=batch.item.device)
        if self.kind == "in-batch":
            return batch.user, batch.item
        mask = self._trained_mask(batch.rating) if self.kind == "bpr" else None
        positives = len(batch) if mask is None else int(mask.sum())
        count = self.negatives * (positives if self.kind == "bpr" else 1)
        return batch.user, torch.cat((batch.item, self.sampler.draw(count)))

    def loss(self, model: EmbeddingModel, users: Tensor, items: Tensor, batch: Columns,
             item_index: Tensor) -> tuple[Tensor, Tensor]:
        """``rating_weight * MSE + ranking_weight * ranking loss`` and the batch's scores.

        ``item_index[len(batch):]`` are the sampled items :meth:`rows` drew for this batch.
        """
        b = len(batch)
        pairs = items.index_select(0, batch.item) if self.kind == "softmax" else items[:b]
        prediction = model.score(users, pairs)  # (b,)
        mask = self._trained_mask(batch.rating)
        index = None if mask is None else mask.nonzero().squeeze(1)
        u, p, rated = (users, pairs, batch) if index is None else (
            users.index_select(0, index), pairs.index_select(0, index),
            Columns(batch.user[index], batch.item[index], batch.rating[index]))
        extra = items if self.kind == "softmax" else items[b:]
        total = self.ranking_weight * self._ranking(model, u, p, extra, item_index[b:], rated)
        if self.rating_weight > 0:
            total = total + self.rating_weight * F.mse_loss(prediction, batch.rating)
        return total, prediction

    def _ranking(self, model: EmbeddingModel, users: Tensor, positives: Tensor, extra: Tensor,
                 drawn: Tensor, rated: Columns) -> Tensor:
        """The weighted mean ranking loss over the positives (0 when there are none)."""
        if len(rated) == 0:
            return users.sum() * 0.0
        if self.kind == "bpr":
            per_row = self._bpr(model, users, positives, extra)
        elif self.kind == "softmax":
            per_row = F.cross_entropy(model.score_matrix(users, extra), rated.item,
                                      reduction="none")
        else:
            per_row = self._sampled(model, users, positives, extra, drawn, rated.item)
        if self.weighted:
            return (per_row * (rated.rating / self._top)).mean()
        return per_row.mean()

    def _bpr(self, model: EmbeddingModel, users: Tensor, positives: Tensor,
             negatives: Tensor) -> Tensor:
        n = self.negatives
        positive = model.score(users, positives)  # (k,)
        negative = model.score(users.repeat_interleave(n, 0), negatives).view(-1, n)  # (k, n)
        return F.softplus(negative - positive.unsqueeze(1)).mean(1)

    def _sampled(self, model: EmbeddingModel, users: Tensor, positives: Tensor, extra: Tensor,
                 negative_items: Tensor, item: Tensor) -> Tensor:
        """Sampled (shared negatives) or in-batch softmax with the log-Q correction."""
        sampler = self.sampler
        if self.kind == "in-batch":  # the other positives are the negatives
            logits = model.score_matrix(users, positives) - sampler.popularity_log[item]
            duplicate = (item.unsqueeze(1) == item.unsqueeze(0)).fill_diagonal_(False)
            return F.cross_entropy(logits.masked_fill(duplicate, -math.inf),
                                   torch.arange(len(item), device=item.device), reduction="none")
        positive = model.score(users, positives) - sampler.log_q[item]  # (k,)
        negative = model.score_matrix(users, extra) - sampler.log_q[negative_items]  # (k, s)
        hit = item.unsqueeze(1) == negative_items.unsqueeze(0)
        logits = torch.cat((positive.unsqueeze(1), negative.masked_fill(hit, -math.inf)), 1)
        return F.cross_entropy(logits, torch.zeros_like(item), reduction="none")

    def _trained_mask(self, rating: Tensor) -> Tensor | None:
        """Which batch rows are positives; ``None`` when all are (a ranking-only loss trains
        on the positives :meth:`prepare` kept)."""
        return None if self.scores == "ranking" else self._mask(rating)

    def _mask(self, rating: Tensor) -> Tensor | None:
        """``(n,)`` which ratings are positives; ``None`` when all are."""
        return None if self.threshold is None else rating >= self.threshold


def objective_for(config: TrainConfig) -> Objective:
    """Return the objective ``config.loss`` names (:class:`RatingLoss` for ``"rating"``, else a
    :class:`RankingLoss`), with its knobs (``negatives``, ``positive_threshold``...) from
    ``config``."""
    if config.loss == "rating":
        return RatingLoss()
    combined = config.loss.startswith("rating+")
    return RankingLoss(config.loss.removeprefix("rating+"), negatives=config.negatives,
                       sampling=config.negative_sampling,
                       positive_threshold=config.positive_threshold,
                       rating_weighted=config.rating_weighted,
                       rating_weight=1.0 if combined else 0.0,
                       ranking_weight=config.ranking_weight)
