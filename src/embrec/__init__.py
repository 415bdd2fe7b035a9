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

Names are imported on first use (PEP 562), so ``import embrec`` and the
``embrec`` command's ``--help`` do not load PyTorch or pandas until a name
that needs them is touched.
"""

import importlib
import typing

if typing.TYPE_CHECKING:
    from embrec.blending import blend
    from embrec.config import TrainConfig
    from embrec.data.datasets import DATASETS, dataset_info, fetch, list_datasets, load_dataset
    from embrec.data.feature_files import read_features, with_features
    from embrec.data.features import Features
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
    from embrec.recommender import Recommender, load, save
    from embrec.training.fit import fit
    from embrec.tuning import TuneResult, tune

__version__ = "0.1.0"

#: The module that defines each public name.
_WHERE: dict[str, str] = {
    "ArtifactError": "embrec.errors",
    "ConfigError": "embrec.errors",
    "DATASETS": "embrec.data.datasets",
    "DataError": "embrec.errors",
    "DataWarning": "embrec.errors",
    "DownloadError": "embrec.errors",
    "Features": "embrec.data.features",
    "EmbrecError": "embrec.errors",
    "EmbrecWarning": "embrec.errors",
    "IdIndex": "embrec.data.ids",
    "MetricWarning": "embrec.errors",
    "PRESETS": "embrec.presets",
    "Ratings": "embrec.data.ratings",
    "Recommender": "embrec.recommender",
    "Synthetic": "embrec.data.synthetic",
    "TrainConfig": "embrec.config",
    "TrainingError": "embrec.errors",
    "TrainingWarning": "embrec.errors",
    "UnknownIdError": "embrec.errors",
    "blend": "embrec.blending",
    "cold_start_report": "embrec.data.split",
    "dataset_info": "embrec.data.datasets",
    "evaluate": "embrec.evaluation.evaluate",
    "fetch": "embrec.data.datasets",
    "fit": "embrec.training.fit",
    "tune": "embrec.tuning",
    "TuneResult": "embrec.tuning",
    "fit_preset": "embrec.presets",
    "generate": "embrec.data.synthetic",
    "kfold": "embrec.data.split",
    "list_datasets": "embrec.data.datasets",
    "load": "embrec.recommender",
    "load_dataset": "embrec.data.datasets",
    "read_features": "embrec.data.feature_files",
    "read_layout": "embrec.data.layouts",
    "read_ratings": "embrec.data.readers",
    "save": "embrec.recommender",
    "split": "embrec.data.split",
    "with_features": "embrec.data.feature_files",
}


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
    "Features",
    "IdIndex",
    "MetricWarning",
    "Ratings",
    "Recommender",
    "Synthetic",
    "TrainConfig",
    "TrainingError",
    "TrainingWarning",
    "TuneResult",
    "UnknownIdError",
    "__version__",
    "blend",
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
    "read_features",
    "read_layout",
    "read_ratings",
    "save",
    "split",
    "tune",
    "with_features",
]


def __getattr__(name: str) -> typing.Any:
    """Import a public name from its module on first use and cache it here."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'embrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Exactly the public names, so ``dir(embrec)`` is the API and not its helpers."""
    return sorted(__all__)
