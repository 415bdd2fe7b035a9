"""Shared fixtures: a tiny planted synthetic data set and, where laid out, the real ML-100K."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embrec.data.synthetic import Synthetic, generate

ML100K_DIRS = [
    Path(os.environ.get("EMBREC_HOME", Path.home() / ".cache" / "embrec")) / "datasets" / "ml-100k",
]


@pytest.fixture(scope="session")
def tiny_synthetic() -> Synthetic:
    """60 users x 40 items, rank 3, little noise: trains in well under a second."""
    return generate(n_users=60, n_items=40, n_ratings=1200, rank=3, noise=0.1, seed=7)


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
