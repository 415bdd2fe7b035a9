"""The measurements behind ``benchmarks/engine.py``, each run alone in a fresh interpreter.

``python benchmarks/engine_workers.py NAME '{"json": "arguments"}'`` prints one JSON
object on its last line. Workers that time a baseline (``libmf``) import only
NumPy, so they run under a separate interpreter (``--baseline-python``) where
embrec is not installed. Data arrive as ``user.npy``/``item.npy``/``rating.npy``
(int32 indices 0..n-1, float32 ratings) plus ``shape.json`` in one folder, so
every framework trains on exactly the same rows.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def load_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Return (user, item, rating, shape) saved in ``folder``."""
    shape = json.loads((folder / "shape.json").read_text())
    user, item, rating = (np.load(folder / f"{name}.npy") for name in ("user", "item", "rating"))
    return user, item, rating, shape


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (``VmHWM``).

    Not ``ru_maxrss``: Linux keeps that across ``execve``, so a worker would
    report its parent's peak (the parent that generated 25M ratings) as its own.
    """
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def embrec_ratings(folder: Path) -> Any:
    """The arrays of ``folder`` as embrec ``Ratings`` (raw ids are the indices)."""
    from embrec.data.ids import IdIndex
    from embrec.data.ratings import Ratings

    user, item, rating, shape = load_arrays(folder)
    return Ratings(user, item, rating, IdIndex(np.arange(shape["n_users"]), kind="user"),
                   IdIndex(np.arange(shape["n_items"]), kind="item"), scale=(1.0, 5.0))


def catalogue_embrec(data: str, threads: int = 1, huge_pages: bool = True) -> dict[str, Any]:
    """``embrec``'s ``default`` preset (the per-rating kernel), one epoch, whole ``fit`` timed.

    ``huge_pages=False`` keeps every table on torch's allocator (the comparison of
    ``engine.py hugepages``).
    """
    import torch

    import embrec
    from embrec.presets import fit_preset
    from embrec.training import sparse

    if not huge_pages:
        sparse.HUGE_MIN_BYTES = 1 << 62

    ratings = embrec_ratings(Path(data))
    started = time.perf_counter()
    rec = fit_preset("default", ratings, epochs=1, num_threads=threads, seed=0)
    seconds = time.perf_counter() - started
    epoch = rec.history[0]["seconds"]
    return {"framework": "embrec", "huge_pages": huge_pages, "epoch_s": epoch, "fit_s": seconds,
            "ratings_per_s": len(ratings) / epoch, "train_rmse": rec.history[0]["train_rmse"],
            "step_path": rec.metadata.get("step_path"), "threads": rec.metadata.get("threads"),
            "peak_rss_mib": peak_rss_mib(), "version": f"embrec {embrec.__version__}, "
            f"torch {torch.__version__}"}


def catalogue_torch(data: str, threads: int = 1) -> dict[str, Any]:
    """A plain PyTorch loop: sparse embeddings + SparseAdam, dense Adam for the global bias."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    warm_up()  # torch.optim's lazy imports take seconds on first use: keep them out of fit_s
    torch.manual_seed(0)
    user_np, item_np, rating_np, shape = load_arrays(Path(data))
    started = time.perf_counter()
    user, item = torch.from_numpy(user_np).long(), torch.from_numpy(item_np).long()
    rating = torch.from_numpy(rating_np)
    tables = nn.ModuleDict({
        "user": nn.Embedding(shape["n_users"], 32, sparse=True),
        "item": nn.Embedding(shape["n_items"], 32, sparse=True),
        "user_bias": nn.Embedding(shape["n_users"], 1, sparse=True),
        "item_bias": nn.Embedding(shape["n_items"], 1, sparse=True)})
    for name, table in tables.items():
        nn.init.normal_(table.weight, std=0.0 if "bias" in name else 0.01)
    mean = nn.Parameter(torch.tensor(float(rating.mean())))
    sparse = torch.optim.SparseAdam(list(tables.parameters()), lr=0.01)
    dense = torch.optim.Adam([mean], lr=0.01)
    epoch_started = time.perf_counter()
    order = torch.randperm(len(rating))
    squared = 0.0
    for rows in torch.split(order, 2048):
        u, i, r = user[rows], item[rows], rating[rows]
        prediction = ((tables["user"](u) * tables["item"](i)).sum(1) + mean
                      + tables["user_bias"](u)[:, 0] + tables["item_bias"](i)[:, 0])
        loss = (prediction - r).square().mean()
        sparse.zero_grad()
        dense.zero_grad()
        loss.backward()
        sparse.step()
        dense.step()
        squared += float(loss.detach()) * len(rows)
    done = time.perf_counter()
    return {"framework": "pytorch SparseAdam loop", "epoch_s": done - epoch_started,
            "fit_s": done - started, "ratings_per_s": len(rating) / (done - epoch_started),
            "train_rmse": (squared / len(rating)) ** 0.5, "threads": threads,
            "peak_rss_mib": peak_rss_mib(), "version": f"torch {torch.__version__}"}


def warm_up() -> None:
    """One step of each optimiser on a one-row table (first-use imports, not training)."""
    import torch
    from torch import nn

    table, scalar = nn.Embedding(1, 1, sparse=True), nn.Parameter(torch.zeros(()))
    sparse, dense = torch.optim.SparseAdam(table.parameters()), torch.optim.Adam([scalar])
    (table(torch.zeros(1, dtype=torch.long)).sum() + scalar).backward()
    sparse.step()
    dense.step()


