"""Fit the models that solve themselves (``popular``, ``ease``, ``autorec``...): not fit()'s loop.

``fit()`` hands a :class:`ClosedFormConfig` to :func:`fit_closed_form`, which wraps the
solved model in a ``Recommender`` with the same metadata keys as any trained model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeGuard, runtime_checkable

import torch

from embrec.config import TrainConfig, require
from embrec.data.ratings import Ratings
from embrec.device import resolve_device
from embrec.recommender import Recommender

__all__ = ["ClosedFormConfig", "SolvedWithFit", "fit_closed_form", "solves_itself"]


@runtime_checkable
class ClosedFormConfig(Protocol):
    """A model config whose model solves itself (``closed_form = True``), not in ``fit()``'s loop.

    Attributes:
        scores: what the model's scores mean, ``"rating"`` or ``"ranking"``.
    """

    closed_form: ClassVar[bool]

    @property
    def scores(self) -> str: ...

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float],
              mean: float) -> Any:
        """Create the unsolved model: a ``RatingModel`` with ``solve(train: Ratings)``."""
        ...


def solves_itself(model_config: object) -> TypeGuard[ClosedFormConfig]:
    """Whether ``model_config``'s model is solved in one call instead of trained in epochs."""
    return isinstance(model_config, ClosedFormConfig) and model_config.closed_form


@runtime_checkable
class SolvedWithFit(Protocol):
    """A model made of other models (a blend): ``fit`` trains its parts, then it solves."""

    def solve_with(self, train: Ratings, fit: Callable[..., Recommender]) -> None: ...


def fit_closed_form(model_config: ClosedFormConfig, train: Ratings,
                    train_config: TrainConfig | None = None, *,
                    metadata: dict[str, Any] | None = None,
                    fit: Callable[..., Recommender] | None = None) -> Recommender:
    """Fit a closed-form model on ``train``; return the recommender (empty ``history``).

    Of ``train_config`` (recorded with the model) only ``device`` and ``seed`` matter: a
    model that trains by its own loop (``autorec``) carries its epochs and learning rate in
    its config, and draws from torch's generator, seeded here (and restored after).
    ``metadata`` holds extra facts to record; ``fit`` (:func:`embrec.training.fit.fit`,
    handed in by its caller so this module does not import it) trains a blend's parts.

    Raises:
        ConfigError: if ``train`` is empty, the device is not available, or the model
            refuses the data's size.
    """
    config = train_config or TrainConfig()
    require(len(train) > 0, "train", f"{len(train)} ratings", "must hold at least one rating")
    device = resolve_device(config.device)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if config.seed is not None:
            torch.manual_seed(config.seed)
        model = model_config.build(train.n_users, train.n_items, scale=train.scale,
                                   mean=float(train.rating.mean())).to(device)
        if isinstance(model, SolvedWithFit):
            if fit is None:
                raise TypeError(f"{type(model).__name__} fits other models: pass fit=")
            model.solve_with(train, fit)
        else:
            model.solve(train)
    facts: dict[str, Any] = {"seed": config.seed, "device": str(device),
                             "scores": model_config.scores,
                             "fit_seconds": time.perf_counter() - started, "diagnostics": [],
                             "world_size": 1, "rows_per_rank": [len(train)],
                             **(metadata or {})}
    return Recommender.from_training(model, model_config,  # type: ignore[arg-type]
                                     config, train, metadata=facts)
