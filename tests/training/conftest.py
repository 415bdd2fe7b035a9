"""Fixtures for the training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Train with one torch thread, as each distributed rank does; restore the count after.

    Setting it in the test body instead left every later test of the session on one thread.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture()
def dead_gmf_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build every GMF with its first tower layer's biases at -100: those ReLU units never fire.

    A unit that never fires gets no gradient, so it stays dead through training whatever
    the seed: the dead-unit tests force the state they check instead of waiting for a
    high learning rate to kill the unit on a lucky seed.
    """
    from embrec.models import GMFConfig

    build = GMFConfig.build

    def dead(self: GMFConfig, *args: object, **kwargs: object) -> torch.nn.Module:
        model = build(self, *args, **kwargs)  # type: ignore[arg-type]
        with torch.no_grad():
            model.tower.layer(0).bias.fill_(-100.0)
        return model

    monkeypatch.setattr(GMFConfig, "build", dead)
