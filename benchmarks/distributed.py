"""Data-parallel training on this machine: 1 process vs 2 gloo ranks, exchange cost, 25M ratings.

Usage::

    python benchmarks/distributed.py --out benchmarks/results/distributed.md
    python benchmarks/distributed.py --parts comm --out /tmp/comm.md    # one part

Parts:

- ``ml100k``: ML-100K, random 90/10 split (seed 0), ``default`` preset, trained
  by ``python -m embrec train`` and by ``torchrun --standalone --nproc_per_node=2
  -m embrec train``: test RMSE, fit seconds (as ``--json`` reports them).
- ``comm``: 2 gloo ranks; per step, the touched-row exchange
  (:func:`embrec.distributed.exchange.exchange`: 1,024 ratings per rank, so up
  to 1,024 touched rows of width 32 each; one all-reduce, one all-gather) next
  to a dense all-reduce of the whole table's gradient, for tables of 10k to 4M
  rows. Median of repeats.
- ``big``: 25M synthetic ML-25M-shaped ratings (162,541 users, 59,047 items, as
  ``benchmarks/scaling.py`` generates them), biased MF with the scaling
  benchmark's settings, 1 epoch: one process, then 2 ranks under torchrun;
  seconds per epoch and peak resident memory of each rank.
- ``sharded``: the same 25M ratings written once to a Parquet file (1M-row
  groups) and trained through ``embrec.commands.runs.train_run`` (read, 90/10 split,
  fit, evaluate): one process, 2 ranks that each read the whole file, and 2
  ranks that each read only their row groups; peak memory (``VmHWM``) per rank.

The machine is shared: each row records the 1-minute load average when it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
SIZES = (10_000, 100_000, 1_000_000, 4_000_000)


def ml100k(folder: Path) -> list[dict[str, Any]]:
    """Train the default preset on ML-100K in 1 process and in 2 ranks."""
    train = ["-m", "embrec", "train", "--data", "ml-100k", "--preset", "default",
             "--test-size", "0.1", "--seed", "0", "--json", "--quiet"]
    rows = []
    for name, launcher in (("1 process", [sys.executable]), ("torchrun, 2 ranks", TORCHRUN)):
        load, started = os.getloadavg()[0], time.perf_counter()
        done = subprocess.run([*launcher, *train, "--out", str(folder / name.split()[0])],
                              env=ENV, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout)
        rows.append({"run": name, "test_rmse": result["test"]["rmse"],
                     "fit_seconds": result["fit_seconds"],
                     "wall_seconds": time.perf_counter() - started,
                     "rows_per_rank": result["rows_per_rank"], "load": load})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def comm_worker(rank: int, port: int, out: str) -> None:
    """One of 2 ranks: time the touched-row exchange and a dense all-reduce per table size."""
    import torch
    import torch.distributed as dist

    from embrec.distributed.exchange import Group, exchange

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    torch.set_num_threads(1)
    group = Group(rank, 2, torch.device("cpu"), owned=False)
    generator = torch.Generator().manual_seed(rank)
    results = []
    for rows in SIZES:
        grad = torch.zeros((rows, 32))
        dense = _timed(lambda g=grad: dist.all_reduce(g), 3 if rows >= 1_000_000 else 10)
        del grad

        def touched(n: int = rows) -> None:
            index = torch.randint(n, (1024,), generator=generator)
            exchange(group, torch.zeros(1), [(index, torch.randn((1024, 32), generator=generator))],
                     0.5)

        results.append({"rows": rows, "dense_ms": dense, "exchange_ms": _timed(touched, 50),
                        "load": os.getloadavg()[0]})
    if rank == 0:
        Path(out).write_text(json.dumps(results))
    dist.destroy_process_group()


def _timed(call: Any, repeats: int) -> float:
    """Median milliseconds of ``call`` (after one warm-up), both ranks starting together."""
    import torch.distributed as dist

    call()
    times = []
    for _ in range(repeats):
        dist.barrier()
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def comm(folder: Path) -> list[dict[str, Any]]:
    """Spawn 2 gloo ranks on 127.0.0.1 and collect their timings."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = folder / "comm.json"
    mp.start_processes(comm_worker, args=(port, str(out)), nprocs=2, start_method="spawn")
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def big_worker(path: Path, out: Path) -> None:
    """Fit biased MF on the arrays at ``path`` (1 process or a torchrun rank); write one JSON."""
    import numpy as np

    from embrec.config import TrainConfig
    from embrec.data.ids import IdIndex
    from embrec.data.ratings import Ratings
    from embrec.models import BiasedMFConfig
    from embrec.training import fit

    shape = json.loads((path / "shape.json").read_text())
    user, item, rating = (np.load(path / f"{name}.npy") for name in ("user", "item", "rating"))
    ratings = Ratings(user, item, rating, IdIndex(np.arange(shape["n_users"]), kind="user"),
                      IdIndex(np.arange(shape["n_items"]), kind="item"), scale=(1.0, 5.0))
    config = TrainConfig(epochs=1, batch_size=65_536, learning_rate=0.01, weight_decay=0.02,
                         schedule="onecycle", seed=0, num_threads=1)
    rec = fit(BiasedMFConfig(embedding_dim=32, init_std=0.01), ratings, config)
    rank = int(os.environ.get("RANK", "0"))
    result = {"rank": rank, "world_size": rec.metadata["world_size"],
              "rows": rec.metadata["rows_per_rank"][rank],
              "epoch_seconds": rec.history[0]["seconds"],
              "fit_seconds": rec.metadata["fit_seconds"],
              "train_rmse": rec.history[0]["train_rmse"],
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    (out / f"big-{result['world_size']}-{rank}.json").write_text(json.dumps(result))


def big(folder: Path, cache: Path) -> list[dict[str, Any]]:
    """25M ratings: 1 process, then 2 ranks under torchrun."""
    sys.path.insert(0, str(HERE))
    from scaling import generate_arrays

    path = generate_arrays("25M", cache)
    rows = []
    for launcher, world in (([sys.executable], 1), (TORCHRUN, 2)):
        load = os.getloadavg()[0]
        subprocess.run([*launcher, str(Path(__file__).resolve()), "--big-worker", str(path),
                        "--folder", str(folder)], env=ENV, check=True)
        for rank in range(world):
            rows.append({**json.loads((folder / f"big-{world}-{rank}.json").read_text()),
                         "load": load})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def sharded_worker(parquet: Path, out: Path, mode: str) -> None:
    """One process or torchrun rank: ``train_run`` on the Parquet file; write one JSON."""
    sys.path.insert(0, str(HERE))
    from scaling import peak_rss_mib

    from embrec.commands.runs import SplitSpec, train_run
    from embrec.config import TrainConfig
    from embrec.models import BiasedMFConfig

    config = TrainConfig(epochs=1, batch_size=65_536, learning_rate=0.01, weight_decay=0.02,
                         schedule="onecycle", seed=0, num_threads=1)
    started = time.perf_counter()
    # duplicates="last" reads the same rows but makes every rank read the whole file
    result = train_run(BiasedMFConfig(embedding_dim=32, init_std=0.01), config, str(parquet),
                       split_spec=SplitSpec(test_size=0.1, seed=0),
                       read={"duplicates": "last"} if mode == "whole" else None)
    rank, rec = int(os.environ.get("RANK", "0")), result.recommender
    row = {"mode": mode, "rank": rank, "world_size": rec.metadata["world_size"],
           "rows": rec.metadata["rows_per_rank"][rank],
           "file_rows": rec.metadata.get("file_rows_per_rank", [None] * 2)[rank],
           "row_groups": rec.metadata.get("row_groups_per_rank", [None] * 2)[rank],
           "fit_seconds": rec.metadata["fit_seconds"],
           "run_seconds": time.perf_counter() - started,
           "test_rmse": result.metrics.get("test", {}).get("rmse"),
           "peak_rss_mib": peak_rss_mib(), "notes": result.notes}
    (out / f"sharded-{mode}-{rank}.json").write_text(json.dumps(row))


RECORDS = HERE / "results" / "distributed-sharded.json"
"""Every row the ``sharded`` part measured, by size and mode (a later run of a mode replaces it)."""


def sharded(folder: Path, cache: Path, size: str, modes: list[str]) -> list[dict[str, Any]]:
    """A Parquet file of ``size`` ratings: 1 process, 2 ranks reading it whole, 2 reading shards.

    Only ``modes`` are run; the other modes' rows come from :data:`RECORDS`.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from scaling import generate_arrays

    arrays = generate_arrays(size, cache) if modes else cache
    parquet = Path(tempfile.gettempdir()) / "embrec-sharded" / f"{size}.parquet"
    if modes and not parquet.exists():
        parquet.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({name: np.load(arrays / f"{name}.npy")
                          for name in ("user", "item", "rating")})
        pq.write_table(table, parquet, row_group_size=1_000_000)
        del table
    records = json.loads(RECORDS.read_text()) if RECORDS.exists() else []
    rows = [r for r in records if r["size"] == size and r["mode"] not in modes]
    for launcher, mode in (([sys.executable], "one"), (TORCHRUN, "whole"), (TORCHRUN, "shards")):
        if mode not in modes:
            continue
        load = os.getloadavg()[0]
        subprocess.run([*launcher, str(Path(__file__).resolve()), "--sharded-worker",
                        str(parquet), "--folder", str(folder), "--mode", mode], env=ENV,
                       check=True)
        for rank in range(1 if mode == "one" else 2):
            rows.append({**json.loads((folder / f"sharded-{mode}-{rank}.json").read_text()),
                         "load": load, "size": size, "date": time.strftime("%H:%M")})
            print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: (["one", "whole", "shards"].index(r["mode"]), r["rank"]))
    kept = [r for r in records if r["size"] != size]
    RECORDS.write_text(json.dumps(kept + rows, indent=1) + "\n")
    return rows


def report(parts: dict[str, list[dict[str, Any]]], out: Path, argv: list[str]) -> None:
    """Write the Markdown tables with the machine facts."""
    import torch

    lines = ["# Data-parallel training: 1 process vs 2 gloo ranks on one machine", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M')} UTC",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, shared with other "
             "jobs (load average, 1 min, next to each figure)",
             f"- python {platform.python_version()}, torch {torch.__version__}, gloo on loopback",
             f"- command: `python benchmarks/distributed.py {' '.join(argv)}`", ""]
    if "ml100k" in parts:
        lines += ["## ML-100K, random 90/10 split (seed 0), `default` preset", "",
                  "Both runs write a checkpoint at the end of every epoch (`--out` is given).", "",
                  "| run | test RMSE | fit s | wall s (incl. start-up) | rows per rank | load |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {r['test_rmse']:.9f} | {r['fit_seconds']:.2f} | "
                  f"{r['wall_seconds']:.1f} | {r['rows_per_rank']} | {r['load']:.1f} |"
                  for r in parts["ml100k"]]
        lines.append("")
    if "comm" in parts:
        lines += ["## Per-step exchange, 2 ranks, 32-wide rows (median ms)", "",
                  "Touched rows: 1,024 ratings per rank (up to 1,024 rows each, coalesced; "
                  "one all-reduce carrying the counts, one padded all-gather of rows and "
                  "indices). Dense: all-reduce of the whole table's gradient.", "",
                  "| table rows | touched-row exchange ms | dense all-reduce ms | load |",
                  "|---|---|---|---|"]
        lines += [f"| {r['rows']:,} | {r['exchange_ms']:.2f} | {r['dense_ms']:.1f} | "
                  f"{r['load']:.1f} |" for r in parts["comm"]]
        lines.append("")
    if "big" in parts:
        lines += ["## 25M synthetic ratings (ML-25M shape), biased MF, 1 epoch, batch 65,536", "",
                  "Every rank loads the whole ratings and draws the global permutation "
                  "(100 MB at 25M); only the training columns and the epoch's shuffled copies "
                  "are per shard.", "",
                  "| processes | rank | rows | epoch s | fit s | peak RSS MiB | load |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['world_size']} | {r['rank']} | {r['rows']:,} | "
                  f"{r['epoch_seconds']:.1f} | {r['fit_seconds']:.1f} | "
                  f"{r['peak_rss_mib']:,.0f} | {r['load']:.1f} |" for r in parts["big"]]
        lines.append("")
    if "sharded" in parts:
        lines += _sharded_lines(parts["sharded"], argv)
    out.parent.mkdir(parents=True, exist_ok=True)
    if parts.keys() == {"sharded"} and out.exists():  # keep the other parts' tables
        old = out.read_text().split("\n## ")
        kept = [part for part in old if "ratings from one Parquet file" not in part[:60]]
        lines = ["\n## ".join(kept).rstrip("\n"), "", *lines[lines.index("") + 6:]]
    out.write_text("\n".join(lines))


def _sharded_lines(rows: list[dict[str, Any]], argv: list[str]) -> list[str]:
    """The table of the ``sharded`` part."""
    names = {"one": "1 process", "whole": "2 ranks, each reads the whole file",
             "shards": "2 ranks, each reads its row groups"}
    lines = [f"## {rows[0]['size']} ratings from one Parquet file (1M-row groups), "
             "`embrec.commands.runs.train_run`: read, 90/10 random split, biased MF 32, 1 epoch, "
             "batch 65,536, 1 thread per rank, evaluate", "",
             f"Measured {time.strftime('%Y-%m-%d')} by `python benchmarks/distributed.py "
             f"{' '.join(argv)}` (rows of modes not run then come from "
             "`benchmarks/results/distributed-sharded.json`; `at` says when each ran). Peak RSS "
             "is each process's `VmHWM`. Test RMSE is rank 0's. \"Reads the whole file\" is "
             "forced with `duplicates='last'` (the file has no repeated pairs).", "",
             "| run | rank | training rows | file rows read | row groups | fit s | run s | "
             "test RMSE | peak RSS MiB | load | at (UTC) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rmse = "" if r["test_rmse"] is None else f"{r['test_rmse']:.6f}"
        read = "all" if r["file_rows"] is None else f"{r['file_rows']:,}"
        lines.append(f"| {names[r['mode']]} | {r['rank']} | {r['rows']:,} | {read} | "
                     f"{r['row_groups'] if r['row_groups'] is not None else 'all'} | "
                     f"{r['fit_seconds']:.1f} | {r['run_seconds']:.1f} | {rmse} | "
                     f"{r['peak_rss_mib']:,.0f} | {r['load']:.1f} | {r.get('date', '')} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for, print each row as JSON and optionally write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["ml100k", "comm", "big"],
                        choices=["ml100k", "comm", "big", "sharded"])
    parser.add_argument("--size", default="25M", help="ratings of the sharded part (1M, 25M)")
    parser.add_argument("--modes", nargs="*", default=["one", "whole", "shards"],
                        choices=["one", "whole", "shards"],
                        help="sharded part: runs to measure (the others come from the records; "
                             "none: only write the table from the records)")
    parser.add_argument("--sharded-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "embrec-scaling")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--big-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.big_worker:
        big_worker(args.big_worker, args.folder)
        return 0
    if args.sharded_worker:
        sharded_worker(args.sharded_worker, args.folder, args.mode)
        return 0
    parts: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = {"ml100k": lambda: ml100k(folder), "comm": lambda: comm(folder),
                "big": lambda: big(folder, args.cache),
                "sharded": lambda: sharded(folder, args.cache, args.size, args.modes)}
        for part in args.parts:
            parts[part] = runs[part]()
    if args.out:
        report(parts, args.out, argv if argv is not None else sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
