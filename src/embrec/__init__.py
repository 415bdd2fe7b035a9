"""embrec: neural-network recommenders on rating data.

The happy path: read ratings, split them, fit a model, evaluate it, recommend,
save and serve::

    import embrec
    ratings = embrec.load_dataset("ml-100k")
    train, test = embrec.split(ratings, test_size=0.2, seed=0)
    rec = embrec.fit_preset("default", train)
    embrec.evaluate(rec, test)
"""

from embrec.config import TrainConfig
from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings
from embrec.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    DownloadError,
    EmbrecError,
    EmbrecWarning,
    UnknownIdError,
)

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataError",
    "DownloadError",
    "EmbrecError",
    "EmbrecWarning",
    "IdIndex",
    "Ratings",
    "TrainConfig",
    "UnknownIdError",
    "__version__",
]