def catalogue_libmf(data: str, threads: int = 2, passes: int = 20) -> dict[str, Any]:
    """LIBMF (PyPI ``libmf``): ``passes`` SGD passes, 32 factors, ``threads`` threads."""
    from importlib.metadata import version

    from libmf import mf  # prints which shared object it loaded (ignored: not the last line)

    user, item, rating, _ = load_arrays(Path(data))
    matrix = np.stack([user.astype(np.float32), item.astype(np.float32), rating], axis=1)
    engine = mf.MF(k=32, nr_threads=threads, nr_iters=passes, quiet=True)
    started = time.perf_counter()
    engine.fit(matrix)
    seconds = time.perf_counter() - started
    # the binding's predict() returns wrong values; score with the factors themselves
    users, items = engine.p_factors(), engine.q_factors()
    u, i, r = user[:100_000], item[:100_000], rating[:100_000]
    known = (u < len(users)) & (i < len(items))
    error = (users[u[known]] * items[i[known]]).sum(1) - r[known]
    rmse = float(np.sqrt(np.mean(error.astype(np.float64) ** 2)))
    return {"framework": f"LIBMF ({passes} passes, {threads} threads)", "fit_s": seconds,
            "epoch_s": seconds / passes, "ratings_per_s": len(rating) * passes / seconds,
            "train_rmse": rmse, "threads": threads, "peak_rss_mib": peak_rss_mib(),
            "version": f"libmf {version('libmf')}"}


def scale(data: str, threads: int) -> dict[str, Any]:
    """The ``default`` preset, one epoch, on the arrays in ``data``; seconds and peak memory."""
    from embrec.presets import fit_preset

    ratings = embrec_ratings(Path(data))
    loaded = peak_rss_mib()
    started = time.perf_counter()
    rec = fit_preset("default", ratings, epochs=1, num_threads=threads, seed=0)
    seconds = time.perf_counter() - started
    epoch = rec.history[0]["seconds"]
    return {"ratings": len(ratings), "n_users": ratings.n_users, "n_items": ratings.n_items,
            "threads": threads, "fit_s": seconds, "epoch_s": epoch,
            "ratings_per_s": len(ratings) / epoch, "train_rmse": rec.history[0]["train_rmse"],
            "rss_after_load_mib": loaded, "peak_rss_mib": peak_rss_mib()}


def correctness(data: str, weight_decay: float, bias_weight_decay: float) -> dict[str, Any]:
    """Mean prediction over the training pairs vs the mean training rating (``default``)."""
    from embrec.presets import fit_preset

    ratings = embrec_ratings(Path(data))
    rec = fit_preset("default", ratings, weight_decay=weight_decay,
                     bias_weight_decay=bias_weight_decay, seed=0, num_threads=1)
    raw = rec.predict_indices(ratings.user, ratings.item, clip=False)
    clipped = rec.predict_indices(ratings.user, ratings.item, clip=True)
    mean = float(np.mean(ratings.rating, dtype=np.float64))
    return {"weight_decay": weight_decay, "bias_weight_decay": bias_weight_decay,
            "train_mean": mean, "mean_prediction": float(np.mean(raw, dtype=np.float64)),
            "mean_prediction_clipped": float(np.mean(clipped, dtype=np.float64)),
            "gap": float(np.mean(raw, dtype=np.float64)) - mean,
            "gap_clipped": float(np.mean(clipped, dtype=np.float64)) - mean,
            "train_rmse": rec.history[-1]["train_rmse"]}


def first_fit(pause: bool = True, fused: bool = True) -> dict[str, Any]:
    """A fresh process's first ``movielens-notebook`` fit (ML-100K 80/20, seed 0).

    ``pause=False`` leaves Python's cycle collector on during the fit (the
    comparison of ``engine.py collector``); collections during it are counted.
    ``fused=False`` trains through the general loop instead of the fused MLP step
    (``engine.py fused``).
    """
    import gc

    import embrec
    from embrec.presets import fit_preset
    from embrec.training import process
    from embrec.training.fused import FusedKerasMLP

    FusedKerasMLP.ENABLED = fused

    ratings = embrec.load_dataset("ml-100k")
    order = np.random.default_rng(0).permutation(len(ratings))
    train = ratings.take(order[: int(0.8 * len(ratings))])
    if not pause:
        process.paused = contextlib.nullcontext  # type: ignore[assignment]
    counts = [0, 0, 0]

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            counts[info["generation"]] += 1

    gc.callbacks.append(count)
    started = time.perf_counter()
    rec = fit_preset("movielens-notebook", train, seed=0)
    return {"pause": pause, "fused": fused, "fit_s": time.perf_counter() - started,
            "epoch_s": sum(h["seconds"] for h in rec.history),
            "train_rmse": rec.history[-1]["train_rmse"], "collections_by_generation": counts}


WORKERS = {"catalogue-embrec": catalogue_embrec, "catalogue-torch": catalogue_torch,
           "catalogue-libmf": catalogue_libmf, "scale": scale, "correctness": correctness,
           "first-fit": first_fit}

if __name__ == "__main__":
    result = WORKERS[sys.argv[1]](**json.loads(sys.argv[2]))
    print(json.dumps(result))
