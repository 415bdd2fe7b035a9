"""Peer-library rating-prediction worker: fit one system on a split, print one JSON line.

Usage (under the peers virtualenv, which has ``libmf``, ``lenskit`` and ``scikit-surprise``)::

    /work/peers/bin/python benchmarks/peers.py SYSTEM SPLIT.npz [--params JSON] [--threads N]

``SPLIT.npz`` holds ``train_user, train_item`` (int64 raw ids), ``train_rating`` (float32) and
``test_user, test_item, test_rating`` with the same meaning. ``--params`` is merged over the
system's defaults below; ``--threads`` defaults to 2.

Systems
-------
``libmf``
    LIBMF real-valued matrix factorisation (``fun=0``, squared loss) through PyPI ``libmf``
    0.9.2's ctypes binding. Defaults ``{"factors": 32, "lambda": 0.01, "iterations": 20}``;
    ``lambda`` is the L2 weight on both P and Q (``lambda_p2``/``lambda_q2``), the L1 weights are
    0. Optional ``eta`` (learning rate) and ``bins`` (``nr_bins``) default to the bundled C
    library's own ``mf_get_default_param()`` values (eta 0.1, 26 bins); that LIBMF build's
    parameter struct has no epsilon/alpha/c fields. ``nr_threads`` is ``--threads``;
    ``copy_data`` is false, as in LIBMF's own ``mf-train``. Raw ids are mapped to 0..n-1 first.
    LIBMF has no bias terms. Unseen users/items get ``model.b``, the training-rating mean
    (LIBMF's ``mf_predict`` fallback). The binding reads the training array row-major
    (n, 3) but the prediction array column-major, so the latter is passed Fortran-ordered.
``lenskit-als``
    LensKit 2025's biased ALS, ``lenskit.als.BiasedMFScorer``. Defaults
    ``{"factors": 50, "iterations": 10}`` (``embedding_size``, ``epochs``); other keys go to
    its config unchanged (LensKit defaults: regularization 0.1, damping 5, user_embeddings
    True). Threads: ``LK_NUM_THREADS=--threads``, ``LK_NUM_BACKEND_THREADS=1``,
    ``LK_NUM_PROCS=1`` are set before LensKit is imported and ``lenskit.parallel.initialize``
    is called with the same values. Predictions go through LensKit's ``predict_pipeline``
    (history lookup, the scorer, ``BiasScorer`` fallback) and ``lenskit.batch.predict``
    in-process, one query per test user; with ``user_embeddings=True`` the scorer re-solves
    each user's embedding from their training history. Unseen users/items: ``BiasScorer``
    (global mean plus whichever of user/item bias is known).
``surprise-svd``
    Surprise's ``SVD()`` with its defaults (100 factors, 20 epochs, lr 0.005, reg 0.02,
    biased, unseeded); ``--params`` are its keyword arguments. Single-threaded (Cython SGD),
    so ``--threads`` has no effect. Surprise has only per-pair prediction, so the test pairs
    are looped over with ``algo.predict``; unseen users/items get SVD's own estimate (global
    mean plus the known bias terms).

Timing and scoring
------------------
``fit_seconds`` is the wall time (``time.perf_counter``) of the training call alone:
``MF.fit`` for LIBMF, ``BiasedMFScorer.train`` for LensKit (the other pipeline components
are trained afterwards, untimed), ``SVD.fit`` for Surprise. Id mapping and building each
library's data structures (LensKit ``Dataset``, Surprise ``Trainset``) happen before the
clock starts; prediction is timed separately as ``predict_seconds``. Every system's
predictions are clipped to the training ratings' [min, max] and the RMSE is computed here
with numpy. ``unknown`` counts test pairs whose user or item is absent from training.
``peak_rss_mib`` is ``ru_maxrss / 1024`` of this process.

All library output (including LIBMF's C++ ``cout`` and the binding's import-time prints) is
sent to stderr; stdout carries only the final JSON line.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULTS: dict[str, dict[str, Any]] = {
    "libmf": {"factors": 32, "lambda": 0.01, "iterations": 20},
    "lenskit-als": {"factors": 50, "iterations": 10},
    "surprise-svd": {},
}


@dataclass
class Split:
    """Training and test arrays of one split."""

    train_user: np.ndarray
    train_item: np.ndarray
    train_rating: np.ndarray
    test_user: np.ndarray
    test_item: np.ndarray
    test_rating: np.ndarray

    @classmethod
    def load(cls, path: str) -> Split:
        with np.load(path) as z:
            return cls(
                train_user=np.asarray(z["train_user"], dtype=np.int64),
                train_item=np.asarray(z["train_item"], dtype=np.int64),
                train_rating=np.asarray(z["train_rating"], dtype=np.float32),
                test_user=np.asarray(z["test_user"], dtype=np.int64),
                test_item=np.asarray(z["test_item"], dtype=np.int64),
                test_rating=np.asarray(z["test_rating"], dtype=np.float32),
            )


@dataclass
class Outcome:
    """What a system runner returns: raw predictions and its bookkeeping."""

    params: dict[str, Any]
    fit_seconds: float
    predict_seconds: float
    predictions: np.ndarray
    fallback: str
    threads: int


def _stdout_to_stderr() -> int:
    """Point fd 1 at stderr for everything (C++ included); return a dup of the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


