"""embrec: neural-network recommenders on rating data.

The happy path: read ratings, split them, fit a model, evaluate it, recommend,
save and serve::

    import embrec
    ratings = embrec.load_dataset("ml-100k")
    train, test = embrec.split(ratings, test_size=0.2, seed=0)
    rec = embrec.fit_preset("default", train)
    embrec.evaluate(rec, test)

Model configs live in :mod:`embrec.models`; the HTTP service in
:mod:`embrec.serving` (the ``serve`` extra), which ``import embrec`` never loads.
"""

from embrec.artifacts import load, save
from embrec.config import TrainConfig
from embrec.data.datasets import DATASETS, dataset_info, fetch, list_datasets, load_dataset
from embrec.data.ids import IdIndex
from embrec.data.layouts import read_layout
from embrec.data.ratings import Ratings
from embrec.data.readers import read_ratings
from embrec.data.split import cold_start_report, kfold, split
from embrec.data.synthetic import Synthetic, generate
from embrec.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    DataWarning,
    DownloadError,
    EmbrecError,
    EmbrecWarning,
    MetricWarning,
    TrainingError,
    TrainingWarning,
    UnknownIdError,
)
from embrec.evaluation.evaluate import evaluate
from embrec.presets import PRESETS, fit_preset
from embrec.recommender import Recommender
from embrec.training.fit import fit

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "PRESETS",
    "ArtifactError",
    "ConfigError",
    "DataError",
    "DataWarning",
    "DownloadError",
    "EmbrecError",
    "EmbrecWarning",
    "IdIndex",
    "MetricWarning",
    "Ratings",
    "Recommender",
    "Synthetic",
    "TrainConfig",
    "TrainingError",
    "TrainingWarning",
    "UnknownIdError",
    "__version__",
    "cold_start_report",
    "dataset_info",
    "evaluate",
    "fetch",
    "fit",
    "fit_preset",
    "generate",
    "kfold",
    "list_datasets",
    "load",
    "load_dataset",
    "read_layout",
    "read_ratings",
    "save",
    "split",
]
