"""Blends chosen on validation rows: fit several models, mix them with non-negative weights.

:func:`blend` (``embrec blend``) fits a :class:`~embrec.models.blend.BlendConfig`
(see :mod:`embrec.training.blend_fit`: weights chosen on carved training rows, never on
test rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from embrec.config import TrainConfig, require_choice
from embrec.data.ratings import Ratings
from embrec.models.base import ModelConfig
from embrec.models.blend import BlendConfig
from embrec.recommender import Recommender
from embrec.training.blend_fit import fit_blend, nonnegative_weights, ranking_weights, simplex

__all__ = ["blend", "fit_blend", "nonnegative_weights", "ranking_weights", "simplex"]

Component = ModelConfig | tuple[ModelConfig, TrainConfig | None] | str | dict[str, Any]
"""A model config, a (model config, train config) pair, a preset name, or a JSON spec."""


def _spec(component: Component) -> dict[str, Any]:
    from embrec.presets import PRESETS

    if isinstance(component, dict):
        return component
    if isinstance(component, str):
        require_choice("component", component, PRESETS)
        preset = PRESETS[component]
        component = (preset.model, preset.train)
    model, train = component if isinstance(component, tuple) else (component, None)
    spec: dict[str, Any] = {"model": model.name, "config": model.to_dict()}
    if train is not None:
        spec["train"] = train.to_dict()
    return spec


def blend(components: Sequence[Component], train: Ratings, *, target: str = "rating",
          validation: float = 0.1, refit: bool = True, seed: int | None = 0,
          device: str = "auto", **options: Any) -> Recommender:
    """Fit ``components`` and blend them with weights chosen on carved validation rows.

    Args:
        components: the models: configs, (model config, train config) pairs,
            preset names (``"default"``) or ``{"model", "config", "train"}`` dicts.
        train: the training ratings (the weights are chosen on a part of them).
        target: ``"rating"`` (least squares) or ``"ranking"`` (NDCG@k).
        validation: the fraction of ``train`` carved out to choose the weights.
        refit: fit the components again on all of ``train`` afterwards.
        seed: seeds the carve and every component without a seed of its own.
        device: where to fit.
        **options: other :class:`~embrec.models.blend.BlendConfig` fields (``k``, ``steps``).

    Returns:
        The blend, a recommender like any other; ``rec.model.weights`` holds the
        weights and ``rec.model.report`` what was measured on the validation rows.

    Raises:
        ConfigError: for a bad component or setting, or a rating blend of a model
            whose scores are not ratings.
    """
    from embrec.training.closed_form import fit_closed_form
    from embrec.training.fit import fit

    config = BlendConfig(components=tuple(_spec(c) for c in components), target=target,
                         validation=validation, refit=refit, **options)
    return fit_closed_form(config, train, TrainConfig(seed=seed, device=device), fit=fit)


