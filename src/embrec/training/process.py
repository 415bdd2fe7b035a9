"""Process-wide state ``fit`` sets once and restores: device, torch threads, float mode, GC.

``fit`` leaves no process-wide state changed: torch's thread count and the
flush-to-zero mode are set once (never inside the loop) and restored as they were
found. Python's cycle collector is paused for the loop (:func:`paused`): the loop
makes no reference cycles, but its short-lived tensors trigger collections that scan
every object of the process (``benchmarks/results/engine.md``, collector). Pauses are
counted, so fits in several threads leave the collector as the first found it.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

import torch

from embrec.config import TrainConfig
from embrec.device import resolve_device

__all__ = ["SMALL_BATCH", "flushes_denormals", "paused", "process_state", "training_device"]

SMALL_BATCH = 32_768
"""Below this batch size ``num_threads=None`` trains on one thread (see TrainConfig)."""


def training_device(config: TrainConfig) -> torch.device:
    """The device ``config`` trains on: ``device``, where ``auto`` at ``batch_size=1`` is the CPU.

    Per-rating training is the CPU kernel's work (:mod:`embrec.kernels`); on a GPU every
    rating would be a round of kernel launches, thousands of times slower.
    """
    if config.device == "auto" and config.batch_size == 1:
        return torch.device("cpu")
    return resolve_device(config.device)


@contextlib.contextmanager
def process_state(config: TrainConfig, device: torch.device) -> Iterator[int]:
    """Set torch's CPU threads, flush-to-zero and Python's cycle collector for ``fit``; restore all.

    Yields the thread count. Adam's moments of rarely used embedding rows decay
    geometrically into denormal floats, which x86 CPUs process far slower; Keras
    flushes them too (TensorFlow sets flush-to-zero in its CPU threads).
    """
    before, flushing = torch.get_num_threads(), flushes_denormals()
    small = config.batch_size < SMALL_BATCH  # see TrainConfig.num_threads
    threads = (config.num_threads or (1 if small else before)) if device.type == "cpu" else before
    try:
        if threads != before:
            torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        with paused():
            yield threads
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
        torch.set_flush_denormal(flushing)


def flushes_denormals() -> bool:
    """Whether the CPU currently flushes denormal floats to zero (torch has no getter)."""
    return float(torch.tensor([1e-39], dtype=torch.float32).mul(1.0)) == 0.0


class _Pauses:
    lock = threading.Lock()
    count = 0
    was_enabled = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause the cycle collector for the block (nested and concurrent blocks included)."""
    with _Pauses.lock:
        if _Pauses.count == 0:
            _Pauses.was_enabled = gc.isenabled()
            gc.disable()
        _Pauses.count += 1
    try:
        yield
    finally:
        with _Pauses.lock:
            _Pauses.count -= 1
            if _Pauses.count == 0 and _Pauses.was_enabled:
                gc.enable()
