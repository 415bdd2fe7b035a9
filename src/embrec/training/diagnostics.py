"""Health checks after training: dead ReLU units, constant predictions and over-fitting.

Each finding is issued as a :class:`~embrec.errors.TrainingWarning` and recorded
in ``rec.metadata["diagnostics"]`` as ``{"kind": ..., "message": ...}``. The
checks run in eval mode on a fixed sample of up to 4,096 training pairs:

- **dead units**: a ReLU unit of a dense tower that is zero for every sampled
  pair never passes a gradient again. The Goodreads notebook's single
  Dense(1, relu) often dies, and then the model predicts one constant.
- **constant predictions**: the predictions' standard deviation over the sample
  is below 0.1% of the rating scale's range.
- **over-fitting**: validation RMSE more than ``OVERFIT_RATIO`` = 1.3 times the
  train RMSE (both in eval mode, predictions clipped to the scale); well-regularised
  models stay below it (``benchmarks/results/model_notes.md``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from embrec.errors import TrainingWarning
from embrec.models.base import RatingModel, Tower
from embrec.training.batches import Columns

__all__ = ["OVERFIT_RATIO", "clipped", "diagnose", "error_metrics"]

OVERFIT_RATIO = 1.3
CONSTANT_SPREAD = 1e-3
SAMPLE = 4096


def error_metrics(predictions: Tensor, rating: Tensor, prefix: str) -> dict[str, float]:
    """Return ``{prefix}_rmse`` and ``{prefix}_mae`` (one host sync for both)."""
    error = predictions - rating
    both = torch.stack((error.square().mean(), error.abs().mean())).tolist()
    return {f"{prefix}_rmse": float(both[0]) ** 0.5, f"{prefix}_mae": float(both[1])}


def diagnose(model: RatingModel, data: Columns, held: Columns | None,
             history: list[dict[str, float]], scale: tuple[float, float],
             *, ratings: bool = True) -> list[dict[str, Any]]:
    """Run the checks on the trained ``model``, warn about each finding and return them.

    ``held`` is the validation columns, if any; nothing is checked without a
    ``history``. A model whose scores are not ``ratings`` is checked unclipped,
    and not for over-fitting (no RMSE). Returns one ``{"kind", "message", ...}``
    dict per finding.
    """
    if len(data) == 0 or not history:
        return []
    size = min(SAMPLE, len(data))
    rows = torch.arange(size, device=data.rating.device) * (len(data) - 1) // max(size - 1, 1)
    sample = Columns(*(c[rows] for c in (data.user, data.item, data.rating)))
    dense = [m for m in model.modules() if isinstance(m, Tower)]  # hints fit the model at hand
    relu = any(m.activation == "relu" for m in dense)
    findings = _dead_units(model, sample)
    predictions = clipped(model, sample, scale if ratings else (-torch.inf, torch.inf))
    spread = float(predictions.std()) if len(predictions) > 1 else 0.0
    # one pair cannot show a constant (a rank's one-row shard, a one-rating data set)
    if len(predictions) > 1 and spread < CONSTANT_SPREAD * (scale[1] - scale[0]):
        # a dead unit passes no gradient: tanh has none to die, and biases still learn around it
        # (bounded=True does neither)
        cause = ("a dead ReLU unit or too much regularisation; try activation='tanh', or "
                 "biases=True so the biases still predict" if relu else
                 "too much regularisation or too large a step; lower weight_decay or "
                 "learning_rate")
        findings.append({"kind": "constant_predictions", "std": spread, "message": (
            f"the model predicts (almost) one constant, {float(predictions.mean()):.3f}, for "
            f"every pair (std {spread:.2g})\n  hint: {cause}")})
    if ratings and held is not None and len(held):
        # every fitted row, as the train row of `embrec train`'s table: the two figures agree
        train_rmse = error_metrics(clipped(model, data, scale), data.rating, "t")["t_rmse"]
        held_rmse = error_metrics(clipped(model, held, scale), held.rating, "v")["v_rmse"]
        ratio = held_rmse / max(train_rmse, 1e-12)
        if ratio > OVERFIT_RATIO:
            findings.append({"kind": "overfitting", "ratio": ratio, "message": (
                f"over-fitting: validation RMSE {held_rmse:.3f} is {ratio:.2f}x the train "
                f"RMSE {train_rmse:.3f} (threshold {OVERFIT_RATIO})\n  hint: raise "
                f"weight_decay{' or dropout' if dense else ''}, or stop earlier with "
                "early_stopping")})
    for finding in findings:
        warnings.warn(finding["message"], TrainingWarning, stacklevel=3)
    return findings


def clipped(model: RatingModel, data: Columns, scale: tuple[float, float],
            chunk: int = 1 << 16) -> Tensor:
    """The eval-mode predictions of ``data``'s pairs, clipped to ``scale``: ``(n,)``."""
    model.eval()
    with torch.no_grad():
        out = [model(data.user[s:s + chunk].long(), data.item[s:s + chunk].long())
               for s in range(0, len(data), chunk)]
    return torch.cat(out).clamp_(scale[0], scale[1])


def _dead_units(model: RatingModel, sample: Columns) -> list[dict[str, Any]]:
    """Find ReLU units of every dense tower that are zero for every sampled pair."""
    inputs: dict[str, Tensor] = {}
    towers = {name: m for name, m in model.named_modules()
              if isinstance(m, Tower) and m.activation == "relu"}
    hooks = [tower.register_forward_pre_hook(
        lambda module, args, name=name: inputs.__setitem__(name, args[0]))
        for name, tower in towers.items()]
    try:
        clipped(model, sample, (-float("inf"), float("inf")))
    finally:
        for hook in hooks:
            hook.remove()
    findings: list[dict[str, Any]] = []
    with torch.no_grad():
        for name, tower in towers.items():
            for layer, output in enumerate(tower.hidden_outputs(inputs[name])):
                dead = int((output.amax(0) <= 0).sum())
                if dead:
                    findings.append({"kind": "dead_units", "layer": f"{name}.{layer}",
                                     "dead": dead, "units": output.shape[1], "message": (
                        f"{dead} of {output.shape[1]} ReLU units of {name} layer {layer} are "
                        f"never active on {len(sample)} training pairs (dead)\n  hint: they "
                        "pass no gradient; use activation='tanh', more units or a lower "
                        "learning_rate")})
    return findings
