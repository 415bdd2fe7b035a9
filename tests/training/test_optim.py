"""Flat-buffer optimisers match torch.optim step for step; batches and validation rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.training.batches import Columns, columns, shuffled, validation_rows
from embrec.training.optim import FlatParameters, Optimizer


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(7, 3)
        self.dense = nn.Linear(3, 2)


def reference_optimizer(name: str, model: nn.Module, decay: float) -> torch.optim.Optimizer:
    groups = [{"params": [model.table.weight], "weight_decay": 0.0},
              {"params": list(model.dense.parameters()), "weight_decay": decay}]
    if name == "adam":
        return torch.optim.Adam(groups, lr=0.01, eps=1e-7)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=0.01, eps=1e-7)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    return torch.optim.Adagrad(groups, lr=0.01, eps=1e-10)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad"])
@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_flat_optimiser_matches_torch_optim(name: str, decay: float) -> None:
    torch.manual_seed(0)
    ours, theirs = Toy().double(), Toy().double()
    theirs.load_state_dict(ours.state_dict())
    flat = FlatParameters(ours)
    optimizer = Optimizer(flat, TrainConfig(optimizer=name, adam_epsilon=1e-7, momentum=0.9,
                                            weight_decay=decay))
    reference = reference_optimizer(name, theirs, decay)
    for _ in range(5):
        grads = [torch.randn_like(p) for p in theirs.parameters()]
        grads[0][2:] = 0  # rows outside the batch still move under dense updates
        for p, g in zip(ours.parameters(), grads, strict=True):
            p.grad.copy_(g)
        for p, g in zip(theirs.parameters(), grads, strict=True):
            p.grad = g.clone()
        optimizer.step(0.01)
        flat.grad.zero_()
        reference.step()
    for mine, want in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine, want)


def test_flat_parameters_are_views_until_released() -> None:
    model = Toy()
    before = [p.detach().clone() for p in model.parameters()]
    flat = FlatParameters(model)
    assert flat.embedding_size == 21 and flat.data.numel() == 21 + 6 + 2
    assert model.table.weight.data_ptr() == flat.data.data_ptr()  # embeddings first
    flat.data.add_(1.0)
    for p, old in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), old + 1)
    flat.release()
    flat.data.add_(1.0)
    for p, old in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), old + 1)
        assert p.grad is None


def test_validation_rows_last_is_keras_validation_split() -> None:
    fit_rows, held = validation_rows(10, 0.25, "last", np.random.default_rng(0))
    assert held is not None and fit_rows is not None
    assert fit_rows.tolist() == list(range(math.ceil(10 * 0.75)))  # Keras: ceil(n * (1 - f))
    assert held.tolist() == [8, 9]


def test_validation_rows_random_partition() -> None:
    fit_rows, held = validation_rows(100, 0.2, "random", np.random.default_rng(0))
    assert held is not None and fit_rows is not None and len(held) == 20
    assert sorted(np.concatenate([fit_rows, held]).tolist()) == list(range(100))
    assert validation_rows(5, 0.0, "random", np.random.default_rng(0)) == (None, None)


def test_columns_and_shuffle(tiny: Ratings) -> None:
    data = columns(tiny, None, torch.device("cpu"))
    assert data.user.dtype == torch.int32 and data.rating.dtype == torch.float32
    assert len(data) == len(tiny)
    mixed = shuffled(data, torch.Generator().manual_seed(0))
    assert mixed.user.dtype == torch.int64
    def rows(c: Columns) -> list[tuple[int, int, float]]:
        return sorted(zip(c.user.tolist(), c.item.tolist(), c.rating.tolist(), strict=True))

    assert rows(mixed) == rows(data)
    assert not torch.equal(mixed.user, data.user.long())
