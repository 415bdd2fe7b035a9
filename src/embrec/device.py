"""The one device resolver: a ``device`` setting (``auto``, ``cpu``, ``cuda:N``...) to a device.

Training, closed-form solving and loading a model folder all resolve their device
here, so a device this machine lacks is one clear :class:`~embrec.errors.ConfigError`
before any tensor moves (torch itself stops deep inside with a bare ``AssertionError``).
"""

from __future__ import annotations

import torch

from embrec.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device) -> torch.device:
    """Return the device ``name`` means; ``auto`` is CUDA when available, else the CPU.

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (or ``mps``), or a device.

    Returns:
        The device.

    Raises:
        ConfigError: if ``name`` is not a device, or names a GPU this machine does not have.
    """
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError("device", str(name), f"is not a device ({error})",
                          hint="use cpu, cuda, cuda:N or auto") from None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        found = "no CUDA GPU found" if count == 0 else f"only {count} CUDA device(s)"
        raise ConfigError("device", str(name), f"is not available: {found}",
                          hint="use --device cpu (or auto, which falls back to the CPU)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", str(name), "is not available: no Apple GPU found",
                          hint="use --device cpu (or auto, which falls back to the CPU)")
    return device
