"""Fit the models that solve themselves (``popular``, ``ease``, ``autorec``): not fit()'s loop.

``fit()`` hands a config whose class says ``closed_form = True`` to
:func:`fit_closed_form`, which builds the model, lets it solve itself on the
training ratings (``model.solve(train)``) and wraps it in a ``Recommender``
like any trained model, with the same metadata keys (seed, device, fit seconds,
diagnostics) and ``"scores"`` saying what its scores mean.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import torch

from embrec.config import TrainConfig, require
from embrec.data.ratings import Ratings
from embrec.recommender import Recommender

__all__ = ["fit_closed_form"]


def fit_closed_form(model_config: Any, train: Ratings, train_config: TrainConfig | None = None,
                    *, metadata: dict[str, Any] | None = None) -> Recommender:
    """Fit a closed-form model on ``train``.

    Only ``train_config.device`` and ``seed`` matter: a model that trains by
    its own loop (``autorec``) carries its epochs and learning rate in its config,
    and draws from torch's generator, seeded here.

    Args:
        model_config: a config whose class has ``closed_form = True``; the model it
            builds has ``solve(train)``.
        train: the training ratings.
        train_config: the training config (recorded with the model).
        metadata: extra facts to record in the recommender's ``metadata``.

    Returns:
        The fitted recommender (empty ``history``).

    Raises:
        ConfigError: if ``train`` is empty, or the model refuses the data's size.
    """
    config = train_config or TrainConfig()
    require(len(train) > 0, "train", f"{len(train)} ratings", "must hold at least one rating")
    device = _device(config.device)
    started = time.perf_counter()
    with _seeded(config.seed, device):  # a solver that draws (autorec) draws from the seed
        model = model_config.build(train.n_users, train.n_items, scale=train.scale,
                                   mean=float(train.rating.mean())).to(device)
        model.solve(train)
    facts: dict[str, Any] = {"seed": config.seed, "device": str(device),
                             "scores": getattr(model_config, "scores", "rating"),
                             "fit_seconds": time.perf_counter() - started, "diagnostics": [],
                             "world_size": 1, "rows_per_rank": [len(train)],
                             **(metadata or {})}
    return Recommender.from_training(model, model_config, config, train, metadata=facts)


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators inside, and leave them as they were outside."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
