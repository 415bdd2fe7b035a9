"""How fast embrec.data.synthetic.generate draws MovieLens-like ratings.

Usage: python benchmarks/synthetic_speed.py [--sizes 1e6 1e7] [--repeats 2]

Users and items grow with the number of ratings in ML-25M's proportions
(about 150 ratings per user and 400 per item). Prints a table and writes
benchmarks/results/synthetic_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

from embrec.data.synthetic import generate

RESULTS = Path(__file__).parent / "results"


def shape_for(n_ratings: int) -> tuple[int, int]:
    """Users and items for ``n_ratings`` in roughly ML-25M's proportions."""
    return max(n_ratings // 150, 100), max(n_ratings // 400, 100)


def time_one(n_ratings: int, repeats: int) -> dict[str, float | int]:
    """Best-of-``repeats`` wall time of one generate() call."""
    n_users, n_items = shape_for(n_ratings)
    best = float("inf")
    for repeat in range(repeats):
        start = time.perf_counter()
        sy = generate(n_users, n_items, n_ratings, rank=8, noise=0.5, scale=(0.5, 5.0),
                      half_stars=True, seed=repeat)
        best = min(best, time.perf_counter() - start)
        noise_rmse = sy.noise_rmse
        del sy
    return {"ratings": n_ratings, "users": n_users, "items": n_items, "seconds": round(best, 3),
            "ratings_per_second": round(n_ratings / best), "noise_rmse": round(noise_rmse, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = [time_one(int(size), args.repeats) for size in args.sizes]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{'ratings':>12} {'users':>9} {'items':>8} {'seconds':>8} {'M ratings/s':>12}")
    for row in rows:
        print(f"{row['ratings']:>12,} {row['users']:>9,} {row['items']:>8,} "
              f"{row['seconds']:>8.2f} {float(row['ratings_per_second']) / 1e6:>12.2f}")
    print(f"peak resident memory of this process: {peak_gb:.2f} GB")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "synthetic_speed.json"
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                               "python": platform.python_version(), "rows": rows,
                               "peak_rss_gb": round(peak_gb, 2)}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
