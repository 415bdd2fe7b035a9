"""K-fold cross-validation of one model's settings: a mean and a spread per metric.

One train/test split gives one number whose noise is unknown; ``k`` folds give
``k`` numbers (every rating tested exactly once) and their mean and standard
deviation, the way Surprise's ``cross_validate`` and LensKit's crossfold
report them. Each fold trains a fresh model with the same settings and seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from embrec.config import TrainConfig
    from embrec.data.ratings import Ratings
    from embrec.models.base import ModelConfig

__all__ = ["cross_validate"]


def cross_validate(model_config: ModelConfig, ratings: Ratings, train_config: TrainConfig, *,
                   folds: int = 5, seed: int = 0,
                   metrics: Iterable[str] = ("rmse", "mae"), **evaluate_args: Any
                   ) -> dict[str, Any]:
    """Train and evaluate ``model_config`` on each of ``folds`` random folds of ``ratings``.

    Args:
        model_config: the model to train on each fold.
        ratings: all the ratings; each is tested exactly once.
        train_config: how to train (its progress bar is turned off).
        folds: number of folds, at least 2.
        seed: seeds the fold permutation (see :func:`embrec.kfold`).
        metrics: metric names, as :func:`embrec.evaluate` takes them.
        **evaluate_args: more keyword arguments of :func:`embrec.evaluate` (``k``,
            ``threshold``).

    Returns:
        ``{"folds": [per-fold metrics], "mean": {...}, "std": {...}}``; the
        standard deviation is the sample one (``ddof=1``).

    Raises:
        ConfigError: for fewer than 2 folds or more folds than ratings.
    """
    from embrec.data.split import kfold
    from embrec.evaluation.evaluate import evaluate
    from embrec.training.fit import fit

    config = dataclasses.replace(train_config, progress=False)
    names = list(metrics)
    results: list[dict[str, float]] = []
    for train, test in kfold(ratings, folds, seed=seed):
        rec = fit(model_config, train, config)
        scored = evaluate(rec, test, metrics=names, **evaluate_args)
        results.append({key: float(value) for key, value in scored.items()
                        if isinstance(value, int | float) and key not in ("unknown",)})
    keys = [key for key in results[0] if key != "n"]
    values = {key: np.array([r.get(key, math.nan) for r in results]) for key in keys}
    return {"folds": results, "mean": {key: float(np.mean(v)) for key, v in values.items()},
            "std": {key: float(np.std(v, ddof=1)) for key, v in values.items()}}
