"""LIBMF's grid order: a stable regrouping of the epoch's shuffle, and training through it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from embrec.config import TrainConfig
from embrec.data.split import split
from embrec.data.synthetic import generate
from embrec.evaluation.evaluate import evaluate
from embrec.kernels.order import arrange, grid_size
from embrec.models import BiasedMFConfig
from embrec.training import trainers
from embrec.training.fit import fit


def test_arrange_groups_the_rows_by_cell_and_shuffles_each_cell() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 5000, dtype=np.int32), rng.integers(0, 30, 5000,
                                                                          dtype=np.int32)
    ratings = np.arange(5000, dtype=np.float32)  # each row's own number
    got_users, got_items, got_ratings, starts = arrange(users, items, ratings, rng.random(5000),
                                                        50, 30, 4)
    rows = got_ratings.astype(np.int64)
    assert sorted(rows.tolist()) == list(range(5000))  # every row once
    np.testing.assert_array_equal(got_users, users[rows])
    np.testing.assert_array_equal(got_items, items[rows])
    cell = (users * 4 // 50) * 4 + items * 4 // 30
    np.testing.assert_array_equal(starts, np.concatenate([[0], np.cumsum(np.bincount(
        cell, minlength=16))]))
    assert (np.diff(cell[rows]) >= 0).all()  # cells one after another
    assert (np.diff(rows[starts[5]:starts[6]]) < 0).any()  # and shuffled within


def test_grid_size_follows_the_table_bytes() -> None:
    assert grid_size(943, 1682, 99 * 4) == 1  # ML-100K's tables fit the cache: no grid
    assert grid_size(69_878, 10_677, 99 * 4) == 14
    assert grid_size(10**8, 10, 400) == 32


@pytest.fixture()
def grid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut small tables into a 3 x 3 grid, as large ones are."""
    monkeypatch.setattr(trainers, "grid_size", lambda *args: 3)


def test_a_grid_fit_is_seeded_and_learns_as_well(grid: Any) -> None:
    data = generate(n_users=300, n_items=200, n_ratings=20_000, rank=4, seed=3).ratings
    train, test = split(data, test_size=0.1, seed=0)
    config = TrainConfig(batch_size=1, epochs=4, seed=1, num_threads=1, learning_rate=0.005,
                         weight_decay=0.02)
    first, again = (fit(BiasedMFConfig(embedding_dim=8), train, config) for _ in range(2))
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])
    # the epoch's train RMSE is computed from predictions put back in the epoch's order
    assert first.history[-1]["train_rmse"] < first.history[0]["train_rmse"]
    with pytest.MonkeyPatch.context() as plain:
        plain.setattr(trainers, "grid_size", lambda *args: 1)
        ungridded = fit(BiasedMFConfig(embedding_dim=8), train, config)
    # another order of the same ratings: not worse beyond the noise of 2,000 test ratings
    assert evaluate(first, test)["rmse"] < evaluate(ungridded, test)["rmse"] + 0.02
