"""A model's own test rows, saved beside it, and the check that test rows are not training rows.

``embrec evaluate DIR`` scores exactly the rows ``embrec train`` held out, without
reading the data again. Rows from elsewhere that are training pairs are refused
unless asked for knowingly: scored on them a model looks better than it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from embrec.errors import ArtifactError, DataError

if TYPE_CHECKING:
    from embrec.data.ratings import Ratings
    from embrec.recommender import Recommender

__all__ = ["TEST_ROWS", "check_not_training", "read_test_rows", "training_overlap",
           "write_test_rows"]

TEST_ROWS = "test.parquet"
"""The file of a model folder that holds the rows its training run held out."""


def write_test_rows(test: Ratings, file: Path) -> None:
    """Write ``test`` with raw ids (user, item, rating[, timestamp]) as Parquet.

    Ids of mixed types (integers and strings) are written as text with an
    ``<column>_is_int`` flag so they read back as they were.
    """
    frame = test.to_pandas()
    for column in ("user", "item"):
        values = frame[column].to_numpy()
        if values.dtype.kind == "O" and not all(isinstance(v, str) for v in values):
            frame[f"{column}_is_int"] = [not isinstance(v, str) for v in values]
            frame[column] = [str(v) for v in values]
    frame.to_parquet(file, index=False)


def read_test_rows(folder: str | Path, scale: tuple[float, float]) -> Ratings:
    """Read the test rows (raw ids) saved in a model folder, on the model's rating ``scale``.

    Raises:
        ArtifactError: if the folder holds no test rows (a model saved by
            ``rec.save`` or by an older embrec) or they cannot be read.
    """
    from embrec.data.ratings import Ratings

    file = Path(folder) / TEST_ROWS
    if not file.is_file():
        raise ArtifactError(f"{folder} holds no test rows ({TEST_ROWS})",
                            hint="pass the test ratings with --test-data FILE")
    try:
        frame = pd.read_parquet(file)
        for column in ("user", "item"):
            flags = f"{column}_is_int"
            if flags in frame.columns:
                frame[column] = np.array([int(v) if f else v for v, f in zip(
                    frame[column], frame[flags], strict=True)], dtype=object)
        timestamp = frame["timestamp"].to_numpy() if "timestamp" in frame.columns else None
        return Ratings.from_arrays(frame["user"].to_numpy(), frame["item"].to_numpy(),
                                   frame["rating"].to_numpy(), timestamp, scale=scale,
                                   source=str(file))
    except (OSError, KeyError, ValueError) as error:
        raise ArtifactError(f"cannot read the test rows {file}: {str(error)[:200]}",
                            hint="pass the test ratings with --test-data FILE") from None


def training_overlap(rec: Recommender, test: Ratings) -> int:
    """Count the rows of ``test`` whose (user, item) pair the model was trained on."""
    users = rec.users.index(test.users.id_of(test.user), on_unknown="missing")
    items = rec.items.index(test.items.id_of(test.item), on_unknown="missing")
    known = (users >= 0) & (items >= 0)
    if not known.any():
        return 0
    seen = rec.seen.tocsr()
    rows = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(seen.indptr))
    trained = rows * rec.n_items + seen.indices.astype(np.int64)
    keys = users[known] * rec.n_items + items[known]
    return int(np.isin(keys, trained).sum())


def check_not_training(rec: Recommender, test: Ratings, *, allow: bool = False) -> int:
    """Refuse test rows that are the model's training rows; return how many there are.

    With ``allow`` they are scored anyway (the count is still returned, to be reported).

    Raises:
        DataError: if any test row is a training pair and ``allow`` is false.
    """
    overlap = training_overlap(rec, test)
    if overlap and not allow:
        share = overlap / max(len(test), 1)
        raise DataError(
            f"{overlap:,} of the {len(test):,} test ratings ({share:.0%}) are ratings this "
            "model was trained on: scored on them it looks better than it is",
            path=test.source or None,
            hint="evaluate on the model's own held-out rows (leave out --test-data), on rows "
            "it never saw, or pass allow_training_rows=True (CLI: --allow-training-rows) to "
            "score them knowingly")
    return overlap
