"""Training runs: data source → split → fit → evaluate, recorded so a saved model can be re-checked.

A run remembers where its data came from and how it was split (method, test
fraction, seed) in the recommender's metadata. ``recorded_test_split`` uses that
record to re-create the exact test ratings of a saved model, after checking the
data fingerprint, so ``embrec evaluate DIR`` needs nothing but the directory.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from embrec.config import TrainConfig, require, require_choice
from embrec.data.datasets import load_dataset
from embrec.data.ratings import Ratings
from embrec.data.split import METHODS, split
from embrec.distributed.exchange import Group, join
from embrec.distributed.reading import (
    Shards,
    gathered_test,
    gathered_train,
    read_sharded,
    summed_errors,
    whole_file_reason,
)
from embrec.errors import ArtifactError, DataError, TrainingWarning
from embrec.evaluation.evaluate import evaluate
from embrec.evaluation.rating_baselines import rating_baselines
from embrec.models.base import ModelConfig
from embrec.recommender import Recommender
from embrec.training.batches import validation_rows
from embrec.training.closed_form import solves_itself
from embrec.training.fit import fit
from embrec.training.process import training_device

__all__ = ["NOT_FINITE", "RunResult", "SplitSpec", "degenerate",
           "fitted_rows", "recorded_read_options", "recorded_test_split", "train_run"]

RATING_METRICS = ("rmse", "mae", "mse")
NOT_FINITE = "the weights hold NaN or infinite values (such a model is never saved)"
MIN_TEST_RATINGS = 20
"""Fewer test ratings than this make the test metrics noise (reported in ``notes``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SplitSpec:
    """How a run splits its data into train and test.

    The defaults are every run's split, whatever the model or preset (the split
    belongs to the data), so two models trained with defaults are tested on
    the same rows.

    Attributes:
        method: one of :data:`embrec.data.split.METHODS` (``random`` rows,
            per-``user`` fraction, global ``time`` cut-off, each user's ``last``
            ratings, ``leave-one-out``).
        test_size: fraction of ratings held out for testing.
        seed: seed of the split.
        n_last: ratings per user held out by ``last``.
    """

    method: str = "random"
    test_size: float = 0.1
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
        problems: why the model is degenerate (diverged, not finite, constant,
            worse than predicting the training mean); empty for a healthy model.
        notes: things to know that do not make the model degenerate (an empty
            or tiny test split).
        test: the test rows (saved with the model so ``evaluate`` needs no
            re-split); None on ranks other than 0 of a distributed run.
    """

    recommender: Recommender
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    ratings_per_second: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    test: Ratings | None = None

    def saveable(self, allow_degenerate: bool = False) -> bool:
        """Whether to save the model: healthy, or degenerate but allowed and finite."""
        return not self.problems or (allow_degenerate and NOT_FINITE not in self.problems)


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
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
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
        checkpoint_dir: checkpoint the training there (see ``fit``).
        resume: continue from the latest checkpoint in ``checkpoint_dir``.

    Returns:
        The recommender (with the split recorded in its metadata) and metrics.

    Raises:
        DataError: for unreadable data.
        ConfigError: for invalid settings.
        ArtifactError: for a checkpoint that cannot be resumed.
    """
    spec = split_spec or SplitSpec()
    options = _read_options(read)
    group = join(training_device(train_config))  # refuses a device this machine lacks
    try:
        return _run(model_config, train_config, data, spec, test_data, options, group,
                    checkpoint_dir, resume)
    finally:
        if group is not None:
            group.leave()


def _run(model_config: ModelConfig, train_config: TrainConfig, data: str, spec: SplitSpec,
         test_data: str | None, options: dict[str, Any], group: Group | None,
         checkpoint_dir: str | Path | None, resume: bool) -> RunResult:
    shards, notes = _shards(model_config, train_config, data, spec, test_data, options, group)
    if shards is None:
        train, test, record = _load(data, spec, test_data, options)
    else:
        train, test, record = shards.train, None, {"split": asdict(spec)}
    metadata = {"data": _data_source(data), **record, **(shards.facts if shards else {})}
    if options:
        metadata["read"] = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = fit(model_config, train, train_config, metadata=metadata,
                  checkpoint_dir=checkpoint_dir, resume=resume)
    seconds = time.perf_counter() - started
    for warning in caught:  # passed on; a non-finite loss also marks the run diverged
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)
    diverged = [str(w.message).splitlines()[0] for w in caught
                if issubclass(w.category, TrainingWarning) and "not finite" in str(w.message)]
    if shards is not None and group is not None:
        return _sharded_result(rec, shards, group, seconds, diverged, notes)
    rate = len(train) * max(len(rec.history), 1) / max(seconds, 1e-9)
    if (group is not None and group.rank != 0) or test is None:  # only rank 0 evaluates
        return RunResult(rec, {}, seconds, rate, [], notes)
    if rec.scores == "ranking":  # no rating error to report: top-N on the test rows only
        metrics = {"test": {key: value for key, value in evaluate(rec, test).items()
                            if isinstance(value, int | float)}}
        return _result(rec, metrics, train, test, seconds, rate, diverged, notes)
    train_metrics = _rating_metrics(rec, fitted_rows(rec, train, train_config))
    return _result(rec, {"train": train_metrics}, train, test, seconds, rate, diverged, notes)


