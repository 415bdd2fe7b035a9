"""The cycle collector's pause is counted: overlapping fits leave it as the first found it."""

from __future__ import annotations

import gc
import threading

import pytest

from embrec.training import process


@pytest.mark.parametrize("enabled", [True, False])
def test_overlapping_pauses_restore_the_first_state(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    try:
        first = process.paused()
        first.__enter__()
        second = process.paused()
        second.__enter__()  # a second fit starts while the first trains: it sees gc off
        assert not gc.isenabled()
        first.__exit__(None, None, None)  # the first ends before the second
        assert not gc.isenabled()  # still training in the second
        second.__exit__(None, None, None)
        assert gc.isenabled() == enabled  # as found before either began
    finally:
        gc.enable()


def test_fits_in_threads_leave_the_collector_on() -> None:
    gate = threading.Barrier(4)

    def train() -> None:
        with process.paused():
            gate.wait(timeout=10)  # every thread is inside at once
            assert not gc.isenabled()

    threads = [threading.Thread(target=train) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert gc.isenabled()
