"""In-process latency of top-N for one user over an ML-25M-sized catalogue (60,000 items).

Usage: python benchmarks/topn_latency.py [--model biased-mf] [--items 60000] [--users 20000]
                                         [--calls 2000] [--threads N] [--preset ranking]
                                         [--http]

Builds the model directly from its config (random weights; latency does not
depend on training), wraps it in a Recommender with about 100 seen ratings per
user, warms up, then times ``rec.recommend(user=..., n=10)`` for random users,
plus ``similar_items``, ``recommend_for_ratings`` (fold-in of 20 ratings) and a
1,000-user batch. ``--preset`` takes the model (and what its scores mean) from a
preset; ``--http`` also times ``GET /users/{id}/recommendations?n=10`` through the
FastAPI app in process (Starlette's TestClient, no network). Prints a table and
writes benchmarks/results/topn_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from embrec.config import TrainConfig
from embrec.data.ids import IdIndex
from embrec.recommender import Recommender

RESULTS = Path(__file__).parent / "results"


def build(model_name: str, n_users: int, n_items: int, seen_per_user: int,
          seed: int = 0, preset: str | None = None) -> Recommender:
    """A recommender around an untrained model and random seen ratings."""
    from embrec.models import MODELS
    from embrec.presets import PRESETS

    torch.manual_seed(seed)
    config = PRESETS[preset].model if preset else MODELS[model_name]()
    model = config.build(n_users, n_items, scale=(0.5, 5.0), mean=3.5).eval()
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_users), seen_per_user)
    cols = rng.integers(0, n_items, len(rows))
    keep = np.unique(rows.astype(np.int64) * n_items + cols, return_index=True)[1]
    ratings = rng.integers(1, 11, len(keep)).astype(np.float32) / 2
    seen = sp.csr_matrix((ratings, (rows[keep], cols[keep])), shape=(n_users, n_items))
    users = IdIndex(np.arange(1, n_users + 1), kind="user")
    items = IdIndex(np.sort(rng.choice(209_171, n_items, replace=False)) + 1, kind="item")
    train = PRESETS[preset].train if preset else TrainConfig()
    scores = "rating" if train.loss == "rating" or train.loss.startswith("rating+") else "ranking"
    return Recommender(model, config, train, users, items, (0.5, 5.0), 3.5, seen,
                       metadata={"scores": scores, "preset": preset})


def time_calls(call: Callable[[int], Any], arguments: np.ndarray,
               warmup: int = 50) -> dict[str, float]:
    """Milliseconds per call, wall clock (p50, p90, p99, mean, max) and on-CPU (p50, p99).

    The on-CPU time (``time.thread_time``) leaves out the time the thread
    waited for a core, which on a shared 2-core box is most of the wall-clock tail.
    """
    for argument in arguments[:warmup]:
        call(int(argument))
    wall, cpu = np.empty(len(arguments)), np.empty(len(arguments))
    for n, argument in enumerate(arguments):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        call(int(argument))
        wall[n] = (time.perf_counter_ns() - start) / 1e6
        cpu[n] = (time.thread_time_ns() - start_cpu) / 1e6
    return {"p50_ms": float(np.percentile(wall, 50)), "p90_ms": float(np.percentile(wall, 90)),
            "p99_ms": float(np.percentile(wall, 99)), "mean_ms": float(wall.mean()),
            "max_ms": float(wall.max()), "cpu_p50_ms": float(np.percentile(cpu, 50)),
            "cpu_p99_ms": float(np.percentile(cpu, 99)), "calls": len(arguments)}


def http_calls(rec: Recommender, users: np.ndarray) -> dict[str, dict[str, float]]:
    """Time the recommendations endpoint through the app, in process, and ``GET /health``
    (the test client's own cost per request)."""
    import warnings

    from embrec.serving import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with TestClient(create_app(rec)) as client:
        def call(user: int) -> None:
            response = client.get(f"/users/{user}/recommendations?n=10")
            assert response.status_code == 200, response.text

        def health(_: int) -> None:
            client.get("/health")

        return {"GET /users/{id}/recommendations?n=10": time_calls(call, users),
                "GET /health (client overhead)": time_calls(health, users)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="biased-mf")
    parser.add_argument("--items", type=int, default=60_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seen", type=int, default=100, help="seen ratings per user")
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--preset", help="take the model from this preset (e.g. ranking)")
    parser.add_argument("--http", action="store_true", help="also time the HTTP endpoint")
    parser.add_argument("--out", type=Path, default=RESULTS / "topn_latency.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = build(args.model, args.users, args.items, args.seen, preset=args.preset)
    rng = np.random.default_rng(1)
    users = rng.integers(1, args.users + 1, args.calls)
    items = rec.items.ids[rng.integers(0, args.items, args.calls)]
    fold = {int(i): float(r) for i, r in zip(rec.items.ids[:20], rng.integers(1, 6, 20),
                                             strict=True)}
    results: dict[str, Any] = {
        "recommend(user, n=10)": time_calls(lambda u: rec.recommend(user=u, n=10), users),
        "similar_items(item, n=10)": time_calls(lambda i: rec.similar_items(i, n=10), items),
        "recommend_for_ratings(20 ratings)": time_calls(
            lambda _: rec.recommend_for_ratings(fold, n=10), users[: max(args.calls // 10, 60)]),
    }
    if args.http:
        results.update(http_calls(rec, users))
    batch = rng.integers(1, args.users + 1, 1000)
    start = time.perf_counter()
    rec.recommend(users=batch, n=10)
    seconds = time.perf_counter() - start
    results["recommend(users=1000, n=10)"] = {"seconds": seconds, "users_per_s": 1000 / seconds}
    report = {"model": rec.model_name, "preset": args.preset, "scores": rec.scores,
              "items": args.items, "users": args.users,
              "load_average": list(os.getloadavg()),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "results": results}
    print(f"{rec.model_name} ({args.preset or 'defaults'}): {args.items:,} items, "
          f"{args.users:,} users, {torch.get_num_threads()} torch threads")
    print(f"{'call':<36}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
          f"{'cpu p50':>9}{'cpu p99':>9}")
    for name, row in results.items():
        if "p50_ms" in row:
            print(f"{name:<36}{row['p50_ms']:>9.3f}{row['p90_ms']:>9.3f}{row['p99_ms']:>9.3f}"
                  f"{row['mean_ms']:>9.3f}{row['cpu_p50_ms']:>9.3f}{row['cpu_p99_ms']:>9.3f}")
        else:
            print(f"{name:<36}{row['seconds']:.3f} s ({row['users_per_s']:,.0f} users/s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
