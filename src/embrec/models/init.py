"""Weight initialisation schemes shared by every model, named after where they come from.

``keras`` reproduces Keras' defaults, so the notebook presets start where the
notebooks started: embeddings uniform in [-0.05, 0.05], dense kernels
Glorot-uniform, biases zero. ``normal`` draws embeddings from N(0, std²) (the
usual matrix-factorisation start, std 0.01 to 0.1) and dense kernels He-normal,
which suits ReLU towers, and starts the output bias at the mean rating so the
first steps are not spent learning it. This module also holds the output
bounding (a sigmoid over a slightly widened rating scale) that every model offers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import cast

import torch
from torch import Tensor, nn

from embrec.config import require, require_choice

__all__ = ["INITS", "bound", "check_embedding", "init_embedding", "init_layers", "logit",
           "output_bounds", "start_output"]

INITS = ("keras", "normal")

KERAS_EMBEDDING_RANGE = 0.05
"""Keras' ``RandomUniform(-0.05, 0.05)`` default for ``Embedding``."""

BOUND_MARGIN = 0.1
"""Bounded outputs cover the rating scale widened by this fraction of its range on
each side (fastai's ``y_range=(0, 5.5)`` for 0.5-5 stars is the same idea), so the
sigmoid can reach the end ratings without saturating."""


def init_embedding(weight: Tensor, scheme: str, std: float) -> None:
    """Initialise a ``(rows, dim)`` table in place: ``keras`` (uniform ±0.05) or N(0, std²)."""
    with torch.no_grad():
        if scheme == "keras":
            weight.uniform_(-KERAS_EMBEDDING_RANGE, KERAS_EMBEDDING_RANGE)
        else:
            weight.normal_(0.0, std)


def init_layers(layers: Iterable[nn.Module], scheme: str) -> None:
    """Initialise dense layers in place: Glorot-uniform (keras) or He-normal, zero bias."""
    with torch.no_grad():
        for layer in cast(Iterable[nn.Linear], layers):
            if scheme == "keras":
                nn.init.xavier_uniform_(layer.weight)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                layer.bias.zero_()


def check_embedding(embedding_dim: int, init: str, init_std: float) -> None:
    """Validate the embedding fields every embedding model's config has.

    Raises:
        ConfigError: naming the field, its value and the constraint.
    """
    require(embedding_dim >= 1, "embedding_dim", embedding_dim, "must be >= 1")
    require_choice("init", init, INITS)
    require(init_std > 0, "init_std", init_std, "must be > 0")


def output_bounds(scale: tuple[float, float]) -> tuple[float, float]:
    """Return ``(low, width)`` of the widened rating ``scale`` a bounded model's sigmoid
    spans: a prediction is ``low + width * sigmoid(z)``."""
    margin = BOUND_MARGIN * (scale[1] - scale[0])
    return scale[0] - margin, scale[1] - scale[0] + 2 * margin


def logit(value: float) -> float:
    """Return the inverse sigmoid of ``value`` in (0, 1), clamped away from 0 and 1."""
    value = min(max(value, 1e-6), 1 - 1e-6)
    return math.log(value / (1 - value))


def start_output(layer: nn.Linear, mean: float, bounds: tuple[float, float] | None) -> None:
    """Set a one-unit output layer's bias so the untrained model predicts ``mean``
    (through a bounded output's ``(low, width)`` when given: the bias is then the logit)."""
    if bounds is None:
        start = mean
    else:  # a zero-width scale (every rating equal) has one possible output: any bias will do
        start = logit((mean - bounds[0]) / bounds[1]) if bounds[1] > 0 else 0.0
    with torch.no_grad():
        layer.bias.fill_(start)


def bound(z: Tensor, bounds: tuple[float, float] | None) -> Tensor:
    """Return ``low + width * sigmoid(z)`` for a bounded model, else ``z``."""
    return z if bounds is None else torch.sigmoid(z) * bounds[1] + bounds[0]
