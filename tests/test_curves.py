"""The learning-curves figure: whole-number epochs, labelled curves, the test figure, a title."""

from __future__ import annotations

from pathlib import Path

from embrec.curves import learning_curves, plot_learning_curves

HISTORY = [{"epoch": 1.0, "train_rmse": 1.58, "validation_rmse": 1.1},
           {"epoch": 2.0, "train_rmse": 1.24, "validation_rmse": 1.0},
           {"epoch": 3.0, "train_rmse": 1.10, "validation_rmse": 1.05}]
META = {"data": "/home/x/.cache/embrec/datasets/ml-100k", "preset": "movielens-notebook",
        "metrics": {"train": {"rmse": 0.939}, "test": {"rmse": 0.974}}}


def test_figure_marks_epochs_curves_and_the_final_models_figures() -> None:
    figure = learning_curves(HISTORY, metadata=META, model_name="mlp", early_stopping=True)
    axes = figure.axes[0]
    assert axes.get_title() == "Learning curves: mlp on ml-100k (preset movielens-notebook)"
    ticks = [t for t in axes.get_xticks() if 1 <= t <= 3]
    assert ticks == [1.0, 2.0, 3.0]
    labels = [line.get_label() for line in axes.get_lines()]
    assert any(label.startswith("train, running") for label in labels)
    assert any(label.startswith("validation") for label in labels)
    test = next(line for line in axes.get_lines() if line.get_label().startswith("test"))
    assert "0.974" in test.get_label()
    assert list(test.get_xdata()) == [2]  # early stopping kept epoch 2's weights
    train = next(line for line in axes.get_lines() if "train, final" in line.get_label())
    assert list(train.get_ydata()) == [0.939]


def test_no_validation_curve_without_validation(tmp_path: Path) -> None:
    history = [{k: v for k, v in r.items() if k != "validation_rmse"} for r in HISTORY]
    figure = learning_curves(history, model_name="biased-mf")
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels == ["train, running RMSE while each epoch trains (training mode)"]
    assert plot_learning_curves(history, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert not plot_learning_curves([], tmp_path / "none.png")
