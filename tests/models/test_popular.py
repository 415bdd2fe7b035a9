"""popular: ranks by count or damped mean (hand-computed); its scores are not ratings."""

from __future__ import annotations

import numpy as np
import pytest

from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models import PopularConfig
from embrec.training.fit import fit

# item 10: 4 ratings (mean 3.0); item 20: 1 rating (5.0); item 30: 3 ratings (mean 4.0)
USERS = [1, 2, 3, 4, 1, 2, 3, 4]
ITEMS = [10, 10, 10, 10, 20, 30, 30, 30]
STARS = [2.0, 3.0, 4.0, 3.0, 5.0, 4.0, 4.0, 4.0]


def _ratings() -> Ratings:
    return Ratings.from_arrays(USERS, ITEMS, STARS, scale=(1.0, 5.0))


def test_ranks_unseen_items_by_count() -> None:
    rec = fit(PopularConfig(), _ratings())
    frame = rec.recommend(user=4, n=5)  # user 4 rated 10 and 30: only 20 is left
    assert frame["item"].tolist() == [20] and frame["score"].tolist() == [1.0]
    everything = rec.recommend(user=4, n=5, exclude_seen=False)
    assert everything["item"].tolist() == [10, 30, 20]
    assert everything["score"].tolist() == [4.0, 3.0, 1.0]  # counts: not clipped to the scale
    assert rec.scores == "ranking" and rec.metadata["scores"] == "ranking"


def test_damped_mean_matches_a_hand_computation() -> None:
    rec = fit(PopularConfig(by="mean", damping=2.0), _ratings())
    mean = sum(STARS) / len(STARS)  # 29 / 8 = 3.625
    expected = {10: (12.0 + 2 * mean) / (4 + 2),  # 3.2083
                20: (5.0 + 2 * mean) / (1 + 2),   # 4.0833
                30: (12.0 + 2 * mean) / (3 + 2)}  # 3.85
    got = rec.predict([1, 1, 1], [10, 20, 30], kind="score")
    np.testing.assert_allclose(got, [expected[10], expected[20], expected[30]], rtol=1e-6)
    assert rec.recommend(user=2, n=3, exclude_seen=False)["item"].tolist() == [20, 30, 10]
    raw = fit(PopularConfig(by="mean", damping=0.0), _ratings())
    np.testing.assert_allclose(raw.predict([1, 1, 1], [10, 20, 30], kind="score"),
                               [3.0, 5.0, 4.0])


def test_predict_refuses_ratings_but_gives_scores() -> None:
    rec = fit(PopularConfig(), _ratings())
    with pytest.raises(ConfigError, match=r"(?s)kind='rating' is not available.*not ratings"
                                          r".*hint: pass kind='score'"):
        rec.predict(1, 10)
    assert rec.predict(1, 10, kind="score") == 4.0


def test_fold_in_gives_the_most_popular_unrated_items() -> None:
    rec = fit(PopularConfig(), _ratings())
    frame = rec.recommend_for_ratings({10: 5.0}, n=5)
    assert frame["item"].tolist() == [30, 20] and frame["score"].tolist() == [3.0, 1.0]


def test_similar_items_is_refused_with_a_hint() -> None:
    rec = fit(PopularConfig(), _ratings())
    with pytest.raises(ConfigError, match="(?s)no item similarity.*hint: use 'ease'"):
        rec.similar_items(10)
