"""edlae: the closed form against a direct numpy solve of Steck (2020), and its limits."""

from __future__ import annotations

import numpy as np
import pytest

from embrec.errors import ConfigError
from embrec.models import EASEConfig, EDLAEConfig
from embrec.training.fit import fit
from tests.models.test_ease import _random_ratings


def _numpy_edlae(x: np.ndarray, l2: float, p: float) -> np.ndarray:
    """Steck (2020), full-rank EDLAE: B = I - P diagMat(1 / diag(P)),
    P = (XᵀX + Λ)⁻¹ with Λ = l2·I + p / (1 - p) · diagMat(diag(XᵀX))."""
    gram = x.T @ x
    penalty = l2 * np.eye(x.shape[1]) + p / (1 - p) * np.diag(np.diag(gram))
    inverse = np.linalg.inv(gram + penalty)
    b = np.eye(x.shape[1]) - inverse @ np.diag(1.0 / np.diag(inverse))
    return x @ b


@pytest.mark.parametrize(("values", "dropout"), [("binary", 0.5), ("rating", 0.2)])
def test_scores_equal_a_direct_numpy_solve(values: str, dropout: float) -> None:
    ratings = _random_ratings(seed=1)
    x = np.zeros((ratings.n_users, ratings.n_items))
    x[ratings.user, ratings.item] = 1.0 if values == "binary" else ratings.rating
    expected = _numpy_edlae(x, l2=3.0, p=dropout)
    rec = fit(EDLAEConfig(l2=3.0, dropout=dropout, values=values), ratings)
    assert rec.model_name == "edlae" and rec.scores == "ranking"
    users = np.repeat(ratings.users.ids, ratings.n_items)
    items = np.tile(ratings.items.ids, ratings.n_users)
    got = rec.predict(users, items, kind="score").reshape(ratings.n_users, ratings.n_items)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_no_dropout_is_ease() -> None:
    ratings = _random_ratings(seed=2)
    users, items = ratings.users.id_of(ratings.user), ratings.items.id_of(ratings.item)
    ease = fit(EASEConfig(l2=5.0), ratings).predict(users, items, kind="score")
    edlae = fit(EDLAEConfig(l2=5.0, dropout=0.0), ratings).predict(users, items, kind="score")
    np.testing.assert_allclose(edlae, ease, rtol=1e-5, atol=1e-6)


def test_refuses_bad_dropout_and_big_catalogues() -> None:
    with pytest.raises(ConfigError, match=r"dropout=1.0 must be in \[0, 1\)"):
        EDLAEConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="edlae needs a dense 12 x 12"):
        EDLAEConfig(max_items=5).build(3, 12)
