"""Shared fixtures: a tiny planted synthetic data set and, where laid out, the real ML-100K."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

from embrec.data.synthetic import Synthetic, generate
from tests.synthetic_files import synthetic_csv

# Property tests draw the same examples on every run (CI runs the suite once: a failure must
# not depend on the draw), with no deadline and no too-slow check (a loaded 2-core machine is
# slow, not wrong). `pytest --hypothesis-profile explore` draws new examples each run.
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("deterministic")

ML100K_DIRS = [
    Path(os.environ.get("EMBREC_HOME", Path.home() / ".cache" / "embrec")) / "datasets" / "ml-100k",
]


@pytest.fixture(scope="session")
def tiny_synthetic() -> Synthetic:
    """60 users x 40 items, rank 3, little noise: trains in well under a second."""
    return generate(n_users=60, n_items=40, n_ratings=1200, rank=3, noise=0.1, seed=7)


@pytest.fixture(scope="session")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 users x 50 items, 1,500 ratings as a CSV with a header (the CLI tests' file).

    Modules that need other data (tuning, torchrun) define their own ``ratings_csv``.
    """
    return synthetic_csv(tmp_path_factory.mktemp("data"), n_users=80, n_items=50,
                         n_ratings=1500, rank=3, noise=0.2, seed=3)


@pytest.fixture()
def tiny(tiny_synthetic: Synthetic):  # type: ignore[no-untyped-def]
    """The tiny synthetic ratings (a fresh reference per test; Ratings is immutable)."""
    return tiny_synthetic.ratings


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """Folder holding GroupLens' ml-100k files; the test is skipped when absent."""
    for folder in ML100K_DIRS:
        if (folder / "u.data").is_file():
            return folder
    pytest.skip("ML-100K not laid out; run ../shared/datasets/ml-100k.sh")


@pytest.fixture(autouse=True)
def _global_torch_generator() -> None:
    """Every test starts from the same global torch generator, whatever ran before it.

    ``fit`` never draws from it (its own generator is seeded), but tests that build a model
    directly (``config.build``) or draw ``torch.randn`` do: without this their numbers, and
    so their outcome, depended on which tests ran first.
    """
    torch.manual_seed(0)
