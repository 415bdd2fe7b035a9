"""Per-epoch progress: a tqdm bar on a terminal, one plain line per epoch elsewhere.

A bar redraws itself with carriage returns; written to a log file or a CI job's
output it leaves dozens of fragments an epoch. When standard error is not a
terminal, :class:`EpochLine` takes the bar's place with the same methods
(``update``, ``set_postfix``, ``close``) and prints one line when the epoch ends.

A model trained with a ranking loss (BPR, softmax...) outputs scores, not ratings,
so the RMSE of those scores against the ratings climbs while the model improves,
and reads as divergence. :class:`LossMeter` wraps the run's objective, adds each
step's loss on the device (no host sync inside the epoch) and puts ``train_loss``
in the epoch record instead of ``train_rmse``/``train_mae``, and, when validation
rows are held out, ``validation_ndcg@10``: each validation user's relevant items
(rated at or above the positive threshold) ranked against the whole catalogue
minus the user's training items.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from embrec.config import TrainConfig
from embrec.evaluation.metrics import ndcg_at_k, relevance_matrix
from embrec.models.base import EmbeddingModel
from embrec.topn import top_n
from embrec.training.batches import Columns
from embrec.training.losses import Objective

__all__ = ["EpochLine", "LossMeter", "close_bar", "metered", "on_terminal", "progress_bar",
           "report"]

SHOWN = ("rmse", "_loss", "ndcg@10")
"""The record's figures a finished epoch shows (by key suffix)."""


def report(bar: Any, predictions: Tensor, rating: Tensor, stop: int, size: int) -> None:
    """Move the progress bar to row ``stop``; show the loss over the last ``50 * size`` rows."""
    window = slice(max(0, stop - 50 * size), stop)
    bar.update(stop - bar.n)
    bar.set_postfix(loss=f"{float((predictions[window] - rating[window]).square().mean()):.4f}")


def progress_bar(config: TrainConfig, epoch: int, n: int, hooks: Any) -> Any:
    """A tqdm bar for the epoch, or ``None`` (no progress asked, or not rank 0)."""
    if not config.progress or (hooks.parallel is not None and hooks.parallel.group.rank != 0):
        return None
    if not on_terminal():
        return EpochLine(n, f"epoch {epoch}/{config.epochs}")
    from tqdm.auto import tqdm

    return tqdm(total=n, desc=f"epoch {epoch}/{config.epochs}", unit="rating", leave=True)


def close_bar(bar: Any, record: dict[str, float] | None = None) -> None:
    """Finish the epoch's bar, showing the epoch's RMSEs when it completed."""
    if bar is None:
        return
    if record is not None:
        bar.update(bar.total - bar.n)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k.endswith(SHOWN)})
    bar.close()


def on_terminal() -> bool:
    """Whether standard error is a terminal (where a redrawn bar reads well)."""
    return sys.stderr.isatty()


class EpochLine:
    """Counts like a progress bar; prints ``epoch 3/20: 90,000 ratings in 0.41 s, ...`` once.

    The figures are the bar's last postfix (:func:`close_bar` sets the epoch's
    RMSE, or a ranking run's loss and NDCG), written ``key=value`` as tqdm does.
    """

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.n, self.desc = total, 0, desc
        self.postfix: dict[str, Any] = {}
        self.started = time.perf_counter()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more ratings."""
        self.n += n

    def set_postfix(self, values: dict[str, Any] | None = None, **more: Any) -> None:
        """Keep the figures to print at the end (the last ones given win)."""
        self.postfix = {**(values or {}), **more}

    def close(self) -> None:
        """Print the epoch's line on standard error."""
        seconds = time.perf_counter() - self.started
        figures = "".join(f", {key}={value}" for key, value in self.postfix.items())
        print(f"{self.desc}: {self.n:,} ratings in {seconds:.2f} s{figures}", file=sys.stderr,
              flush=True)


