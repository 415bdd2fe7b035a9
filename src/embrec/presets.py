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
- ``default``: biased MF trained per rating by the compiled kernel, chosen by measurement on
  ML-100K and a 10M-rating set (see the comment there); ``BiasedMFConfig()`` is its model.
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

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models import AutoRecConfig, BiasedMFConfig, BlendConfig, GMFConfig, MLPConfig
from embrec.models.base import ModelConfig
from embrec.recommender import Recommender

__all__ = ["DEFAULT_TRAINING", "PRESETS", "Preset", "default_training", "fit_preset"]

KERAS_ADAM = {"optimizer": "adam", "learning_rate": 1e-3, "adam_epsilon": 1e-7,
              "embedding_updates": "dense"}
"""Keras' Adam: every embedding row's moments decay at every step (O(catalogue) a step)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Preset:
    """A model config, a train config and the test fraction they were measured with.

    Attributes:
        model: the model config.
        train: the training config.
        test_size: test fraction of the preset's reference random split.
        description: one line for ``embrec train --help`` and listings.
    """

    model: ModelConfig
    train: TrainConfig
    test_size: float = 0.2
    description: str = ""


DEFAULT_TRAIN = TrainConfig(epochs=10, batch_size=1, learning_rate=0.002, weight_decay=0.02,
                            schedule="onecycle")
"""The ``default`` preset's training: per rating (the compiled kernel); see the preset."""

PRESETS: dict[str, Preset] = {
    "movielens-notebook": Preset(
        model=MLPConfig(embedding_dim=50, hidden=(70,), dropout=(0.3, 0.75), activation="relu",
                        bounded=False, init="keras", biases=False),
        train=TrainConfig(epochs=2, batch_size=64, **KERAS_ADAM),  # type: ignore[arg-type]
        test_size=0.2,
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
    # Selected on validation rows (never test rows) of ML-100K and of an ML-10M-shaped
    # synthetic set, as the setting whose worse gap to either set's best is smallest
    # (benchmarks/select_default.py; record in benchmarks/results/default.md).
    "default": Preset(
        model=BiasedMFConfig(),
        train=DEFAULT_TRAIN,
        test_size=0.1,
        description="biased MF, 32 factors, per-rating lazy Adam (compiled kernel), one-cycle, "
                    "10 epochs (selected on validation rows of ML-100K and a 10M-rating set)",
    ),
    # Chosen on validation rows carved from ML-100K's 80/20 training part
    # (benchmarks/results/ranking.md): the test rows played no part.
    "accurate": Preset(
        model=BlendConfig(components=(
            {"model": "biased-mf", "config": BiasedMFConfig().to_dict(),
             "train": DEFAULT_TRAIN.to_dict()},
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
        test_size=0.2,
        description="top-N on explicit ratings: biased MF trained with a softmax over "
                    "in-batch items (ratings >= 4 are positives)",
    ),
}


MINI_BATCH = TrainConfig(epochs=20, batch_size=2048, learning_rate=0.005, weight_decay=0.08,
                         schedule="onecycle")
"""Lazy Adam over mini-batches with a one-cycle schedule: the neural models' training (no kernel
trains them; at batch 1 a torch step per rating would be slow)."""

DEFAULT_TRAINING: dict[str, TrainConfig] = {
    # the `default` preset's training (benchmarks/results/default.md)
    "biased-mf": PRESETS["default"].train,
    # per-use L2 chosen on validation rows of ML-100K's training part
    # (benchmarks/results/neural.md): GMF's learned output weight can scale its factors back
    # up, so it needs more
    "gmf": dataclasses.replace(MINI_BATCH, weight_decay=0.2),
    "mlp": dataclasses.replace(MINI_BATCH, weight_decay=0.12),
    "neumf": dataclasses.replace(MINI_BATCH, weight_decay=0.12),
}
"""Each model's default training: what ``fit(XConfig(), train)`` and ``embrec train --model x``
use when no training settings are given (``TrainConfig()`` for a model not listed)."""


def default_training(model_config: ModelConfig) -> TrainConfig:
    """Return the training settings ``model_config``'s model trains with by default.

    Args:
        model_config: a model config.

    Returns:
        ``DEFAULT_TRAINING[name]``, or ``TrainConfig()`` for a model without an entry.
    """
    return DEFAULT_TRAINING.get(str(model_config.name), TrainConfig())


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

    preset = _lookup(name)
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


def _lookup(name: str) -> Preset:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        raise ConfigError("preset", name, f"is not one of {sorted(PRESETS)}",
                          hint=f"did you mean {close[0]!r}?" if close else None)
    return PRESETS[name]
