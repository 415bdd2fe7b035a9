"""Per-epoch progress: a tqdm bar on a terminal, one plain line per epoch elsewhere.

A bar redraws itself with carriage returns; written to a log file or a CI job's
output it leaves dozens of fragments an epoch. When standard error is not a
terminal, :class:`EpochLine` takes the bar's place with the same methods
(``update``, ``set_postfix``, ``close``) and prints one line when the epoch ends.
A ranking run shows its training loss and validation NDCG@10 instead of RMSE.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from torch import Tensor

from embrec.config import TrainConfig

__all__ = ["EpochLine", "close_bar", "on_terminal", "progress_bar", "report"]

SHOWN = ("rmse", "_loss", "ndcg@10")
"""The record's figures a finished epoch shows (by key suffix)."""


def report(bar: Any, predictions: Tensor, rating: Tensor, stop: int, size: int) -> None:
    """Move the progress bar to row ``stop``; show the loss over the last ``50 * size`` rows."""
    window = slice(max(0, stop - 50 * size), stop)
    bar.update(stop - bar.n)
    bar.set_postfix(loss=f"{float((predictions[window] - rating[window]).square().mean()):.4f}")


def progress_bar(config: TrainConfig, epoch: int, n: int, hooks: Any) -> Any:
    """A tqdm bar for the epoch, or ``None`` (no progress asked, or not rank 0)."""
    if not config.progress or (hooks.parallel is not None and hooks.parallel.group.rank != 0):
        return None
    if not on_terminal():
        return EpochLine(n, f"epoch {epoch}/{config.epochs}")
    from tqdm.auto import tqdm

    return tqdm(total=n, desc=f"epoch {epoch}/{config.epochs}", unit="rating", leave=True)


def close_bar(bar: Any, record: dict[str, float] | None = None) -> None:
    """Finish the epoch's bar, showing the epoch's RMSEs when it completed."""
    if bar is None:
        return
    if record is not None:
        bar.update(bar.total - bar.n)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k.endswith(SHOWN)})
    bar.close()


def on_terminal() -> bool:
    """Whether standard error is a terminal (where a redrawn bar reads well)."""
    return sys.stderr.isatty()


class EpochLine:
    """Counts like a progress bar; prints ``epoch 3/20: 90,000 ratings in 0.41 s, ...`` once.

    The figures are the bar's last postfix (:func:`close_bar` sets the epoch's
    RMSE, or a ranking run's loss and NDCG), written ``key=value`` as tqdm does.
    """

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.n, self.desc = total, 0, desc
        self.postfix: dict[str, Any] = {}
        self.started = time.perf_counter()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more ratings."""
        self.n += n

    def set_postfix(self, values: dict[str, Any] | None = None, **more: Any) -> None:
        """Keep the figures to print at the end (the last ones given win)."""
        self.postfix = {**(values or {}), **more}

    def close(self) -> None:
        """Print the epoch's line on standard error."""
        seconds = time.perf_counter() - self.started
        figures = "".join(f", {key}={value}" for key, value in self.postfix.items())
        print(f"{self.desc}: {self.n:,} ratings in {seconds:.2f} s{figures}", file=sys.stderr,
              flush=True)
