"""A pytest plugin for benchmarks/seed_sweep.py: finds and forces unseeded training runs.

Loaded with ``-p seed_sweep_plugin`` (``benchmarks/`` on ``PYTHONPATH``). Every ``fit`` whose
``TrainConfig.seed`` is ``None`` (no seed given: ``embrec train`` without ``--seed``, a config
file without ``seed``) draws its seed in ``embrec.training.fit._seed``; this plugin wraps that
function, in this process only (not in subprocesses a test starts):

* ``EMBREC_SEED_LOG=path``: append the id of the running test to ``path`` at each such draw;
* ``EMBREC_FORCE_SEED=k``: make each such draw return ``k``, so a test's outcome can be
  measured over many seeds;
* ``EMBREC_FORCE_SEEDS=N``: run every test N times in this one process, once per seed
  ``0..N-1`` (test ids gain ``seedK``), each unseeded draw forced to that seed;
* ``EMBREC_OVERRIDE_SEEDED=1``: force the seed of seeded fits too (``TrainConfig(seed=...)``),
  to see whether a test pinned to one seed passes only by luck;
* ``EMBREC_DEGENERATE_LOG=path``: append one JSON line per ``embrec.commands.runs.degenerate`` check
  (the test, the train RMSE, the mean-predictor RMSE it must beat, the problems found), to
  see how close a CLI run came to exit 3;
* ``EMBREC_TEST_ORDER=reverse`` or ``shuffle:N``: run the collected tests backwards or in
  the order of ``random.Random(N)``, to find tests that pass only after (or before) others.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_current = {"test": "<collection or a fixture outside a test>"}
_forced: dict[str, int | None] = {"seed": None}
_SEEDS = int(os.environ.get("EMBREC_FORCE_SEEDS", "0"))

if _SEEDS:
    @pytest.fixture(autouse=True, params=range(_SEEDS), ids=lambda k: f"seed{k}")
    def _forced_seed(request: pytest.FixtureRequest) -> Any:
        """Every test once per seed 0..N-1, its unseeded draws forced to that seed."""
        _forced["seed"] = request.param
        yield
        _forced["seed"] = None


def pytest_configure(config: pytest.Config) -> None:
    import importlib

    fit_module = importlib.import_module("embrec.training.fit")  # the package's fit is a function
    real = fit_module._seed
    forced = os.environ.get("EMBREC_FORCE_SEED")
    log = os.environ.get("EMBREC_SEED_LOG")

    override = os.environ.get("EMBREC_OVERRIDE_SEEDED") == "1"

    def seed(train_config: Any, hooks: Any, group: Any) -> int:
        unseeded = train_config.seed is None or override
        if unseeded and getattr(hooks, "snapshot", None) is None:
            if log:
                with open(log, "a") as handle:
                    handle.write(_current["test"] + "\n")
            value = _forced["seed"] if _forced["seed"] is not None else forced
            if value is not None:
                return int(value) if group is None else int(group.broadcast_int(int(value)))
        return int(real(train_config, hooks, group))

    fit_module._seed = seed  # type: ignore[assignment]
    if os.environ.get("EMBREC_DEGENERATE_LOG"):
        _log_degenerate_checks(os.environ["EMBREC_DEGENERATE_LOG"])


def _log_degenerate_checks(path: str) -> None:
    import embrec.commands.runs as runs

    real = runs.degenerate

    def degenerate(rec: Any, train: Any, metrics: dict[str, float], diverged: list[str]) -> Any:
        problems = real(rec, train, metrics, diverged)
        row = {"test": _current["test"], "seed": rec.metadata.get("seed"),
               "rmse": metrics.get("rmse"),
               "baseline": float(train.rating.std()) if len(train) else None,
               "problems": problems}
        with open(path, "a") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
        return problems

    runs.degenerate = degenerate  # type: ignore[assignment]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order = os.environ.get("EMBREC_TEST_ORDER", "")
    if order == "reverse":
        items.reverse()
    elif order.startswith("shuffle:"):
        import random

        random.Random(int(order.split(":")[1])).shuffle(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _current["test"] = item.nodeid