def _result(rec: Recommender, metrics: dict[str, dict[str, float]], train: Ratings,
            test: Ratings, seconds: float, rate: float, diverged: list[str],
            notes: list[str]) -> RunResult:
    """Rank 0's result: a rating model's metrics on every side, its problems and notes."""
    if "train" in metrics:
        metrics |= {"validation": _validation_metrics(rec), "test": _rating_metrics(rec, test),
                    "baselines": rating_baselines(rec, test)}
    rec.metadata["metrics"] = metrics
    return RunResult(rec, metrics, seconds, rate,
                     degenerate(rec, train, metrics.get("train", {}), diverged),
                     notes + _split_notes(metrics["test"]), test)


def _load(data: str, spec: SplitSpec, test_data: str | None,
          options: dict[str, Any]) -> tuple[Ratings, Ratings, dict[str, Any]]:
    """Read the whole file and split it (or read the separate test file)."""
    ratings = load_dataset(data, **options)
    if test_data is None:
        train, test = split(ratings, test_size=spec.test_size, seed=spec.seed, method=spec.method,
                            n_last=spec.n_last)
        return train, test, {"split": asdict(spec)}
    return ratings, load_dataset(test_data, **options), {
        "split": {"test_data": _data_source(test_data)}}


def _shards(model_config: ModelConfig, train_config: TrainConfig, data: str, spec: SplitSpec,
            test_data: str | None, options: dict[str, Any],
            group: Group | None) -> tuple[Shards | None, list[str]]:
    """Under torchrun, read only this rank's rows when the run allows it (else say why not)."""
    if group is None:
        return None, []
    shards = whole_file_reason(data, options, spec.method, test_data, model_config,
                               train_config, group) or read_sharded(
        Path(data).expanduser(), options, spec.seed, spec.test_size, group)
    if isinstance(shards, str):
        return None, [f"every rank read the whole file: {shards}"]
    return shards, []


def _sharded_result(rec: Recommender, shards: Shards, group: Group, seconds: float,
                    diverged: list[str], notes: list[str]) -> RunResult:
    """Train errors summed over the ranks; on rank 0, the whole training and test sets gathered."""
    train_metrics = summed_errors(group, evaluate(rec, shards.train, metrics=RATING_METRICS))
    if group.rank == 0:  # replaced below by the whole training set's: free the shard's first
        none = np.zeros(0, dtype=np.int32)
        rec.seen = sp.csr_matrix((none.astype(np.float32), (none, none)),
                                 shape=(rec.n_users, rec.n_items))
    full, test = gathered_train(group, shards.train), gathered_test(group, shards)
    rate = shards.train.total * max(len(rec.history), 1) / max(seconds, 1e-9)
    if full is None or test is None:
        return RunResult(rec, {"train": train_metrics}, seconds, rate, [], notes)
    facts = {k: v for k, v in rec.metadata.items() if k not in ("fingerprint", "n_train")}
    rec = Recommender.from_training(rec.model, rec.model_config, rec.train_config, full,
                                    history=rec.history, metadata=facts)
    return _result(rec, {"train": train_metrics}, full, test, seconds, rate, diverged, notes)


