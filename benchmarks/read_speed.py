"""How fast, and in how much memory, embrec.data.readers.read_ratings reads an ML-25M-sized CSV.

Usage: python benchmarks/read_speed.py [--ratings 25e6] [--repeats 2] [--keep DIR]

Writes a synthetic ``ratings.csv`` in ML-25M's format (``userId,movieId,rating,timestamp``,
half stars written as ``4.0``/``3.5``, sparse movie ids) to a temporary folder with
pyarrow, then reads it with ``read_ratings`` in a fresh subprocess per repeat. Memory
is the subprocess's peak resident set (``VmHWM``) minus its peak right after the
imports. Prints a table and writes benchmarks/results/read_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from embrec.data.synthetic import generate

RESULTS = Path(__file__).parent / "results"
HEADER = b"userId,movieId,rating,timestamp\n"

CHILD = """
import json, sys, time
import numpy, pandas, pyarrow, pyarrow.csv
from embrec.data.readers import read_ratings
def vmhwm():  # not ru_maxrss: Linux carries that over from the parent across execve
    with open("/proc/self/status") as status:
        return int(next(x for x in status if x.startswith("VmHWM:")).split()[1])
base = vmhwm()
start = time.perf_counter()
ratings = read_ratings(sys.argv[1])
seconds = time.perf_counter() - start
peak = vmhwm()
print(json.dumps({"seconds": seconds, "rows": len(ratings), "users": ratings.n_users,
                  "items": ratings.n_items, "base_mb": base / 1024, "peak_mb": peak / 1024}))
"""


def write_csv(path: Path, n_ratings: int, seed: int = 0) -> float:
    """Write ``n_ratings`` synthetic ratings in ML-25M's CSV format; return seconds taken."""
    start = time.perf_counter()
    n_users, n_items = 162_541, 59_047  # ML-25M's counts
    sy = generate(n_users, n_items, n_ratings, rank=8, scale=(0.5, 5.0), half_stars=True,
                  seed=seed)
    ratings = sy.ratings
    del sy
    order = np.argsort(ratings.user.astype(np.int64) * n_items + ratings.item)  # as GroupLens
    movie_ids = np.sort(np.random.default_rng(seed).choice(209_171, n_items, replace=False)) + 1
    labels = pa.array([f"{x / 2:.1f}" for x in range(11)])
    codes = pa.array((ratings.rating * 2).astype(np.int8))
    table = pa.table({
        "userId": pa.array(ratings.user[order] + 1),
        "movieId": pa.array(movie_ids[ratings.item[order]].astype(np.int32)),
        "rating": labels.take(codes.take(pa.array(order))),
        "timestamp": pa.array(ratings.timestamp[order]),
    })
    with path.open("wb") as out:
        out.write(HEADER)
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False,
                                                       quoting_style="none"))
    return time.perf_counter() - start


def read_once(path: Path) -> dict[str, float]:
    """Read ``path`` with read_ratings in a fresh interpreter and return its measurements."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True,
                          capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=float, default=25e6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write the CSV here and keep it")
    args = parser.parse_args()
    n_ratings = int(args.ratings)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "ratings.csv"
        write_seconds = write_csv(path, n_ratings)
        size_mb = path.stat().st_size / 1e6
        runs = [read_once(path) for _ in range(args.repeats)]
    best = min(runs, key=lambda run: run["seconds"])
    extra_mb = max(run["peak_mb"] - run["base_mb"] for run in runs)
    print(f"{'ratings':>12} {'CSV MB':>8} {'write s':>8} {'read s':>8} {'M rows/s':>9} "
          f"{'peak MB':>8} {'+MB':>7}")
    print(f"{n_ratings:>12,} {size_mb:>8.0f} {write_seconds:>8.1f} {best['seconds']:>8.2f} "
          f"{n_ratings / best['seconds'] / 1e6:>9.2f} {best['peak_mb']:>8.0f} {extra_mb:>7.0f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "read_speed.json"
    out.write_text(json.dumps({
        "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
        "ratings": n_ratings, "csv_mb": round(size_mb, 1), "write_seconds": round(write_seconds, 2),
        "read_seconds": [round(run["seconds"], 2) for run in runs],
        "peak_rss_mb": round(best["peak_mb"]), "peak_minus_imports_mb": round(extra_mb),
        "rows": best["rows"], "users": best["users"], "items": best["items"],
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
