"""Data-parallel training: 2 gloo ranks on 127.0.0.1 equal one process replaying the batches."""

from __future__ import annotations

import math
import socket
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.data.synthetic import generate
from embrec.distributed.exchange import epoch_order, shard_bounds
from embrec.errors import DataError, TrainingWarning
from embrec.models import MODELS
from embrec.training.batches import Columns
from embrec.training.fit import fit

pytestmark = pytest.mark.distributed

# model, model settings, training settings: every model, dropout, penalties, Keras-dense Adam
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("biased-mf", {"embedding_dim": 4}, {"weight_decay": 0.05, "bias_weight_decay": 0.01}),
    ("gmf", {"embedding_dim": 6, "dropout": 0.2}, {"optimizer": "adagrad", "learning_rate": 0.05}),
    ("mlp", {"embedding_dim": 5, "hidden": (8,), "dropout": (0.3, 0.5), "init": "keras",
             "biases": False},
     {"weight_decay": 0.01, "dense_weight_decay": 0.01, "validation": 0.1}),
    ("neumf", {}, {"optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.5}),
    ("mlp", {"embedding_dim": 4, "hidden": (6,), "dropout": (0.2, 0.2), "activation": "tanh"},
     {"embedding_updates": "dense", "schedule": "onecycle"}),
]
BASE = {"epochs": 3, "batch_size": 97, "seed": 3, "learning_rate": 0.01}


def _ratings():  # type: ignore[no-untyped-def]
    # 1,201 rows: shards of 600 and 601, a last global batch of 37
    return generate(n_users=70, n_items=45, n_ratings=1201, rank=3, noise=0.1, seed=5).ratings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, store: str, out: str) -> None:
    # a file store: no TCP port to pick and release (another process could take it meanwhile)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    ratings = _ratings()
    for k, (name, model, train) in enumerate(CASES):
        rec = fit(MODELS[name](**model), ratings, TrainConfig(**{**BASE, **train}))
        weights = {n: p.detach().contiguous() for n, p in rec.model.state_dict().items()}
        save_file(weights, f"{out}/case{k}-rank{rank}.safetensors")
        if rank == 0:
            np.save(f"{out}/case{k}-rows.npy", np.array(rec.metadata["rows_per_rank"]))
    if rank == 1:  # a bad shard: one rating differs on this rank; every rank refuses to train
        changed = ratings.rating.copy()
        changed[0] = 3.0 if changed[0] != 3.0 else 4.0
        ratings = Ratings(ratings.user, ratings.item, changed, ratings.users, ratings.items,
                          scale=ratings.scale)
    try:
        fit(MODELS["biased-mf"](embedding_dim=2), ratings, TrainConfig(epochs=1, seed=0))
    except DataError as error:
        Path(f"{out}/refused-rank{rank}.txt").write_text(str(error))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ranks")
    store = tmp_path_factory.mktemp("store") / "store"
    mp.start_processes(_worker, args=(str(store), str(out)), nprocs=2, join=True,
                       start_method="spawn")
    return out


@pytest.mark.parametrize("k", range(len(CASES)))
@pytest.mark.usefixtures("one_thread")
def test_two_ranks_equal_one_process(two_ranks: Path, k: int) -> None:
    name, model, train = CASES[k]
    with warnings.catch_warnings():  # diagnostics (a dead unit) are not what this compares
        warnings.simplefilter("ignore", TrainingWarning)
        rec = fit(MODELS[name](**model), _ratings(), TrainConfig(**{**BASE, **train}))
    rank0 = load_file(two_ranks / f"case{k}-rank0.safetensors")
    rank1 = load_file(two_ranks / f"case{k}-rank1.safetensors")
    for key, value in rec.model.state_dict().items():
        assert torch.equal(rank0[key], rank1[key]), key  # replicas stay identical
        diff = float((rank0[key] - value).abs().max())
        assert diff <= 1e-5, (name, key, diff)
    rows = np.load(two_ranks / f"case{k}-rows.npy").tolist()
    fitted = math.ceil(1201 * 0.9) if train.get("validation") else 1201
    assert rows == [fitted // 2, fitted - fitted // 2]


def test_shards_cover_every_row_once_per_epoch() -> None:
    n, size, world = 1201, 97, 3
    data = Columns(torch.arange(n, dtype=torch.int32), torch.zeros(n, dtype=torch.int32),
                   torch.arange(n, dtype=torch.float32))
    whole = epoch_order(data, torch.Generator().manual_seed(1), size)
    seen = []
    from embrec.distributed.exchange import Shard

    parts = []
    for rank in range(world):
        start, stop = shard_bounds(n, rank, world)
        shard = Columns(data.user[start:stop], data.item[start:stop], data.rating[start:stop])
        order = epoch_order(shard, torch.Generator().manual_seed(1), size, Shard(start, stop, n))
        assert len(order.local) == len(whole.local) and order.total == whole.local
        parts.append(order)
        seen.append(order.batch.rating)
    assert sorted(torch.cat(seen).long().tolist()) == list(range(n))
    # each global batch holds exactly the rows one process would use, at the same positions
    for k in range(len(whole.local)):
        expected = whole.batch.rating[k * size:(k + 1) * size]
        got = torch.full_like(expected, -1.0)
        for order in parts:
            start = sum(order.local[:k])
            rows = order.batch.rating[start:start + order.local[k]]
            got[order.positions[start:start + order.local[k]]] = rows  # type: ignore[index]
        assert torch.equal(got, expected)


def test_ranks_with_different_data_are_refused(two_ranks: Path) -> None:
    for rank in (0, 1):
        message = (two_ranks / f"refused-rank{rank}.txt").read_text()
        assert "ranks [1] have different training rows, users, items or ratings than rank 0" \
            in message


def test_exchange_packs_large_indices_and_scales(tmp_path: Path) -> None:
    from embrec.distributed.exchange import Group, exchange

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        group = Group(0, 1, torch.device("cpu"), owned=False)
        dense = torch.tensor([1.0, 2.0])
        index = torch.tensor([5_000_000_123, 7, 5_000_000_123])
        rows = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        (got_index, got_rows), (empty, none) = exchange(
            group, dense, [(index, rows), (torch.zeros(0, dtype=torch.int64), torch.zeros(0, 1))],
            0.5)
        assert got_index.tolist() == [7, 5_000_000_123]
        assert got_rows.tolist() == [[1.5, 2.0], [3.0, 4.0]]
        assert dense.tolist() == [0.5, 1.0] and len(empty) == 0 and none.shape == (0, 1)
    finally:
        dist.destroy_process_group()
