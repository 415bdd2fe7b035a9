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
- ``default``: biased MF chosen by measurement on ML-100K (see the comment there).

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
from embrec.models import BiasedMFConfig, GMFConfig, MLPConfig
from embrec.models.base import ModelConfig
from embrec.recommender import Recommender

__all__ = ["PRESETS", "Preset", "fit_preset"]

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


PRESETS: dict[str, Preset] = {
    "movielens-notebook": Preset(
        model=MLPConfig(embedding_dim=50, hidden=(70,), dropout=(0.3, 0.75), init="keras"),
        train=TrainConfig(epochs=2, batch_size=64, **KERAS_ADAM),  # type: ignore[arg-type]
        test_size=0.2,
        description="MovieLens notebook: concat(50, 50) -> Dense(70, relu) -> Dense(1), 2 epochs",
    ),
    "goodreads-notebook": Preset(
        model=GMFConfig(embedding_dim=99, hidden=(1,), activation="relu", dropout=0.2,
                        init="keras"),
        train=TrainConfig(epochs=10, batch_size=32, validation=0.2, validation_mode="last",
                          **KERAS_ADAM),  # type: ignore[arg-type]
        test_size=0.1,
        description="Goodreads notebook: 99 x 99 product -> Dense(1, relu) -> Dense(1), 10 epochs",
    ),
    # Selected on validation rows carved from the training data (never test rows):
    # benchmarks/select_default.py, record in benchmarks/results/default.md. For split seeds
    # 0-2 the 90/10 training part is cut 90/10 again; 32 settings of lazy Adam, then the best
    # re-run with adagrad, rowwise-adagrad and sgd. Every setting within 0.001 of the best
    # validation RMSE (0.9090: 64 factors, lr 0.01, weight decay 0.12, 20 epochs) is noise;
    # the cheapest of them wins: 32 factors, lr 0.005, weight decay 0.08, 20 epochs (0.9097).
    # bias_weight_decay 0.02 changed nothing (+/- 0.0002), so biases stay free. Lazy Adam is
    # the optimiser: adagrad 0.9094 at its best rate, rowwise-adagrad 0.9158, sgd 0.978.
    "default": Preset(
        model=BiasedMFConfig(embedding_dim=32, init="normal", init_std=0.01),
        train=TrainConfig(epochs=20, batch_size=2048, learning_rate=0.005, weight_decay=0.08,
                          schedule="onecycle"),
        test_size=0.1,
        description="biased MF, 32 factors, lazy Adam one-cycle, 20 epochs (selected on "
                    "validation rows of ML-100K)",
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
