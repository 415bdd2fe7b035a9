"""Optimisers match torch.optim step for step (dense layers, sparse rows, Keras-dense tables);
batches and validation rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.training.batches import Columns, columns, shuffled, validation_rows
from embrec.training.optim import DenseOptimizer, DenseParameters
from embrec.training.sparse import (
    FUSED_ADAM,
    DenseTableAdam,
    adam_update,
    coalesce,
    row_optimizer,
)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(7, 3)
        self.dense = nn.Linear(3, 2)
        self.global_bias = nn.Parameter(torch.tensor([3.0]))


class KerasAdam:
    """Adam as Keras and torch's SparseAdam write it, given every gradient as a sparse tensor."""

    def __init__(self, params: list[nn.Parameter], decay: float, decoupled: bool) -> None:
        self.params, self.decay, self.decoupled = params, decay, decoupled
        self.adam = torch.optim.SparseAdam(params, lr=0.01, eps=1e-7)

    def step(self) -> None:
        for k, p in enumerate(self.params):
            grad = p.grad.clone()
            if k == 0 and self.decay:  # the kernel
                if self.decoupled:
                    p.data.mul_(1 - 0.01 * self.decay)
                else:
                    grad += self.decay * p.detach()
            p.grad = grad.to_sparse()
        self.adam.step()


def reference_optimizer(name: str, model: Toy, decay: float) -> Any:
    """The reference over the dense parameters: kernels decayed, biases never."""
    groups = [{"params": [model.dense.weight], "weight_decay": decay},
              {"params": [model.dense.bias, model.global_bias], "weight_decay": 0.0}]
    if name in ("adam", "adamw"):
        return KerasAdam([model.dense.weight, model.dense.bias, model.global_bias], decay,
                         decoupled=name == "adamw")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    return torch.optim.Adagrad(groups, lr=0.01, eps=1e-10)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad"])
@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_dense_optimiser_matches_torch_optim(name: str, decay: float) -> None:
    torch.manual_seed(0)
    ours, theirs = Toy().double(), Toy().double()
    theirs.load_state_dict(ours.state_dict())
    flat = DenseParameters(ours, [ours.table.weight])
    optimizer = DenseOptimizer(flat, TrainConfig(optimizer=name, adam_epsilon=1e-7, momentum=0.9,
                                                 dense_weight_decay=decay))
    reference = reference_optimizer(name, theirs, decay)
    dense = [theirs.dense.weight, theirs.dense.bias, theirs.global_bias]
    for step in range(1, 6):
        grads = [torch.randn_like(p) for p in dense]
        mine = {id(p): p for p in ours.parameters()}
        for p, g in zip([ours.dense.weight, ours.dense.bias, ours.global_bias], grads,
                        strict=True):
            assert id(p) in mine
            p.grad.copy_(g)
        for p, g in zip(dense, grads, strict=True):
            p.grad = g.clone()
        optimizer.step(0.01, step)
        flat.grad.zero_()
        reference.step()
    for mine_p, want in zip([ours.dense.weight, ours.dense.bias, ours.global_bias], dense,
                            strict=True):
        torch.testing.assert_close(mine_p, want)


def test_global_bias_and_layer_biases_are_never_decayed() -> None:
    model = Toy()
    flat = DenseParameters(model, [model.table.weight])
    assert flat.kernel_size == 6  # the 2 x 3 weight matrix only
    optimizer = DenseOptimizer(flat, TrainConfig(optimizer="sgd", dense_weight_decay=10.0))
    biases = [model.global_bias.detach().clone(), model.dense.bias.detach().clone()]
    optimizer.step(0.1, 1)  # zero gradients: only decay moves anything; lr x decay = 1
    torch.testing.assert_close(model.global_bias.detach(), biases[0])
    torch.testing.assert_close(model.dense.bias.detach(), biases[1])
    torch.testing.assert_close(model.dense.weight.detach(), torch.zeros(2, 3))


def test_dense_parameters_are_views_until_released() -> None:
    model = Toy()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    flat = DenseParameters(model, [model.table.weight])
    assert flat.data.numel() == 6 + 2 + 1
    assert model.dense.weight.data_ptr() == flat.data.data_ptr()  # kernels first
    flat.data.add_(1.0)
    for name, p in model.named_parameters():
        shift = 0.0 if name == "table.weight" else 1.0
        torch.testing.assert_close(p.detach(), before[name] + shift)
    flat.release()
    flat.data.add_(1.0)
    for name, p in model.named_parameters():
        shift = 0.0 if name == "table.weight" else 1.0
        torch.testing.assert_close(p.detach(), before[name] + shift)
        assert p.grad is None


