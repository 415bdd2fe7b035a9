"""tune(): search a model's and training's settings with Optuna, on validation rows only.

``tune(train, "biased-mf")`` takes *training* ratings, carves a seeded validation set
from them and runs one Optuna trial per setting (fit on the rest, score RMSE or
NDCG@10 on the validation rows), so the test rows stay unseen and the chosen
setting's test score an honest estimate. The first trial is the given setting
(:func:`starting_point`), so the search never reports worse than where it started.
Per-epoch validation RMSE goes to a ``MedianPruner`` after each fit (``fit`` has no
per-epoch hook): pruning steers the sampler but does not save training time.

A study in Optuna storage (``"sqlite:///tune.db"``) resumes until it holds ``trials``
finished trials, may be shared by several processes, and refuses to mix in a search
of another model, metric, validation fraction, seed or training data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from embrec.config import TrainConfig, require, require_choice
from embrec.data.ratings import Ratings
from embrec.data.split import split
from embrec.errors import ConfigError, TrainingWarning
from embrec.models.base import ModelConfig
from embrec.studies import mark_trial, open_study, start_if_missing, sweep_stale, with_retries

__all__ = ["CHOICES", "METRICS", "RANGES", "TuneResult", "best_trials", "starting_point", "suggest",
           "tune"]

METRICS = {"rmse": "minimize", "ndcg@10": "maximize"}


@dataclass(frozen=True, slots=True)
class TuneResult:
    """The outcome of :func:`tune`: the best trial's configs and validation ``value`` of
    ``metric``, and the ``optuna.Study`` with every trial."""

    model: ModelConfig
    train: TrainConfig
    value: float
    metric: str
    study: Any


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("tune", "optuna", "is not installed",
                          hint="pip install 'embrec[tune]'") from None
    return optuna


#: The search space: numeric ranges (log-uniform except dropout) and categorical choices.
RANGES: dict[str, tuple[float, float]] = {
    "embedding_dim": (8, 128), "init_std": (0.005, 0.2), "dropout": (0.0, 0.6),
    "dropout_k": (0.0, 0.8), "learning_rate": (1e-3, 5e-2), "weight_decay": (1e-4, 0.5),
    "epochs": (3, 30)}
CHOICES: dict[str, list[Any]] = {"batch_size": [256, 512, 1024, 2048, 4096],
                                 "schedule": ["constant", "onecycle"]}


def suggest(trial: Any, model: ModelConfig, train: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """Draw one setting from the search space, keeping ``model``'s and ``train``'s other fields.

    ``trial`` is an ``optuna.Trial``, or an ``optuna.trial.FixedTrial`` to rebuild a setting;
    a knob is searched only when the config has it.
    """
    fields = {f.name for f in dataclasses.fields(model)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {"embedding_dim": trial.suggest_int(
        "embedding_dim", *(int(v) for v in RANGES["embedding_dim"]), log=True)}
    if "init_std" in fields:
        changes["init_std"] = trial.suggest_float("init_std", *RANGES["init_std"], log=True)
    dropout = getattr(model, "dropout", None)
    if isinstance(dropout, float):
        changes["dropout"] = trial.suggest_float("dropout", *RANGES["dropout"])
    elif isinstance(dropout, tuple):
        changes["dropout"] = tuple(trial.suggest_float(f"dropout_{k}", *RANGES["dropout_k"])
                                   for k in range(len(dropout)))
    train_changes = {
        "learning_rate": trial.suggest_float("learning_rate", *RANGES["learning_rate"], log=True),
        "weight_decay": trial.suggest_float("weight_decay", *RANGES["weight_decay"], log=True),
        "batch_size": trial.suggest_categorical("batch_size", CHOICES["batch_size"]),
        "epochs": trial.suggest_int("epochs", *(int(v) for v in RANGES["epochs"])),
        "schedule": trial.suggest_categorical("schedule", CHOICES["schedule"]),
    }
    return (dataclasses.replace(model, **changes),  # type: ignore[type-var]
            dataclasses.replace(train, **train_changes, validation=0.0, early_stopping=None,
                                progress=False))


def starting_point(model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    """The starting configs as trial parameters, those that lie inside the search space.

    A new study runs this setting first, so the search never reports a best
    worse (on validation) than where it started. Returns ``{parameter: value}``.
    """
    current: dict[str, Any] = {k: getattr(model, k, None) for k in ("embedding_dim", "init_std")}
    current.update({k: getattr(train, k) for k in (
        "learning_rate", "weight_decay", "epochs", "batch_size", "schedule")})
    dropout = getattr(model, "dropout", None)
    if isinstance(dropout, float):
        current["dropout"] = dropout
    elif isinstance(dropout, tuple):
        current.update({f"dropout_{k}": rate for k, rate in enumerate(dropout)})

    def inside(name: str, value: Any) -> bool:
        if name in CHOICES:
            return value in CHOICES[name]
        low, high = RANGES["dropout_k" if name.startswith("dropout_") else name]
        return value is not None and low <= value <= high

    return {name: value for name, value in current.items() if inside(name, value)}


def tune(
    train: Ratings,
    model: ModelConfig | str = "biased-mf",
    *,
    train_config: TrainConfig | None = None,
    trials: int = 40,
    timeout: float | None = None,
    metric: str = "rmse",
    validation: float = 0.1,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> TuneResult:
    """Search settings for ``model`` on validation rows carved from ``train``.

    Args:
        train: the training ratings only (keep the test split out of them).
        model: a model config (its other fields are kept) or a registry name.
        train_config: the training config to start from (``TrainConfig()`` when None).
        trials: finished trials the study should hold; a resumed study runs the rest.
        timeout: stop starting trials after this many seconds (None: no limit).
        metric: ``"rmse"`` (minimised) or ``"ndcg@10"`` (maximised) on the validation rows.
        validation: fraction of ``train`` held out to score trials.
        storage: an Optuna storage URL such as ``"sqlite:///tune.db"`` (None: in memory).
        study_name: the study's name in ``storage`` (default ``tune-<model>``).
        seed: seeds the validation split, every trial's training and the sampler.
        progress: show a progress bar over trials.

    Returns:
        The best trial's configs, its value, the metric and the Optuna study.

    Raises:
        ConfigError: for a bad option, a missing ``optuna`` (the ``tune`` extra), or
            a stored study that tunes something else.
    """
    optuna = _optuna()
    require_choice("metric", metric, METRICS)
    require(isinstance(trials, int) and trials >= 1, "trials", trials, "must be at least 1")
    require(0 < validation < 1, "validation", validation, "must be in (0, 1)")
    require(timeout is None or (math.isfinite(timeout) and timeout > 0), "timeout", timeout,
            "must be a positive number of seconds (None: no limit)")
    from embrec.models import MODELS

    if isinstance(model, str):
        require_choice("model", model, MODELS)
    config: ModelConfig = MODELS[model]() if isinstance(model, str) else model
    if "embedding_dim" not in {f.name for f in dataclasses.fields(config)}:  # type: ignore[arg-type]
        raise ConfigError("model", config.name, "has no embedding settings to tune",
                          hint="tune a trained model (biased-mf, gmf, mlp, neumf)")
    base_train = dataclasses.replace(train_config or TrainConfig(), seed=seed)
    fit_rows, held = split(train, test_size=validation, seed=seed)
    setup = {"model": config.name, "metric": metric, "validation": validation, "seed": seed,
             "data": train.fingerprint()}
    study = _study(optuna, storage, study_name or f"tune-{config.name}", setup, seed)
    objective = _objective(optuna, config, base_train, fit_rows, held, metric)
    with_retries(str(storage), lambda: sweep_stale(optuna, study))  # killed runs' trials fail
    with_retries(str(storage), lambda: start_if_missing(optuna, study,
                                                        starting_point(config, base_train)))
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    if done < trials:
        from tqdm import tqdm

        most = optuna.study.MaxTrialsCallback(trials, states=finished)
        with tqdm(total=trials, initial=done, desc="trials", unit="trial",
                  disable=not progress) as bar:
            study.optimize(objective, n_trials=trials - done, timeout=timeout,
                           callbacks=[most, _progress(bar, metric)], gc_after_trial=False)
    return _result(optuna, study, config, base_train, metric)


def _study(optuna: Any, storage: str | None, name: str, setup: dict[str, Any], seed: int) -> Any:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(optuna, storage, name, METRICS[str(setup["metric"])])
    stored = study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", setup)
    elif stored != setup:
        changed = sorted(k for k in setup if stored.get(k) != setup[k])
        raise ConfigError("study", name, f"in {storage} tunes something else (differs in "
                          f"{', '.join(changed)})", hint="pick another study name, or tune "
                          "the same model, metric and data as before")
    offset = len(study.trials)  # a resumed or second process draws fresh random settings
    study.sampler = optuna.samplers.TPESampler(seed=seed + offset, n_startup_trials=8)
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    return study


def _objective(optuna: Any, model: ModelConfig, train: TrainConfig, fit_rows: Ratings,
               held: Ratings, metric: str) -> Any:
    from embrec.evaluation.evaluate import evaluate
    from embrec.training.fit import fit

    def objective(trial: Any) -> float:
        mark_trial(trial)
        model_config, train_config = suggest(trial, model, train)
        started = time.perf_counter()
        with warnings.catch_warnings():  # a trial's health shows in its value
            warnings.simplefilter("ignore", TrainingWarning)
            rec = fit(model_config, fit_rows, train_config, validation=held)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        for record in rec.history:
            value = record.get("validation_rmse", math.nan)
            if metric == "rmse" and math.isfinite(value):
                trial.report(value, int(record["epoch"]))
        if trial.should_prune():
            raise optuna.TrialPruned()
        return float(evaluate(rec, held, metrics=[metric])[metric])

    return objective


def _progress(bar: Any, metric: str) -> Callable[[Any, Any], None]:
    """An Optuna callback moving ``bar`` on by a trial and showing the best value so far."""

    def advance(study: Any, trial: Any) -> None:
        if bar.disable:
            return
        bar.update(1)
        with contextlib.suppress(ValueError):  # no finished trial yet
            bar.set_postfix({f"best {metric}": f"{study.best_value:.4f}"})

    return advance


def _result(optuna: Any, study: Any, model: ModelConfig, train: TrainConfig,
            metric: str) -> TuneResult:
    try:
        best = study.best_trial
    except ValueError:
        raise ConfigError("trials", 0, "finished without a result",
                          hint="give a longer timeout, or look for errors above") from None
    model_config, train_config = suggest(optuna.trial.FixedTrial(best.params), model, train)
    return TuneResult(model_config, train_config, float(best.value), metric, study)


def best_trials(study: Any, n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` best finished trials of a :func:`tune` study, best first: one dict each
    with number, value, seconds and parameters."""
    optuna = _optuna()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    ranked = sorted(done, key=lambda t: sign * float(t.value))[:n]
    return [{"trial": t.number, "value": float(t.value),
             "seconds": float(t.user_attrs.get("seconds", math.nan)), **t.params}
            for t in ranked]
