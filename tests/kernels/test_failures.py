"""Per-rating fits where things go wrong: no writable Numba cache, a failing thread, no data."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from numba.core import caching

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.kernels.compiled import cached_njit
from embrec.kernels.hogwild import train_range
from embrec.models import BiasedMFConfig
from embrec.training.fit import fit


def test_kernels_compile_uncached_where_no_cache_folder_is_writable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # what a read-only site-packages and an unwritable home leave Numba: no locator
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # by version
    monkeypatch.setattr(impl, "_locator_classes", [])
    with pytest.raises(RuntimeError, match="cannot cache"):
        caching.FunctionCache(test_kernels_compile_uncached_where_no_cache_folder_is_writable)

    def twice(x: float) -> float:
        return 2.0 * x

    assert cached_njit(nogil=True)(twice)(1.5) == 3.0


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("failing", ["caller", "helper"])
def test_a_failing_thread_stops_the_others_and_surfaces(failing: str) -> None:
    caller, trained = threading.get_ident(), []

    def kernel(start: int, stop: int, row: int, shared: list[np.ndarray]) -> None:
        on_caller = threading.get_ident() == caller
        if start >= 2 and on_caller == (failing == "caller"):
            raise Boom
        trained.append(start)
        threading.Event().wait(0.002)

    with pytest.raises(Boom):
        train_range(kernel, [(k, k + 1, k) for k in range(2000)], 3, [np.zeros(1)])
    assert len(trained) < 100  # not the rest of the epoch on the threads left


def test_no_training_ratings_is_a_config_error_not_a_divergence() -> None:
    empty = Ratings.from_arrays([], [], [], scale=(1, 5))
    with pytest.raises(ConfigError, match="no rating"):
        fit(BiasedMFConfig(embedding_dim=4), empty, TrainConfig(batch_size=1, epochs=1, seed=0))