def _dense_ids(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map training ids to 0..n-1; test ids absent from training become -1."""
    vocab, train_idx = np.unique(train, return_inverse=True)
    pos = np.searchsorted(vocab, test).clip(0, len(vocab) - 1)
    test_idx = np.where(vocab[pos] == test, pos, -1)
    return train_idx.astype(np.int64), test_idx.astype(np.int64)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- libmf


def _libmf_options(mf: Any, params: dict[str, Any], threads: int) -> Any:
    """LIBMF's own default parameter struct with our overrides applied."""
    mf.mf.mf_get_default_param.restype = mf.MFParam
    opts = mf.mf.mf_get_default_param()
    opts.fun = mf.P_L2_MFR
    opts.k = int(params["factors"])
    opts.nr_iters = int(params["iterations"])
    opts.nr_threads = threads
    opts.lambda_p1 = opts.lambda_q1 = 0.0
    opts.lambda_p2 = opts.lambda_q2 = float(params["lambda"])
    opts.eta = float(params.get("eta", opts.eta))
    opts.nr_bins = int(params.get("bins", opts.nr_bins))
    opts.quiet = True
    opts.copy_data = False
    return opts


def run_libmf(split: Split, params: dict[str, Any], threads: int) -> Outcome:
    from libmf import mf

    unknown_keys = set(params) - {"factors", "lambda", "iterations", "eta", "bins"}
    if unknown_keys:
        raise SystemExit(f"libmf: unknown params {sorted(unknown_keys)}")
    u, tu = _dense_ids(split.train_user, split.test_user)
    i, ti = _dense_ids(split.train_item, split.test_item)
    if max(u.max(), i.max()) >= 2**24:
        raise SystemExit("libmf: the binding passes indices as float32; > 2**24 ids are inexact")
    train = np.ascontiguousarray(np.column_stack([u, i, split.train_rating]), dtype=np.float32)
    test = np.asfortranarray(np.column_stack([tu, ti]), dtype=np.float32)
    model = mf.MF()
    model._options = _libmf_options(mf, params, threads)
    fit_s = _timed(lambda: model.fit(train))
    start = time.perf_counter()
    pred = np.asarray(model.predict(test), dtype=np.float64)
    pred_s = time.perf_counter() - start
    opts = model._options
    shown = {**params, "eta": round(opts.eta, 6), "bins": opts.nr_bins}
    fallback = f"LIBMF model.b = training mean {model.model.b:.4f}"
    return Outcome(shown, fit_s, pred_s, pred, fallback, threads)


# --------------------------------------------------------------------------- lenskit


def _lenskit_threads(threads: int) -> None:
    """LensKit reads LK_NUM_* when it first configures parallelism; set them before import."""
    os.environ["LK_NUM_PROCS"] = "1"
    os.environ["LK_NUM_THREADS"] = str(threads)
    os.environ["LK_NUM_BACKEND_THREADS"] = "1"
    from lenskit.parallel import initialize

    initialize(processes=1, threads=threads, backend_threads=1)


def _lenskit_predict(pipe: Any, split: Split) -> np.ndarray:
    """Score the test pairs through ``lenskit.batch.predict``, back in test-row order."""
    import pandas as pd
    from lenskit import batch
    from lenskit.data import ItemListCollection

    test = pd.DataFrame({"user_id": split.test_user, "item_id": split.test_item})
    queries = ItemListCollection.from_df(test, "user_id")
    out = batch.predict(pipe, queries, n_jobs=1).to_df()
    out = out.drop_duplicates(["user_id", "item_id"])[["user_id", "item_id", "score"]]
    merged = test.merge(out, on=["user_id", "item_id"], how="left")
    return merged["score"].to_numpy(dtype=np.float64)


def run_lenskit(split: Split, params: dict[str, Any], threads: int) -> Outcome:
    _lenskit_threads(threads)
    import pandas as pd
    from lenskit.als import BiasedMFScorer
    from lenskit.data import from_interactions_df
    from lenskit.pipeline import predict_pipeline
    from lenskit.training import TrainingOptions

    config = {k: v for k, v in params.items() if k not in ("factors", "iterations")}
    config |= {"embedding_size": params["factors"], "epochs": params["iterations"]}
    frame = pd.DataFrame(
        {"user_id": split.train_user, "item_id": split.train_item, "rating": split.train_rating}
    )
    data = from_interactions_df(frame, user_col="user_id", item_col="item_id", rating_col="rating")
    scorer = BiasedMFScorer(**config)
    pipe = predict_pipeline(scorer)
    fit_s = _timed(lambda: scorer.train(data, TrainingOptions()))
    pipe.train(data, TrainingOptions(retrain=False))
    start = time.perf_counter()
    pred = _lenskit_predict(pipe, split)
    pred_s = time.perf_counter() - start
    fallback = "LensKit BiasScorer (global mean + known user/item biases) via FallbackScorer"
    return Outcome(params, fit_s, pred_s, pred, fallback, threads)


# --------------------------------------------------------------------------- surprise


def run_surprise(split: Split, params: dict[str, Any], threads: int) -> Outcome:
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    del threads  # Surprise's SGD is single-threaded
    lo, hi = float(split.train_rating.min()), float(split.train_rating.max())
    frame = pd.DataFrame(
        {"user": split.train_user, "item": split.train_item, "rating": split.train_rating}
    )
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(lo, hi))).build_full_trainset()
    algo = SVD(**params)
    fit_s = _timed(lambda: algo.fit(trainset))
    pairs = zip(split.test_user.tolist(), split.test_item.tolist(), strict=True)
    start = time.perf_counter()
    pred = np.fromiter(
        (algo.predict(u, i, clip=False).est for u, i in pairs),
        dtype=np.float64,
        count=len(split.test_user),
    )
    pred_s = time.perf_counter() - start
    fallback = "SVD.estimate: global mean + known user/item biases"
    return Outcome(params, fit_s, pred_s, pred, fallback, 1)


