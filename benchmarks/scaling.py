"""Training throughput and peak memory of biased MF on 1M, 10M and 25M synthetic ratings.

Usage::

    python benchmarks/scaling.py                              # 1M 10M 25M, 1 and 2 threads
    python benchmarks/scaling.py --sizes 1M --threads 1 --out benchmarks/results/scaling.md

Each size is generated once (MovieLens-shaped: ML-1M, ML-10M and ML-25M user and
item counts) and saved as int32/int32/float32 arrays; every measurement then runs
``fit`` in a fresh subprocess that loads those arrays, so its peak resident memory
(``VmHWM``) is the memory training that many ratings needs, the ratings
themselves included. Throughput is ratings x epochs per second of ``fit`` wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPES = {  # ratings: (users, items), as in MovieLens 1M, 10M and 25M
    "1M": (1_000_000, 6_040, 3_706),
    "10M": (10_000_000, 69_878, 10_677),
    "25M": (25_000_000, 162_541, 59_047),
}


def generate_arrays(size: str, folder: Path) -> Path:
    """Generate ``size`` synthetic ratings once and save them as ``.npy`` arrays."""
    from embrec.data.synthetic import generate

    n, users, items = SHAPES[size]
    path = folder / size
    if (path / "rating.npy").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    data = generate(n_users=users, n_items=items, n_ratings=n, rank=16, noise=0.8, seed=0)
    for name in ("user", "item", "rating"):
        np.save(path / f"{name}.npy", getattr(data.ratings, name))
    (path / "shape.json").write_text(json.dumps({"n_users": users, "n_items": items}))
    return path


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB, from ``VmHWM``.

    Not ``ru_maxrss``: Linux carries it across ``execve``, so a worker started by a
    parent that generated 25M ratings would report the parent's peak as its own.
    """
    with open("/proc/self/status") as status:
        return int(next(x for x in status if x.startswith("VmHWM:")).split()[1]) / 1024


def worker(path: Path, batch_size: int, epochs: int, threads: int) -> dict[str, Any]:
    """Load the arrays, fit biased MF, report seconds, throughput and peak memory."""
    import torch

    from embrec.config import TrainConfig
    from embrec.data.ids import IdIndex
    from embrec.data.ratings import Ratings
    from embrec.models import BiasedMFConfig
    from embrec.training import fit

    shape = json.loads((path / "shape.json").read_text())
    user, item, rating = (np.load(path / f"{name}.npy") for name in ("user", "item", "rating"))
    ratings = Ratings(user, item, rating, IdIndex(np.arange(shape["n_users"]), kind="user"),
                      IdIndex(np.arange(shape["n_items"]), kind="item"), scale=(1.0, 5.0))
    loaded = peak_rss_mib()
    config = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=0.01,
                         weight_decay=0.02, schedule="onecycle", seed=0, num_threads=threads)
    started = time.perf_counter()
    rec = fit(BiasedMFConfig(embedding_dim=32, init_std=0.01), ratings, config)
    seconds = time.perf_counter() - started
    train_seconds = sum(h["seconds"] for h in rec.history)
    return {"ratings": len(ratings), "epochs": epochs, "batch_size": batch_size,
            "threads": threads, "fit_seconds": seconds, "epoch_seconds": train_seconds,
            "ratings_x_epochs_per_s": len(ratings) * epochs / seconds,
            "train_rmse": rec.history[-1]["train_rmse"],
            "peak_rss_mib": peak_rss_mib(),
            "rss_after_load_mib": loaded, "torch": torch.__version__}


def measure(path: Path, batch_size: int, epochs: int, threads: int) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter and return its JSON result."""
    command = [sys.executable, __file__, "--worker", str(path), "--batch-size", str(batch_size),
               "--epochs", str(epochs), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(rows: list[dict[str, Any]], out: Path, argv: list[str]) -> None:
    """Write the Markdown table with the machine facts."""
    header = ["size", "threads", "batch", "epochs", "fit s", "ratings x epochs / s",
              "peak RSS MiB", "RSS after loading MiB", "train RMSE", "load avg (1 min)"]
    lines = ["# biased MF scaling on synthetic MovieLens-shaped ratings", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M')}",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
             f"- python {platform.python_version()}, torch {rows[0]['torch'] if rows else '?'}",
             f"- command: `python benchmarks/scaling.py {' '.join(argv)}`",
             "- model: biased MF, 32 factors; Adam (dense updates), one-cycle, weight decay 0.02",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["size"], r["threads"], r["batch_size"], r["epochs"], f"{r['fit_seconds']:.1f}",
                 f"{r['ratings_x_epochs_per_s']:,.0f}", f"{r['peak_rss_mib']:,.0f}",
                 f"{r['rss_after_load_mib']:,.0f}", f"{r['train_rmse']:.3f}", f"{r['load']:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Generate, measure, print and optionally save the scaling table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=65_536)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "embrec-scaling")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch_size, args.epochs, args.threads[0])))
        return 0
    rows = []
    for size in args.sizes:
        path = generate_arrays(size, args.cache)
        for threads in args.threads:
            load = os.getloadavg()[0]
            rows.append({"size": size, "load": load,
                         **measure(path, args.batch_size, args.epochs, threads)})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        report(rows, args.out, argv if argv is not None else sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