def degenerate(rec: Recommender, train: Ratings, train_metrics: dict[str, float],
               diverged: list[str]) -> list[str]:
    """Why a trained model is not worth saving; empty when it is healthy.

    One message per problem: divergence (``diverged`` holds the non-finite-loss
    warnings training raised), non-finite weights, constant predictions, or a
    training RMSE (from ``train_metrics``) worse than always predicting the mean.
    """
    problems = [f"training diverged: {message}" for message in diverged]
    closed_form = solves_itself(rec.model_config)  # solved: no epochs
    if not rec.history and not diverged and not closed_form:
        problems.append("training diverged: no epoch finished with a finite loss")
    if not all(not v.is_floating_point() or bool(v.isfinite().all())  # integers always are
               for v in rec.model.state_dict().values()):
        problems.append(NOT_FINITE)
    problems += [f"constant model: {d['message'].splitlines()[0]}"
                 for d in rec.metadata.get("diagnostics", [])
                 if isinstance(d, dict) and d.get("kind") == "constant_predictions"]
    if rec.scores == "ranking":  # scores are not ratings: no RMSE to compare
        return problems
    baseline = float(train.rating.std()) if len(train) else 0.0
    rmse = train_metrics.get("rmse", math.nan)
    if not math.isfinite(rmse) or rmse > baseline + 1e-6:
        problems.append(f"train RMSE {rmse:.4g} is worse than predicting the training mean "
                        f"({baseline:.4g})")
    return problems


def _split_notes(test: dict[str, float]) -> list[str]:
    n = int(test.get("n", 0)) if math.isfinite(test.get("n", 0)) else 0
    if n == 0:
        return ["the test split is empty: test metrics are null (too few ratings to split; "
                "pass --test-data or use more data)"]
    if n < MIN_TEST_RATINGS:
        return [f"the test split holds only {n} rating(s): its metrics are noise"]
    return []


def _read_options(read: Mapping[str, Any] | None) -> dict[str, Any]:
    """The reading options that differ from the defaults; ``scale`` as a tuple."""
    defaults = {"duplicates": "error", "on_bad_lines": "error"}
    options = {k: v for k, v in (read or {}).items() if v is not None and v != defaults.get(k)}
    if "scale" in options:
        options["scale"] = (float(options["scale"][0]), float(options["scale"][1]))
    return options


def _rating_metrics(rec: Recommender, ratings: Ratings) -> dict[str, float]:
    result = evaluate(rec, ratings, metrics=RATING_METRICS)
    return {**{key: float(result[key]) for key in RATING_METRICS},
            "n": int(result["n"]), "unknown": int(result["unknown"])}


def fitted_rows(rec: Recommender, train: Ratings, config: TrainConfig) -> Ratings:
    """The training rows the model was fitted on: ``train`` less the validation rows ``fit``
    carved from it (the same seeded draw), so the table's train RMSE is the one the
    over-fitting diagnosis compares."""
    seed = rec.metadata.get("seed")
    if config.validation <= 0 or not isinstance(seed, int):
        return train
    rows, _ = validation_rows(len(train), config.validation, config.validation_mode,
                              np.random.default_rng(seed))
    return train if rows is None else train.take(rows, reindex=False)


def _validation_metrics(rec: Recommender) -> dict[str, float]:
    if not rec.history or "validation_rmse" not in rec.history[-1]:
        return {}
    last = rec.history[-1]
    rmse = float(last["validation_rmse"])
    return {"rmse": rmse, "mae": float(last.get("validation_mae", float("nan"))),
            "mse": rmse * rmse}


def recorded_read_options(rec: Recommender) -> dict[str, Any]:
    """The reading options a saved model's data was read with (``load_dataset`` arguments)."""
    return _read_options(rec.metadata.get("read"))


def recorded_test_split(rec: Recommender) -> Ratings:
    """Re-create the test ratings a model trained by :func:`train_run` was evaluated on.

    Raises:
        ArtifactError: if the model records no data source or split.
        DataError: if the data changed since training (fingerprint mismatch).
    """
    data, record = rec.metadata.get("data"), rec.metadata.get("split")
    if not data or not isinstance(record, dict):
        raise ArtifactError("the model records no data source and split to re-create its test "
                            "set", hint="pass the test ratings with --data PATH")
    options = recorded_read_options(rec)
    if "test_data" in record:
        return load_dataset(str(record["test_data"]), **options)
    ratings = load_dataset(str(data), **options)
    try:
        test_size, seed = float(record["test_size"]), int(record["seed"])
        method, n_last = str(record["method"]), int(record.get("n_last", 1))
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise ArtifactError(f"the model's recorded split {str(record)[:200]} is invalid "
                            f"({error!r:.100})", hint="pass the test ratings with --data PATH"
                            ) from None
    train, test = split(ratings, test_size=test_size, seed=seed, method=method, n_last=n_last)
    expected = rec.metadata.get("fingerprint")
    if expected and train.fingerprint() != expected:
        raise DataError(f"data {data!r} changed since the model was trained (fingerprint "
                        "mismatch)", hint="pass the original test ratings with --data PATH")
    return test