# --------------------------------------------------------------------------- main

RUNNERS: dict[str, Callable[[Split, dict[str, Any], int], Outcome]] = {
    "libmf": run_libmf,
    "lenskit-als": run_lenskit,
    "surprise-svd": run_surprise,
}
PACKAGES = {"libmf": "libmf", "lenskit-als": "lenskit", "surprise-svd": "scikit-surprise"}


def _unknown(split: Split) -> int:
    seen_u = np.isin(split.test_user, np.unique(split.train_user))
    seen_i = np.isin(split.test_item, np.unique(split.train_item))
    return int(np.count_nonzero(~(seen_u & seen_i)))


def _report(system: str, split: Split, out: Outcome) -> dict[str, Any]:
    lo, hi = float(split.train_rating.min()), float(split.train_rating.max())
    pred = out.predictions
    n_nan = int(np.count_nonzero(~np.isfinite(pred)))
    if n_nan:
        print(f"peers: {n_nan} non-finite predictions, set to the mean", file=sys.stderr)
        pred = np.where(np.isfinite(pred), pred, float(split.train_rating.mean()))
    err = np.clip(pred, lo, hi) - split.test_rating.astype(np.float64)
    return {
        "system": system,
        "params": out.params,
        "fit_seconds": round(out.fit_seconds, 4),
        "rmse": round(float(np.sqrt(np.mean(err**2))), 6),
        "n_test": len(split.test_rating),
        "unknown": _unknown(split),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "version": importlib.metadata.version(PACKAGES[system]),
        "predict_seconds": round(out.predict_seconds, 4),
        "threads": out.threads,
        "fallback": out.fallback,
        "nonfinite": n_nan,
    }


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=sorted(RUNNERS))
    parser.add_argument("split", help="npz with train_*/test_* arrays")
    parser.add_argument("--params", default="{}", help="JSON object merged over the defaults")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    real_stdout = _stdout_to_stderr()
    params = {**DEFAULTS[args.system], **json.loads(args.params)}
    split = Split.load(args.split)
    outcome = RUNNERS[args.system](split, params, args.threads)
    line = json.dumps(_report(args.system, split, outcome)) + "\n"
    sys.stdout.flush()
    os.write(real_stdout, line.encode())


if __name__ == "__main__":
    main()