K = 10
MAX_USERS = 2048
"""Validation users ranked per epoch at most (a seeded sample beyond that)."""


def metered(objective: Objective, threshold: float | None) -> Objective:
    """Wrap a ranking objective in a :class:`LossMeter`; return a rating one unchanged.

    ``threshold``: ratings at or above it are relevant in validation rankings (4 if ``None``).
    """
    return LossMeter(objective, threshold) if objective.scores == "ranking" else objective


class LossMeter:
    """A ranking objective that also sums its loss per epoch."""

    def __init__(self, inner: Objective, threshold: float | None) -> None:
        self.inner, self.scores = inner, inner.scores
        self.total: Tensor | float = 0.0
        self.steps = 0
        self.seen: sp.csr_matrix | None = None
        self.threshold = 4.0 if threshold is None else float(threshold)

    @property
    def generator(self) -> torch.Generator | None:
        """The wrapped objective's generator."""
        return self.inner.generator

    def prepare(self, data: Columns, n_items: int, seed: int) -> Columns:
        """Remember every training pair (to leave out of validation rankings), then prepare."""
        user, item = data.user.cpu().numpy(), data.item.cpu().numpy()
        n_users = int(user.max()) + 1 if len(user) else 0
        self.seen = sp.csr_matrix((np.ones(len(user), np.float32), (user, item)),
                                  shape=(n_users, n_items))
        return self.inner.prepare(data, n_items, seed)

    def rows(self, batch: Columns) -> tuple[Tensor, Tensor]:
        """The wrapped objective's rows."""
        return self.inner.rows(batch)

    def loss(self, model: EmbeddingModel, users: Tensor, items: Tensor, batch: Columns,
             item_index: Tensor) -> tuple[Tensor, Tensor]:
        """The wrapped objective's loss, added to the epoch's sum."""
        total, prediction = self.inner.loss(model, users, items, batch, item_index)
        self.total = self.total + total.detach()
        self.steps += 1
        return total, prediction

    def record(self, record: dict[str, float], model: EmbeddingModel,
               held: Columns | None) -> dict[str, float]:
        """The epoch record with ``train_loss`` (and ``validation_ndcg@10``) for the RMSE."""
        loss = float(self.total) / max(self.steps, 1)
        self.total, self.steps = 0.0, 0
        out = {k: v for k, v in record.items() if not k.startswith("train_")}
        out["train_loss"] = loss
        if held is not None:
            out[f"validation_ndcg@{K}"] = self.validation_ndcg(model, held)
        return out

    def validation_ndcg(self, model: EmbeddingModel, held: Columns) -> float:
        """NDCG@10 of the held-out relevant items, training items left out of each ranking."""
        user, item = held.user.cpu().numpy(), held.item.cpu().numpy()
        rating = held.rating.cpu().numpy()
        users = np.unique(user[rating >= self.threshold])
        if len(users) == 0 or self.seen is None:
            return float("nan")
        if len(users) > MAX_USERS:
            users = np.sort(np.random.default_rng(0).choice(users, MAX_USERS, replace=False))
        seen, n_items = self.seen, self.seen.shape[1]
        if users[-1] >= seen.shape[0]:  # users with validation rows only: nothing seen
            seen = sp.vstack([seen, sp.csr_matrix((int(users[-1]) + 1 - seen.shape[0],
                                                   n_items))]).tocsr()
        was_training = model.training
        model.eval()
        with torch.no_grad():
            catalogue = model.item_vectors(torch.arange(n_items, device=held.user.device))
            top, _ = top_n(model, users, catalogue, K, seen=(seen.indptr, seen.indices))
        model.train(was_training)
        take = np.isin(user, users)
        rows = np.searchsorted(users, user[take])
        relevant = relevance_matrix(rows, item[take], rating[take], len(users), n_items,
                                    threshold=self.threshold)
        return float(ndcg_at_k(top, relevant))
