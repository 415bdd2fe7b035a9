"""Named model + training settings: the two notebooks reproduced exactly, and a measured default.

``PRESETS[name]`` is a :class:`Preset` (model config, train config, the test
fraction of its reference split); ``fit_preset(name, train, **overrides)``
trains one, with any model or training field overridden by name.

- ``movielens-notebook``: the MovieLens notebook (Dufourq/Durbach): embeddings of
  50 concatenated, dropout 0.3, Dense(70, relu), dropout 0.75, Dense(1); Keras
  initialisers; Adam with Keras' defaults (lr 1e-3, betas 0.9/0.999, epsilon
  1e-7, dense updates); MSE; batch 64; 2 epochs; random 80/20 split. (The
  notebook's own test set, ``ratings[-train_indicator,]`` in R, is every row but
  the first, since ``-TRUE`` is ``-1``: its test error is mostly training error.
  ``embrec.split`` keeps the two sides disjoint.)
- ``goodreads-notebook``: the Goodreads notebook: embeddings of 99 multiplied
  element-wise, dropout 0.2, Dense(1, relu), Dense(1); Keras initialisers and
  Adam; MSE; batch 32 (Keras' default); 10 epochs; ``validation_split=0.2``,
  i.e. the *last* 20% of the training rows; random 90/10 split.
- ``default``: ``BiasedMFConfig()`` trained per rating by the compiled kernel, chosen on
  validation rows of ML-100K and a 10M-rating set.
- ``accurate``: the best validation RMSE found on ML-100K within a few minutes of
  CPU: a blend of the ``default`` preset and I-AutoRec, its weights chosen on
  validation rows carved from the training data (``benchmarks/accuracy.py``).
- ``ranking``: the recommended setting for top-N lists on explicit ratings: a
  ranking loss (:mod:`embrec.training.losses`); its scores rank items and are
  not ratings, so ``predict`` needs ``kind="score"``.

No preset bounds its outputs: the notebooks do not.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from embrec.config import TrainConfig, require_choice
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models import DEFAULT_TRAINING, PER_RATING, BlendConfig, default_training
from embrec.models.autorec import AutoRecConfig
from embrec.models.base import ModelConfig
from embrec.models.biased_mf import BiasedMFConfig
from embrec.models.gmf import GMFConfig
from embrec.models.mlp import MLPConfig
from embrec.recommender import Recommender

__all__ = ["DEFAULT_TRAINING", "PRESETS", "Preset", "default_training", "fit_preset"]

KERAS_ADAM = {"optimizer": "adam", "learning_rate": 1e-3, "adam_epsilon": 1e-7,
              "embedding_updates": "dense"}
"""Keras' Adam: every embedding row's moments decay at every step (O(catalogue) a step)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Preset:
    """A model config, a train config, the test fraction of the preset's reference random
    split, and one line for ``embrec train --help`` and listings."""

    model: ModelConfig
    train: TrainConfig
    test_size: float = 0.2
    description: str = ""


PRESETS: dict[str, Preset] = {
    "movielens-notebook": Preset(
        model=MLPConfig(embedding_dim=50, hidden=(70,), dropout=(0.3, 0.75), activation="relu",
                        bounded=False, init="keras", biases=False),
        train=TrainConfig(epochs=2, batch_size=64, **KERAS_ADAM),  # type: ignore[arg-type]
        description="MovieLens notebook: concat(50, 50) -> Dense(70, relu) -> Dense(1), 2 epochs",
    ),
    "goodreads-notebook": Preset(
        model=GMFConfig(embedding_dim=99, hidden=(1,), activation="relu", dropout=0.2,
                        bounded=False, init="keras", biases=False),
        train=TrainConfig(epochs=10, batch_size=32, validation=0.2, validation_mode="last",
                          **KERAS_ADAM),  # type: ignore[arg-type]
        test_size=0.1,
        description="Goodreads notebook: 99 x 99 product -> Dense(1, relu) -> Dense(1), 10 epochs",
    ),
    "default": Preset(  # benchmarks/select_default.py; benchmarks/results/default.md
        model=BiasedMFConfig(),
        train=PER_RATING,
        test_size=0.1,
        description="biased MF, 32 factors, per-rating lazy Adam (compiled kernel), one-cycle, "
                    "10 epochs (selected on validation rows of ML-100K and a 10M-rating set)",
    ),
    "accurate": Preset(
        model=BlendConfig(components=(
            {"model": "biased-mf", "config": BiasedMFConfig().to_dict(),
             "train": PER_RATING.to_dict()},
            {"model": "autorec", "config": AutoRecConfig().to_dict()})),
        train=TrainConfig(),
        test_size=0.1,
        description="blend of the default preset and I-AutoRec, weights fitted on validation "
                    "rows (ML-100K: 1-3 min on 2 CPU cores)",
    ),
    "ranking": Preset(
        model=BiasedMFConfig(embedding_dim=64, init="normal", init_std=0.01),
        train=TrainConfig(epochs=20, batch_size=1024, learning_rate=0.01, weight_decay=0.1,
                          loss="in-batch", positive_threshold=4.0),
        description="top-N on explicit ratings: biased MF trained with a softmax over "
                    "in-batch items (ratings >= 4 are positives)",
    ),
}


def fit_preset(name: str, train: Ratings, *, validation: Ratings | None = None,
               metadata: dict[str, Any] | None = None, **overrides: Any) -> Recommender:
    """Train preset ``name`` on ``train``, with fields overridden by name.

    Args:
        name: a key of :data:`PRESETS`.
        train: the training ratings.
        validation: optional held-out ratings to watch (see :func:`embrec.training.fit`).
        metadata: extra facts to record.
        **overrides: model or training fields, e.g. ``epochs=5, embedding_dim=64``.

    Returns:
        The trained recommender; its metadata records the preset's name.

    Raises:
        ConfigError: for an unknown preset or field (with the closest match), or an
            invalid value.
    """
    from embrec.training.fit import fit

    require_choice("preset", name, PRESETS)
    preset = PRESETS[name]
    model_fields = {f.name for f in dataclasses.fields(preset.model)}  # type: ignore[arg-type]
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in overrides:
        if key not in model_fields | train_fields:
            close = difflib.get_close_matches(key, sorted(model_fields | train_fields), n=1)
            raise ConfigError(key, overrides[key], f"is not a setting of preset {name!r}",
                              hint=f"did you mean {close[0]!r}?" if close else None)
    model = dataclasses.replace(preset.model,  # type: ignore[type-var]
                                **{k: v for k, v in overrides.items() if k in model_fields})
    config = dataclasses.replace(preset.train,
                                 **{k: v for k, v in overrides.items() if k in train_fields})
    return fit(model, train, config, validation=validation,
               metadata={"preset": name, **(metadata or {})})
