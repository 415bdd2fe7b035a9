"""The learning-curves figure a saved model carries: RMSE per epoch, and what the table reports.

A ranking run (a model trained with a ranking loss) draws its training loss and,
when validation rows were held out, validation NDCG@10 instead: its scores are
not ratings, so their RMSE says nothing.

``history``'s ``train_rmse`` is the running RMSE of the predictions made *while*
each epoch trained (dropout on, weights still moving), so it sits above the
train RMSE the summary table reports, which is measured afterwards on the final
model in eval mode. The figure draws the two as different things, labelled:
the running curve per epoch, and the final model's train and test RMSE as
marked points at the epoch whose weights were kept. Validation is drawn
per epoch whenever training held some out. A dashed line marks the test RMSE
of the best mean predictor (global, user or item mean): the number to beat.
Epochs sit at whole numbers.

Matplotlib comes with the optional ``plot`` extra (``pip install 'embrec[plot]'``):
without it the figure is skipped with a warning and the model is saved anyway.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from embrec.errors import EmbrecWarning

__all__ = ["learning_curves", "plot_learning_curves", "ranking_curves"]


def plot_learning_curves(history: list[dict[str, float]], path: Path, *,
                         metadata: dict[str, Any] | None = None, model_name: str = "",
                         early_stopping: bool = False) -> bool:
    """Draw RMSE per epoch (and the final model's recorded metrics) into a PNG.

    Args:
        history: per-epoch records with ``epoch``, ``train_rmse`` and, with
            validation, ``validation_rmse``.
        path: the PNG to write.
        metadata: the recommender's metadata: ``metrics`` (train/validation/test
            RMSE of the final model), ``data`` and ``preset`` for the title.
        model_name: the model's registry name, for the title.
        early_stopping: whether the kept weights are those of the best
            validation epoch rather than the last.

    Returns:
        Whether a figure was written (not without a ``train_rmse`` history, nor
        without matplotlib).
    """
    ranking = bool(history) and "train_loss" in history[0]
    if not ranking and (not history or "train_rmse" not in history[0]):
        return False
    try:
        import matplotlib  # noqa: F401  (the optional [plot] extra)
    except ImportError:
        warnings.warn(f"{path.name} not drawn: matplotlib is not installed (pip install "
                      "'embrec[plot]')", EmbrecWarning, stacklevel=2)
        return False
    figure = ranking_curves(history, metadata=metadata, model_name=model_name) if ranking \
        else learning_curves(history, metadata=metadata, model_name=model_name,
                             early_stopping=early_stopping)
    figure.savefig(path, dpi=100)
    return True


def learning_curves(history: list[dict[str, float]], *, metadata: dict[str, Any] | None = None,
                    model_name: str = "", early_stopping: bool = False) -> Any:
    """Return the learning-curves matplotlib ``Figure`` (see :func:`plot_learning_curves`)."""
    meta = metadata or {}
    figure, axes, epochs = _canvas(history)
    axes.plot(epochs, [r["train_rmse"] for r in history], marker="o", color="tab:blue",
              label="train, running RMSE while each epoch trains (training mode)")
    valid = [r.get("validation_rmse", math.nan) for r in history]
    if any(math.isfinite(v) for v in valid):
        axes.plot(epochs, valid, marker="o", color="tab:orange",
                  label="validation, after each epoch (eval mode)")
    kept = epochs[-1]
    if early_stopping and any(math.isfinite(v) for v in valid):
        kept = epochs[min(range(len(valid)), key=lambda k: math.inf if math.isnan(valid[k])
                          else valid[k])]
    _final_points(axes, meta.get("metrics") or {}, kept)
    _baseline(axes, (meta.get("metrics") or {}).get("baselines") or {})
    axes.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
    axes.set(xlabel="epoch", ylabel="RMSE", title=_title(meta, model_name))
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def ranking_curves(history: list[dict[str, float]], *, metadata: dict[str, Any] | None = None,
                   model_name: str = "") -> Any:
    """A ranking run's figure: training loss per epoch, and validation NDCG@10 when held out."""
    figure, axes, epochs = _canvas(history)
    axes.plot(epochs, [r["train_loss"] for r in history], marker="o", color="tab:blue",
              label="training loss (ranking objective)")
    axes.set(xlabel="epoch", ylabel="training loss", title=_title(metadata or {}, model_name))
    handles, labels = axes.get_legend_handles_labels()
    ndcg = [r.get("validation_ndcg@10", math.nan) for r in history]
    if any(math.isfinite(v) for v in ndcg):
        right = axes.twinx()
        right.plot(epochs, ndcg, marker="o", color="tab:orange",
                   label="validation NDCG@10, after each epoch")
        right.set_ylabel("validation NDCG@10")
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    axes.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                ncol=2)
    figure.tight_layout()
    return figure


def _final_points(axes: Any, metrics: dict[str, dict[str, float]], epoch: int) -> None:
    """Mark the final model's RMSE on each split (the summary table's figures)."""
    styles = {"train": ("tab:blue", "s"), "test": ("tab:red", "*")}
    for split, (color, marker) in styles.items():
        rmse = (metrics.get(split) or {}).get("rmse")
        if rmse is None or not math.isfinite(rmse):
            continue
        axes.plot([epoch], [rmse], linestyle="none", marker=marker, color=color,
                  markersize=13 if marker == "*" else 8, markeredgecolor="black",
                  label=f"{split}, final model, eval mode (the table): {rmse:.3f}")
        if split == "test":
            axes.annotate(f"test {rmse:.3f}", (epoch, rmse), textcoords="offset points",
                          xytext=(-10, 7), ha="right", fontsize=9, color=color)


def _baseline(axes: Any, baselines: dict[str, float]) -> None:
    """A dashed line at the best mean predictor's test RMSE: the number the model must beat."""
    finite = {k: v for k, v in baselines.items() if isinstance(v, float) and math.isfinite(v)}
    if not finite:
        return
    name = min(finite, key=lambda k: finite[k])
    axes.axhline(finite[name], color="grey", linestyle="--", linewidth=1,
                 label=f"test, predicting the {name.replace('_', ' ')}: {finite[name]:.3f}")


def _title(meta: dict[str, Any], model_name: str) -> str:
    data = meta.get("data")
    parts = [model_name or "model"]
    if data:
        parts.append(f"on {Path(str(data)).name}")
    if meta.get("preset"):
        parts.append(f"(preset {meta['preset']})")
    return "Learning curves: " + " ".join(parts)


def _canvas(history: list[dict[str, float]]) -> tuple[Any, Any, list[int]]:
    """An off-screen figure, its gridded axes (whole-number epochs) and the epoch numbers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7, 4.4))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    return figure, axes, [int(r.get("epoch", k + 1)) for k, r in enumerate(history)]
