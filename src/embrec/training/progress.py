"""Per-epoch progress bars (tqdm): rows done and the recent training loss."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from embrec.config import TrainConfig

__all__ = ["close_bar", "progress_bar", "report"]


def report(bar: Any, predictions: Tensor, rating: Tensor, stop: int, size: int) -> None:
    """Move the progress bar to row ``stop``; show the loss over the last ``50 * size`` rows."""
    window = slice(max(0, stop - 50 * size), stop)
    bar.update(stop - bar.n)
    bar.set_postfix(loss=f"{float((predictions[window] - rating[window]).square().mean()):.4f}")


def progress_bar(config: TrainConfig, epoch: int, n: int, hooks: Any) -> Any:
    """A tqdm bar for the epoch, or ``None`` (no progress asked, or not rank 0)."""
    if not config.progress or (hooks.parallel is not None and hooks.parallel.group.rank != 0):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n, desc=f"epoch {epoch}/{config.epochs}", unit="rating", leave=True)


def close_bar(bar: Any, record: dict[str, float] | None = None) -> None:
    """Finish the epoch's bar, showing the epoch's RMSEs when it completed."""
    if bar is None:
        return
    if record is not None:
        bar.update(bar.total - bar.n)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k.endswith("rmse")})
    bar.close()