def sparse_batches(rows: int, width: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    out = []
    for _ in range(steps):
        index = torch.randint(0, rows, (9,), generator=generator)  # repeats on purpose
        out.append((index, torch.randn(9, width, generator=generator, dtype=torch.float64)))
    return out


@pytest.mark.parametrize("name", ["adam", "adagrad", "sgd"])
def test_row_optimisers_match_torch_sparse_optimisers(name: str) -> None:
    """Lazy Adam is torch's SparseAdam; row Adagrad and SGD are torch's on sparse gradients."""
    torch.manual_seed(0)
    reference = nn.Embedding(20, 4, sparse=True).double()
    ours = row_optimizer(name, reference.weight.detach(), 1e-8 if name == "adam" else 1e-10)
    theirs: torch.optim.Optimizer
    if name == "adam":
        theirs = torch.optim.SparseAdam(reference.parameters(), lr=0.05, eps=1e-8)
    elif name == "adagrad":
        theirs = torch.optim.Adagrad(reference.parameters(), lr=0.05, eps=1e-10)
    else:
        theirs = torch.optim.SGD(reference.parameters(), lr=0.05)
    for step, (index, rows) in enumerate(sparse_batches(20, 4, 6), start=1):
        ours.step(index, rows, 0.05, step)
        theirs.zero_grad()
        with torch.sparse.check_sparse_tensor_invariants():
            reference.weight.grad = torch.sparse_coo_tensor(index.unsqueeze(0), rows, (20, 4))
            theirs.step()
    torch.testing.assert_close(ours.weight, reference.weight.detach())


def test_rows_outside_the_batch_never_change() -> None:
    before = torch.randn(1000, 8, dtype=torch.float64)
    optimizer = row_optimizer("adam", before, 1e-8)
    index = torch.tensor([3, 3, 500])
    optimizer.step(index, torch.ones(3, 8, dtype=torch.float64), 0.1, 1)
    changed = (optimizer.weight != before).any(1).nonzero().flatten().tolist()
    assert changed == [3, 500]


def test_rowwise_adagrad_keeps_one_accumulator_per_row() -> None:
    optimizer = row_optimizer("rowwise-adagrad", torch.zeros(5, 2, dtype=torch.float64), 1e-10)
    table = optimizer.weight
    assert optimizer.state_dict()["total"].shape == (5, 1)
    grad = torch.tensor([[3.0, 4.0], [1.0, 1.0]], dtype=torch.float64)
    optimizer.step(torch.tensor([1, 1]), grad, 0.5, 1)  # coalesced: [4, 5]
    accumulator = (16.0 + 25.0) / 2
    expected = -0.5 * torch.tensor([4.0, 5.0], dtype=torch.float64) / math.sqrt(accumulator)
    torch.testing.assert_close(table[1], expected)
    assert float(table[[0, 2, 3, 4]].abs().sum()) == 0


@pytest.mark.parametrize("fused", [False, True])
def test_dense_table_adam_is_keras_adam_on_the_whole_table(fused: bool) -> None:
    """Keras semantics: every row's moments decay every step, even rows not in the batch.

    The reference is SparseAdam given a gradient that names every row (zeros
    included); torch's fused kernel and the plain path both match it.
    """
    torch.manual_seed(0)
    users = nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    items = nn.Parameter(torch.randn(7, 3, dtype=torch.float64))
    ours = DenseTableAdam(users.detach(), items.detach(), 1e-7, fused=fused)
    theirs = torch.optim.SparseAdam([users, items], lr=0.01, eps=1e-7)
    batches = zip(sparse_batches(5, 3, 5), sparse_batches(7, 3, 5), strict=True)
    for step, ((user_index, user_rows), (item_index, item_rows)) in enumerate(batches, start=1):
        ours.step(user_index, user_rows, item_index, item_rows, 0.01, step)
        with torch.sparse.check_sparse_tensor_invariants():
            users.grad = full_sparse(torch.zeros(5, 3, dtype=torch.float64)
                                     .index_add_(0, user_index, user_rows))
            items.grad = full_sparse(torch.zeros(7, 3, dtype=torch.float64)
                                     .index_add_(0, item_index, item_rows))
            theirs.step()
    torch.testing.assert_close(ours.weights[0], users.detach())
    torch.testing.assert_close(ours.weights[1], items.detach())
    assert float(ours.grad.abs().sum()) == 0  # touched rows cleared


def full_sparse(dense: torch.Tensor) -> torch.Tensor:
    """A sparse gradient naming every row of ``dense``, zero rows included."""
    every = torch.arange(dense.shape[0]).unsqueeze(0)
    return torch.sparse_coo_tensor(every, dense, dense.shape)


@pytest.mark.skipif(FUSED_ADAM is None, reason="this torch has no fused Adam kernel")
def test_fused_adam_equals_the_plain_update() -> None:
    torch.manual_seed(0)
    tensors = [torch.randn(40, 7) for _ in range(2)] + [torch.zeros(40, 7), torch.zeros(40, 7)]
    plain = [t.clone() for t in tensors]
    for step in range(1, 8):
        grad = torch.randn(40, 7)
        tensors[1].copy_(grad)
        plain[1].copy_(grad)
        adam_update(*tensors, lr=0.01, step=step, epsilon=1e-7, fused=True)
        adam_update(*plain, lr=0.01, step=step, epsilon=1e-7)
    for fused, reference in zip(tensors, plain, strict=True):
        torch.testing.assert_close(fused, reference)


def test_coalesce_sums_repeats() -> None:
    index, rows = coalesce(torch.tensor([4, 1, 4]), torch.tensor([[1.0], [2.0], [3.0]]))
    assert index.tolist() == [1, 4] and rows.flatten().tolist() == [2.0, 4.0]


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
