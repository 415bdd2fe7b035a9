"""AutoRec's own training loop: Rprop (or Adam) over dense rating rows, masked loss, early stop.

AutoRec is no embedding model, so ``fit()``'s loop does not train it; this
small loop does, the way :mod:`embrec.training.closed_form` solves ``ease``.
Each step densifies a batch of rows of the sparse rating matrix (items for
I-AutoRec), reconstructs them, and counts the error on the observed entries
only. A seeded fraction of the training ratings is held out of the inputs and
targets to stop on; the codes kept for prediction are then computed from every
training rating.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from embrec.data.ratings import Ratings

if TYPE_CHECKING:
    from embrec.models.autorec import AutoRec

__all__ = ["masked_loss", "rating_rows", "train_autorec"]

CHUNK = 1024
"""Rows reconstructed at once when scoring held-out ratings and computing codes."""


def rating_rows(train: Ratings, based: str) -> sp.csr_matrix:
    """The rating matrix with the encoded side as rows: items x users for ``based="item"``."""
    rows, columns = (train.user, train.item) if based == "user" else (train.item, train.user)
    shape = (train.n_users, train.n_items) if based == "user" else (train.n_items, train.n_users)
    return sp.csr_matrix((train.rating.astype(np.float32), (rows, columns)), shape=shape)


def masked_loss(model: AutoRec, rows: Tensor, observed: Tensor, share: float) -> Tensor:
    """The paper's objective on a batch of rows: ``Σ observed (r - r̂)² + λ/2 (‖W‖² + ‖V‖²)``.

    ``rows`` holds ``(batch, columns)`` ratings (0 where unobserved), ``observed`` 1 where
    one is observed; the penalty is scaled by ``share``, the batch's fraction of all rows,
    so that one epoch's losses add up to the objective over every row.
    """
    error = ((model.reconstruct(rows) - rows) * observed).square().sum()
    weights = model.encoder.weight.square().sum() + model.decoder.weight.square().sum()
    return error + 0.5 * model.config.l2 * share * weights


def _carve(matrix: sp.csr_matrix, fraction: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """Hold ``fraction`` of the entries out (torch's seeded generator): (the rest, held rows)."""
    coo = matrix.tocoo()
    n_held = int(fraction * coo.nnz)
    held = torch.randperm(coo.nnz)[:n_held].numpy()
    keep = np.ones(coo.nnz, bool)
    keep[held] = False
    rest = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape)
    entries = np.stack([coo.row[held], coo.col[held], coo.data[held]], 1).astype(np.float64)
    return rest, entries[np.argsort(entries[:, 0], kind="stable")]


def _dense(matrix: sp.csr_matrix, rows: np.ndarray, device: torch.device) -> Tensor:
    return torch.as_tensor(matrix[rows].toarray(), device=device)


@torch.no_grad()
def _held_rmse(model: AutoRec, matrix: sp.csr_matrix, held: np.ndarray) -> float:
    """RMSE on the held-out entries, reconstructing rows from ``matrix`` chunk by chunk."""
    device = model.codes.device
    squares = 0.0
    bounds = np.searchsorted(held[:, 0], np.arange(0, matrix.shape[0] + CHUNK, CHUNK))
    for chunk, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if lo == hi:
            continue
        start = chunk * CHUNK
        out = model.reconstruct(_dense(matrix, np.arange(start, min(start + CHUNK,
                                                                    matrix.shape[0])), device))
        rows = torch.as_tensor(held[lo:hi, 0] - start, dtype=torch.long, device=device)
        columns = torch.as_tensor(held[lo:hi, 1], dtype=torch.long, device=device)
        truth = torch.as_tensor(held[lo:hi, 2], dtype=torch.float32, device=device)
        squares += float((out[rows, columns] - truth).square().sum())
    return math.sqrt(squares / max(len(held), 1))


def _epoch(model: AutoRec, matrix: sp.csr_matrix, observed: sp.csr_matrix,
           optimizer: torch.optim.Optimizer) -> float:
    """One pass over the rows; returns the root of the objective per observed rating.

    ``rprop`` (the paper's) takes one full-batch step, the gradient summed over batches of
    rows; ``adam`` steps after every batch, in a seeded order."""
    device = model.codes.device
    n_rows, size = matrix.shape[0], model.config.batch_size
    full_batch = model.config.optimizer == "rprop"
    order = np.arange(n_rows) if full_batch else torch.randperm(n_rows).numpy()
    total = 0.0
    optimizer.zero_grad()
    for start in range(0, n_rows, size):
        rows = order[start:start + size]
        values, mask = _dense(matrix, rows, device), _dense(observed, rows, device)
        loss = masked_loss(model, values, mask, len(rows) / n_rows)
        loss.backward()  # type: ignore[no-untyped-call]
        total += float(loss.detach())
        if not full_batch:
            optimizer.step()
            optimizer.zero_grad()
    if full_batch:
        optimizer.step()
    return math.sqrt(total / max(observed.nnz, 1))


def train_autorec(model: AutoRec, train: Ratings) -> list[dict[str, float]]:
    """Train ``model`` on ``train`` and fill its ``codes``; torch's global generator seeds it.

    Returns one dict per epoch: ``epoch``, ``loss`` (the objective's square root per
    observed rating) and, with a validation fraction, ``validation_rmse``.
    """
    config = model.config
    full = rating_rows(train, config.based)
    matrix, held = _carve(full, config.validation) if config.validation else (full, None)
    observed = matrix.copy()
    observed.data[:] = 1.0
    parameters = list(model.encoder.parameters()) + list(model.decoder.parameters())
    optimizer: torch.optim.Optimizer = (
        torch.optim.Rprop(parameters, lr=config.learning_rate) if config.optimizer == "rprop"
        else torch.optim.Adam(parameters, lr=config.learning_rate))
    history: list[dict[str, float]] = []
    best: tuple[int, float, dict[str, Tensor]] | None = None
    for epoch in range(1, config.epochs + 1):
        facts = {"epoch": float(epoch), "loss": _epoch(model, matrix, observed, optimizer)}
        history.append(facts)
        if held is None or not len(held):
            continue
        facts["validation_rmse"] = rmse = _held_rmse(model, matrix, held)
        if best is None or rmse < best[1]:
            best = (epoch, rmse, copy.deepcopy(model.state_dict()))
        elif epoch - best[0] >= config.patience:
            break
    if best is not None:
        model.load_state_dict(best[2])
    _fill_codes(model, full)
    return history


@torch.no_grad()
def _fill_codes(model: AutoRec, matrix: sp.csr_matrix) -> None:
    """Encode every row of the full training matrix into ``model.codes``."""
    device = model.codes.device
    for start in range(0, matrix.shape[0], CHUNK):
        rows = np.arange(start, min(start + CHUNK, matrix.shape[0]))
        model.codes[start:start + len(rows)] = model.encode(_dense(matrix, rows, device))
