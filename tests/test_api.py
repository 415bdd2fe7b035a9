"""The public surface: ``__all__`` lists exactly the public names, and each one resolves."""

from __future__ import annotations

import inspect

import embrec
import embrec.models


def _public(module: object) -> set[str]:
    names = {n for n in dir(module) if not n.startswith("_")}  # dir(): names load lazily
    return {n for n in names if not inspect.ismodule(getattr(module, n))} | {"__version__"}


def test_all_equals_the_public_names() -> None:
    """``dir`` is ``__all__``; each name resolves, and every lazily imported name is listed."""
    assert dir(embrec) == sorted(embrec.__all__)
    assert len(embrec.__all__) == len(set(embrec.__all__))
    assert set(embrec.__all__) == set(embrec._WHERE) | {"__version__"}  # none missing
    assert _public(embrec) == set(embrec.__all__)  # each resolves and is no module
    defined = {n for n, v in vars(embrec).items()
               if not n.startswith("_") and not inspect.ismodule(v)}
    assert defined <= set(embrec.__all__)  # no public helper left out of __all__


def test_the_quickstart_verbs_are_exported() -> None:
    for name in ("read_ratings", "load_dataset", "split", "fit", "fit_preset", "evaluate",
                 "load", "save", "Recommender", "Ratings", "TrainConfig"):
        assert callable(getattr(embrec, name)), name


def test_models_registry_lists_every_config() -> None:
    assert set(embrec.models.MODELS) == {"biased-mf", "gmf", "mlp", "neumf", "popular", "ease",
                                         "bayesian-fm", "edlae", "autorec", "blend"}
    for config in embrec.models.MODELS.values():
        assert config.__name__ in embrec.models.__all__
