"""Each rank reads only its Parquet row groups; the run equals one process on the whole file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from embrec.commands.runs import SplitSpec, train_run
from embrec.config import TrainConfig
from embrec.data.readers import read_ratings
from embrec.data.split import split
from embrec.data.synthetic import generate
from embrec.distributed.shards import merged_index, read_parquet_rows, split_positions, text_bounds
from embrec.errors import DataError
from embrec.models import MODELS

pytestmark = pytest.mark.distributed

ROWS, GROUP_ROWS = 1203, 100  # 13 row groups; rank 0 reads rows 0..600 (groups 0-6)
TRAIN = {"epochs": 2, "batch_size": 97, "seed": 3, "learning_rate": 0.01,
         "weight_decay": 0.02}
SPEC = SplitSpec(test_size=0.2, seed=7)
NAMES = ["plain.parquet", "text.parquet", "plain.csv"]


def _frame() -> pd.DataFrame:
    return generate(n_users=70, n_items=45, n_ratings=ROWS, rank=3, noise=0.1,
                    seed=5).ratings.to_pandas()


def _write(path: Path, *, text_ids: bool = False, repeat: bool = False,
           mixed: bool = False) -> Path:
    frame = _frame()
    if text_ids:  # text ids that do not sort like numbers ("u10" < "u9")
        frame["user"] = "u" + frame["user"].astype(str)
    if mixed:  # text ids: plain numbers in rank 0's rows, "u7" in some of rank 1's
        frame["user"] = frame["user"].astype(str)
        frame.loc[1000:, "user"] = "u" + frame.loc[1000:, "user"]
    if repeat:  # the last row repeats the first pair: the rows are on different ranks
        frame.loc[len(frame) - 1, ["user", "item"]] = frame.loc[0, ["user", "item"]].to_numpy()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path,
                   row_group_size=GROUP_ROWS)
    return path


def _worker(rank: int, store: str, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    for name in NAMES:
        result = train_run(MODELS["biased-mf"](embedding_dim=4), TrainConfig(**TRAIN),
                           f"{folder}/{name}", split_spec=SPEC)
        rec = result.recommender
        weights = {k: v.detach().contiguous() for k, v in rec.model.state_dict().items()}
        save_file(weights, f"{folder}/{name}-rank{rank}.safetensors")
        facts = {k: v for k, v in rec.metadata.items() if k.endswith("per_rank")}
        Path(f"{folder}/{name}-rank{rank}.json").write_text(json.dumps(
            {"metrics": result.metrics, "facts": facts, "notes": result.notes,
             "fingerprint": rec.metadata["fingerprint"], "mean": rec.mean,
             "seen": int(rec.seen.nnz), "users": rec.users.to_list()}))
    whole = train_run(MODELS["biased-mf"](embedding_dim=2), TrainConfig(epochs=1, seed=0),
                      f"{folder}/plain.parquet", split_spec=SPEC, read={"duplicates": "last"})
    Path(f"{folder}/whole-rank{rank}.json").write_text(json.dumps(
        {"metrics": sorted(whole.metrics), "notes": whole.notes, "problems": whole.problems}))
    mixed = train_run(MODELS["biased-mf"](embedding_dim=4), TrainConfig(**TRAIN),
                      f"{folder}/mixed.parquet", split_spec=SPEC)
    Path(f"{folder}/mixed-rank{rank}.json").write_text(json.dumps(
        {"notes": mixed.notes, "users": mixed.recommender.users.to_list()}))
    for name in ("header.csv", "hashed.parquet"):  # read whole after all: one note, no error
        odd = train_run(MODELS["biased-mf"](embedding_dim=2), TrainConfig(epochs=1, seed=0),
                        f"{folder}/{name}", split_spec=SPEC)
        Path(f"{folder}/{name}-rank{rank}.json").write_text(json.dumps(
            {"notes": odd.notes, "test": odd.metrics.get("test", {}).get("n")}))
    for name in ("repeat.parquet", "bad.csv"):
        try:
            train_run(MODELS["biased-mf"](embedding_dim=2), TrainConfig(epochs=1, seed=0),
                      f"{folder}/{name}", split_spec=SPEC)
        except DataError as error:
            Path(f"{folder}/{name}-rank{rank}.txt").write_text(str(error))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sharded")
    _write(folder / "plain.parquet")
    _write(folder / "text.parquet", text_ids=True)
    _write(folder / "repeat.parquet", repeat=True)
    _write(folder / "mixed.parquet", mixed=True)
    _frame().to_csv(folder / "plain.csv", index=False)
    bad = (folder / "plain.csv").read_text().splitlines()
    fields = bad[1000].split(",")  # file line 1001: in rank 1's part
    bad[1000] = ",".join([*fields[:2], "five", *fields[3:]])
    (folder / "bad.csv").write_text("\n".join(bad) + "\n")
    body = _frame()[:40][["user", "item", "rating"]].to_csv(index=False, header=False)
    # rank 0's half of the bytes is the header alone (a long last column name)
    (folder / "header.csv").write_text(f"user,item,rating,{'x' * 2 * len(body)}\n" +
                                       body.replace("\n", ",\n"))
    hashed = _frame()  # uint64 hashes as ids: past int64, kept as exact Python ints
    hashed["user"] = hashed["user"].to_numpy().astype(np.uint64) * np.uint64(2**63 + 1)
    pq.write_table(pa.Table.from_pandas(hashed, preserve_index=False), folder / "hashed.parquet",
                   row_group_size=GROUP_ROWS)
    store = tmp_path_factory.mktemp("store") / "store"  # a file store: no port to race for
    mp.start_processes(_worker, args=(str(store), str(folder)), nprocs=2, join=True,
                       start_method="spawn")
    return folder


def _read(folder: Path, name: str, rank: int) -> dict[str, Any]:
    return dict(json.loads((folder / f"{name}-rank{rank}.json").read_text()))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.usefixtures("one_thread")
def test_two_ranks_reading_their_rows_equal_one_process(runs: Path, name: str) -> None:
    one = train_run(MODELS["biased-mf"](embedding_dim=4), TrainConfig(**TRAIN),
                    str(runs / name), split_spec=SPEC)
    rank0, rank1 = (load_file(runs / f"{name}-rank{r}.safetensors") for r in (0, 1))
    for key, value in one.recommender.model.state_dict().items():
        assert torch.equal(rank0[key], rank1[key]), key
        assert float((rank0[key] - value).abs().max()) <= 1e-5, key
    got = _read(runs, name, 0)
    for side in ("train", "test"):
        assert got["metrics"][side]["n"] == one.metrics[side]["n"]
        assert abs(got["metrics"][side]["rmse"] - one.metrics[side]["rmse"]) <= 1e-5
    rec = one.recommender
    assert got["fingerprint"] == rec.metadata["fingerprint"]  # `embrec evaluate DIR` works
    assert got["users"] == rec.users.to_list() and got["seen"] == rec.seen.nnz
    assert got["mean"] == pytest.approx(rec.mean, abs=1e-6)
    assert got["notes"] == []
    if name.endswith(".csv"):  # each rank parsed only its half of the bytes
        size = (runs / name).stat().st_size
        assert sum(got["facts"]["file_rows_per_rank"]) == ROWS
        assert sum(got["facts"]["bytes_per_rank"]) == size
        assert max(got["facts"]["bytes_per_rank"]) < size * 0.51
    else:  # each rank read only the row groups overlapping its rows: 601 and 602 of 1,203
        assert got["facts"]["file_rows_per_rank"] == [601, 602]
        assert got["facts"]["row_groups_per_rank"] == [7, 7]  # groups 0-6 and 6-12
        assert got["facts"]["decoded_rows_per_rank"] == [700, 603]
    assert sum(got["facts"]["rows_per_rank"]) == one.metrics["train"]["n"]
    assert _read(runs, name, 1)["metrics"]["train"] == got["metrics"]["train"]


def test_a_pair_repeated_across_ranks_is_refused_on_every_rank(runs: Path) -> None:
    for rank in (0, 1):
        message = (runs / f"repeat.parquet-rank{rank}.txt").read_text()
        assert "1 duplicate (user, item) ratings" in message
        assert "on different ranks' rows" in message


def test_a_bad_line_is_placed_in_the_whole_file_and_every_rank_stops(runs: Path) -> None:
    own = (runs / "bad.csv-rank1.txt").read_text()
    assert own.startswith(f"{runs / 'bad.csv'}:1001: column 'rating': cannot parse 'five'")
    with pytest.raises(DataError) as one_process:
        read_ratings(runs / "bad.csv")
    assert str(one_process.value) == own  # the message one process gives
    assert "rank 1 could not read its rows" in (runs / "bad.csv-rank0.txt").read_text()


def test_row_groups_read_and_rows_named_by_file_position(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.parquet")
    read = read_parquet_rows(path, {}, 250, 420)
    assert read.facts == {"file_rows": 170, "row_groups": 3, "decoded_rows": 300}
    whole = pd.read_parquet(path)
    assert np.array_equal(read.raw.user.values, whole["user"].to_numpy()[250:420])
    assert read.raw.locator.where(np.array([0]), read.raw.locator.key_of(np.array([0]))) == \
        ["row 250"]


def test_text_is_cut_at_line_starts(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"user,item,rating\n" + b"".join(b"%d,%d,4\n" % (k, k) for k in range(500)))
    data = path.read_bytes()
    for parts in (2, 3, 7):
        bounds = text_bounds(path, parts)
        assert bounds[0] == 0 and bounds[-1] == len(data) and bounds == sorted(bounds)
        assert all(data[b - 1:b] == b"\n" for b in bounds[1:-1])
    assert text_bounds(path, 10_000)[-2] == len(data)  # more parts than lines: empty pieces


def test_split_positions_match_the_random_split() -> None:
    ratings = generate(n_users=40, n_items=20, n_ratings=301, rank=2, seed=1).ratings
    train, test = split(ratings, test_size=0.25, seed=4)
    places = np.concatenate([split_positions(301, 4, 0, 150), split_positions(301, 4, 150, 151)])
    n_train = 301 - int(0.25 * 301)
    raw = ratings.to_pandas()
    order = np.argsort(places)
    assert np.array_equal(raw["user"].to_numpy()[order[:n_train]],
                          train.users.id_of(train.user))
    assert np.array_equal(raw["item"].to_numpy()[order[n_train:]], test.items.id_of(test.item))


def test_merged_index_orders_ids_as_one_process() -> None:
    parts = [np.array(["b", "d"], dtype=object), np.array(["a", "b", "c"], dtype=object)]
    used = [np.array([False, True]), np.array([True, False, False])]
    whole, train, to_whole, to_train = merged_index(parts, used, "user")
    assert whole.to_list() == ["a", "b", "c", "d"] and train.to_list() == ["a", "d"]
    assert to_whole[0].tolist() == [1, 3] and to_train[1].tolist() == [0, -1, -1]
    assert not math.isnan(float(len(train)))


def test_a_run_reading_the_whole_file_says_why_and_only_rank_0_evaluates(runs: Path) -> None:
    rank0, rank1 = (_read(runs, "whole", rank) for rank in (0, 1))
    assert rank0["metrics"] == ["baselines", "test", "train", "validation"]
    assert rank1["metrics"] == []
    assert rank1["problems"] == []  # rank 1 has nothing to judge, and nothing to complain of
    for got in (rank0, rank1):
        assert got["notes"] == ["every rank read the whole file: duplicates='last'/'mean' merge "
                                "rows that may sit on different ranks"]


def test_ids_of_different_types_on_the_ranks_fall_back_to_the_whole_file(runs: Path) -> None:
    got = _read(runs, "mixed", 0)
    assert got["notes"] == ["every rank read the whole file: the ranks' rows hold ids of "
                            "different types (e.g. text on one, numbers on another)"]
    one = train_run(MODELS["biased-mf"](embedding_dim=4), TrainConfig(**TRAIN),
                    str(runs / "mixed.parquet"), split_spec=SPEC)
    assert got["users"] == one.recommender.users.to_list()  # text ids, as one process keeps them


@pytest.mark.parametrize(("name", "why", "test_rows"), [
    ("header.csv", "rank 0's part of the file holds no ratings", 8),
    ("hashed.parquet", "ids past int64 (e.g. uint64 hashes) are read whole", 240)])
def test_a_part_without_ratings_or_with_ids_past_int64_is_read_whole(
        runs: Path, name: str, why: str, test_rows: int) -> None:
    for rank in (0, 1):
        got = _read(runs, name, rank)
        assert f"every rank read the whole file: {why}" in got["notes"], got["notes"]
    assert _read(runs, name, 0)["test"] == test_rows  # rank 0 evaluated the whole test split
