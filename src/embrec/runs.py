"""Training runs: data source → split → fit → evaluate, recorded so a saved model can be re-checked.

A run remembers where its data came from and how it was split (method, test
fraction, seed) in the recommender's metadata. ``recorded_test_split`` uses that
record to re-create the exact test ratings of a saved model, after checking the
data fingerprint, so ``embrec evaluate DIR`` needs nothing but the directory.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embrec.config import TrainConfig, require, require_choice
from embrec.data.datasets import load_dataset
from embrec.data.ratings import Ratings
from embrec.data.split import METHODS, split
from embrec.errors import ArtifactError, DataError
from embrec.evaluation.evaluate import evaluate
from embrec.models.base import ModelConfig
from embrec.recommender import Recommender
from embrec.training.fit import fit

__all__ = ["RunResult", "SplitSpec", "recorded_test_split", "train_run"]

RATING_METRICS = ("rmse", "mae", "mse")


@dataclass(frozen=True, kw_only=True, slots=True)
class SplitSpec:
    """How a run splits its data into train and test.

    Attributes:
        method: one of :data:`embrec.data.split.METHODS` (``random`` rows,
            per-``user`` fraction, global ``time`` cut-off, each user's ``last``
            ratings, ``leave-one-out``).
        test_size: fraction of ratings held out for testing.
        seed: seed of the split.
        n_last: ratings per user held out by ``last``.
    """

    method: str = "random"
    test_size: float = 0.2
    seed: int = 0
    n_last: int = 1

    def __post_init__(self) -> None:
        require_choice("split", self.method, METHODS)
        require(self.n_last >= 1, "n_last", self.n_last, "must be at least 1")
        require(0 < self.test_size < 1, "test_size", self.test_size, "must be in (0, 1)")


@dataclass(slots=True)
class RunResult:
    """What a training run produced.

    Attributes:
        recommender: the trained model.
        metrics: ``{"train": {...}, "validation": {...}, "test": {...}}``, each
            holding rmse, mae, mse (validation empty when none was held out);
            for a ranking-only model, ``{"test": {...}}`` with ranking metrics.
        fit_seconds: wall-clock seconds spent in ``fit``.
        ratings_per_second: training ratings times epochs, per second of fit.
    """

    recommender: Recommender
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    ratings_per_second: float = 0.0


def _data_source(data: str) -> str:
    path = Path(data).expanduser()
    return str(path.resolve()) if path.exists() else data


def train_run(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data: str = "synthetic",
    *,
    split_spec: SplitSpec | None = None,
    test_data: str | None = None,
    read: Mapping[str, Any] | None = None,
) -> RunResult:
    """Load ``data``, split it (or use ``test_data``), fit, and evaluate every side.

    Args:
        model_config: the model to train.
        train_config: how to train it.
        data: a known data set name or a path to ratings.
        split_spec: the train/test split; ignored when ``test_data`` is given.
        test_data: a separate test file (e.g. ML-100K's ``u1.test``).
        read: how to read ``data`` and ``test_data``: keyword arguments of
            :func:`~embrec.data.datasets.load_dataset` (``user``, ``sep``,
            ``scale``, ``duplicates``...); recorded so the test split can be
            re-created the same way.

    Returns:
        The recommender (with the split recorded in its metadata) and metrics.

    Raises:
        DataError: for unreadable data.
        ConfigError: for invalid settings.
    """
    spec = split_spec or SplitSpec()
    options = _read_options(read)
    ratings = load_dataset(data, **options)
    if test_data is None:
        train, test = split(ratings, test_size=spec.test_size, seed=spec.seed, method=spec.method,
                            n_last=spec.n_last)
        record: dict[str, Any] = {"split": {"method": spec.method, "test_size": spec.test_size,
                                           "seed": spec.seed, "n_last": spec.n_last}}
    else:
        train, test = ratings, load_dataset(test_data, **options)
        record = {"split": {"test_data": _data_source(test_data)}}
    metadata = {"data": _data_source(data), **record}
    if options:
        metadata["read"] = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    started = time.perf_counter()
    rec = fit(model_config, train, train_config, metadata=metadata)
    seconds = time.perf_counter() - started
    if rec.scores == "ranking":  # no rating error to report: top-N on the test rows only
        metrics = {"test": {key: value for key, value in evaluate(rec, test).items()
                            if isinstance(value, int | float)}}
    else:
        metrics = {
            "train": _rating_metrics(rec, train),
            "validation": _validation_metrics(rec),
            "test": _rating_metrics(rec, test),
        }
    rec.metadata["metrics"] = metrics
    epochs = max(len(rec.history), 1)
    return RunResult(rec, metrics, seconds, len(train) * epochs / max(seconds, 1e-9))


def _read_options(read: Mapping[str, Any] | None) -> dict[str, Any]:
    """The reading options that differ from the defaults; ``scale`` as a tuple."""
    defaults = {"duplicates": "error", "on_bad_lines": "error"}
    options = {k: v for k, v in (read or {}).items() if v is not None and v != defaults.get(k)}
    if "scale" in options:
        options["scale"] = (float(options["scale"][0]), float(options["scale"][1]))
    return options


def _rating_metrics(rec: Recommender, ratings: Ratings) -> dict[str, float]:
    result = evaluate(rec, ratings, metrics=RATING_METRICS)
    return {key: float(result[key]) for key in (*RATING_METRICS, "n", "unknown")}


def _validation_metrics(rec: Recommender) -> dict[str, float]:
    if not rec.history or "validation_rmse" not in rec.history[-1]:
        return {}
    last = rec.history[-1]
    rmse = float(last["validation_rmse"])
    return {"rmse": rmse, "mae": float(last.get("validation_mae", float("nan"))),
            "mse": rmse * rmse}


def recorded_test_split(rec: Recommender) -> Ratings:
    """Re-create the test ratings a saved model was evaluated on.

    Args:
        rec: a recommender trained by :func:`train_run` (or loaded from one).

    Returns:
        The test ratings.

    Raises:
        ArtifactError: if the model records no data source or split.
        DataError: if the data changed since training (fingerprint mismatch).
    """
    data, record = rec.metadata.get("data"), rec.metadata.get("split")
    if not data or not isinstance(record, dict):
        raise ArtifactError("the model records no data source and split to re-create its test "
                            "set", hint="pass the test ratings with --data PATH")
    options = _read_options(rec.metadata.get("read"))
    if "test_data" in record:
        return load_dataset(str(record["test_data"]), **options)
    ratings = load_dataset(str(data), **options)
    train, test = split(ratings, test_size=float(record["test_size"]), seed=int(record["seed"]),
                        method=str(record["method"]), n_last=int(record.get("n_last", 1)))
    expected = rec.metadata.get("fingerprint")
    if expected and train.fingerprint() != expected:
        raise DataError(f"data {data!r} changed since the model was trained (fingerprint "
                        "mismatch)", hint="pass the original test ratings with --data PATH")
    return test
