"""Training configuration and the small validation helpers every config shares.

Configs are frozen dataclasses validated in ``__post_init__``; they convert to
and from plain JSON dicts, and ``from_dict`` rejects unknown keys with a
"did you mean" suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from embrec.errors import ConfigError

__all__ = ["JsonConfig", "TrainConfig", "config_from_dict", "config_to_dict", "require",
           "require_choice"]

T = TypeVar("T")

OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad", "rowwise-adagrad")
EMBEDDING_UPDATES = ("sparse", "dense")
STEP_PATHS = ("auto", "autograd")
SCHEDULES = ("constant", "onecycle", "cosine", "step")
VALIDATION_MODES = ("random", "last")
RANKING_LOSSES = ("bpr", "softmax", "sampled-softmax", "in-batch")
LOSSES = ("rating", *RANKING_LOSSES, *(f"rating+{name}" for name in RANKING_LOSSES))
"""Every ``TrainConfig.loss`` (see :mod:`embrec.training.losses`)."""
NEGATIVE_SAMPLINGS = ("uniform", "popularity")


def require(condition: bool, field: str, value: Any, constraint: str) -> None:
    """Raise ``ConfigError`` for ``field`` (showing ``value`` and ``constraint``, e.g. ``"must be
    at least 1"``) unless ``condition`` holds.

    Raises:
        ConfigError: if ``condition`` is false.
    """
    if not condition:
        raise ConfigError(field, value, constraint)


def require_choice(field: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ConfigError`` for ``field`` unless ``value`` is one of ``choices``.

    Raises:
        ConfigError: naming the allowed values and the closest match.
    """
    options = list(choices)
    if value in options:
        return
    close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
    hint = f"did you mean {close[0]!r}?" if close else None
    raise ConfigError(field, value, f"must be one of {options}", hint=hint)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a dataclass config as a JSON-ready dict (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def config_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build config ``cls`` from ``data`` (lists become tuples), rejecting unknown keys with a
    suggestion.

    Raises:
        ConfigError: for an unknown key or an invalid value.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {sorted(fields)}"
            raise ConfigError(key, data[key], f"is not a field of {cls.__name__}", hint=hint)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


class JsonConfig:
    """``to_dict``/``from_dict`` for the frozen config dataclasses (a mixin with no state)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict (tuples become lists)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build the config from a dict.

        Raises:
            ConfigError: for an unknown key (with the closest match) or an invalid value.
        """
        return config_from_dict(cls, data)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainConfig(JsonConfig):
    """How to train: optimiser, batches, epochs, validation, early stopping, device.

    Attributes:
        epochs: passes over the training ratings.
        batch_size: ratings per optimiser step.
        learning_rate: peak learning rate.
        weight_decay: L2 penalty on the embedding factors a batch uses, per use:
            ``weight_decay * mean over the batch of (|user factors|² + |item factors|²)``
            is added to the loss, so rows outside the batch are never shrunk.
        bias_weight_decay: the same penalty on the per-user and per-item bias
            columns (biased MF); 0 leaves biases free.
        dense_weight_decay: L2 penalty on the dense layers' weight matrices
            (coupled, added to the gradient, for adam/sgd/adagrad; decoupled for
            adamw). Dense-layer biases and the global bias are never decayed.
        optimizer: ``adam``, ``adamw``, ``sgd``, ``adagrad`` or ``rowwise-adagrad``
            (one accumulator per embedding row). Embedding rows are updated
            row-sparsely: only the rows a batch used, and their state, change.
        embedding_updates: ``sparse`` (the default: per-step cost grows with the
            batch, not the catalogue) or ``dense``: Keras' Adam, where every
            embedding row's moments decay at every step. ``dense`` costs
            O(users + items) per step and exists for the notebook presets' parity
            with Keras; it needs ``optimizer="adam"``.
        adam_epsilon: Adam's epsilon (Keras uses 1e-7, PyTorch 1e-8).
        momentum: SGD momentum on the dense layers (ignored by the other optimisers).
        schedule: learning-rate schedule, per step: ``constant``; ``onecycle``
            (warm up from lr/25 over the first 25% of steps, cosine down to lr/1e4);
            ``cosine`` (cosine from lr to 0); ``step`` (x0.1 at 50% and 75%).
        validation: fraction of the training ratings held out to watch
            over-fitting (0 disables it).
        validation_mode: ``random`` rows, or the ``last`` rows as Keras'
            ``validation_split`` takes them.
        early_stopping: stop after this many epochs without a better
            validation RMSE and restore the best weights (``None`` disables).
        seed: seeds shuffling, initialisation and dropout; ``None`` is random.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        progress: show a progress bar per epoch.
        num_threads: CPU threads for torch during ``fit`` (restored afterwards);
            ``None`` uses one thread for batches under 32,768 ratings, where a
            second thread only adds synchronisation, and torch's setting otherwise.
        step_path: ``auto`` takes a model's hand-written rating step when it has
            one (proven equal to autograd by the contract tests); ``autograd``
            always differentiates the model's forward pass.
        loss: the objective (:mod:`embrec.training.losses`): ``rating`` (MSE), a
            ranking loss (``bpr``, ``softmax``, ``sampled-softmax``, ``in-batch``;
            the model's scores then rank items and are not ratings), or
            ``rating+<ranking loss>`` (both; scores stay ratings).
        negatives: sampled items per positive (``bpr``) or per batch
            (``sampled-softmax``).
        negative_sampling: ``uniform`` or ``popularity`` (in proportion to how
            often an item is a positive in training).
        positive_threshold: ratings at or above it are a ranking loss's
            positives; ``None`` makes every rated item a positive.
        rating_weighted: weight each positive by ``rating / max rating``.
        ranking_weight: weight of the ranking loss (added to the MSE's weight 1 in
            ``rating+...``).
        checkpoint_every: with a checkpoint directory, also checkpoint every
            this many optimiser steps (``None``: at the end of each epoch only).
    """

    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    bias_weight_decay: float = 0.0
    dense_weight_decay: float = 0.0
    optimizer: str = "adam"
    embedding_updates: str = "sparse"
    adam_epsilon: float = 1e-8
    momentum: float = 0.0
    schedule: str = "constant"
    validation: float = 0.0
    validation_mode: str = "random"
    early_stopping: int | None = None
    seed: int | None = None
    device: str = "auto"
    progress: bool = False
    num_threads: int | None = None
    step_path: str = "auto"
    loss: str = "rating"
    negatives: int = 1
    negative_sampling: str = "uniform"
    positive_threshold: float | None = None
    rating_weighted: bool = False
    ranking_weight: float = 1.0
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", self.epochs, "must be at least 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")
        for name in ("learning_rate", "weight_decay", "bias_weight_decay", "dense_weight_decay",
                     "adam_epsilon"):
            require(math.isfinite(getattr(self, name)), name, getattr(self, name), "must be finite")
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        for name in ("weight_decay", "bias_weight_decay", "dense_weight_decay"):
            require(getattr(self, name) >= 0, name, getattr(self, name), "must be >= 0")
        require(self.adam_epsilon > 0, "adam_epsilon", self.adam_epsilon, "must be > 0")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "must be in [0, 1)")
        require(self.num_threads is None or self.num_threads >= 1, "num_threads",
                self.num_threads, "must be None or at least 1")
        require(self.checkpoint_every is None or self.checkpoint_every >= 1, "checkpoint_every",
                self.checkpoint_every, "must be None or at least 1")
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require_choice("embedding_updates", self.embedding_updates, EMBEDDING_UPDATES)
        require_choice("step_path", self.step_path, STEP_PATHS)
        require(self.embedding_updates == "sparse" or self.optimizer == "adam",
                "embedding_updates", self.embedding_updates,
                "'dense' (Keras' Adam) needs optimizer='adam'")
        require_choice("schedule", self.schedule, SCHEDULES)
        require_choice("validation_mode", self.validation_mode, VALIDATION_MODES)
        self._check_loss()
        require(0 <= self.validation < 1, "validation", self.validation, "must be in [0, 1)")
        require(self.early_stopping is None or self.early_stopping >= 1, "early_stopping",
                self.early_stopping, "must be None or at least 1")
        require(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
                "device", self.device, "must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")

    def _check_loss(self) -> None:
        require_choice("loss", self.loss, LOSSES)
        require_choice("negative_sampling", self.negative_sampling, NEGATIVE_SAMPLINGS)
        require(self.negatives >= 1, "negatives", self.negatives, "must be at least 1")
        require(math.isfinite(self.ranking_weight) and self.ranking_weight > 0, "ranking_weight",
                self.ranking_weight, "must be a finite number > 0")
        require(self.positive_threshold is None or math.isfinite(self.positive_threshold),
                "positive_threshold", self.positive_threshold, "must be None or a finite number")
        require(self.early_stopping is None or self.loss.startswith("rating"), "early_stopping",
                self.early_stopping, f"watches validation RMSE, which loss={self.loss!r} does "
                "not optimise; use loss='rating+...' or leave early_stopping unset")
