"""``embrec blend``: split like ``train``, fit a blend of models on the training side, save it.

Each component is a preset name (``default``) or a registered model name (its
default settings). The weights are chosen on validation rows carved from the
training split (:func:`embrec.blend`); the test split is scored once, after.
The saved folder is a model folder like ``train``'s: ``evaluate``, ``recommend``,
``similar`` and ``serve`` take it as it is.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from embrec.commands.display import print_frame, print_json

__all__ = ["add_blend", "cmd_blend"]


def add_blend(sub: Any, command: Any, handler: Any) -> None:
    """Add ``embrec blend`` to the subcommand parsers ``sub``."""
    p = command(sub, "blend", "fit several models and blend them with validation-chosen weights",
                "Fit each component on the training split minus a validation fraction, choose "
                "non-negative weights on that fraction (least squares on ratings, or NDCG@10 of "
                "per-user standardised scores with --target ranking), fit the components again "
                "on the whole training split, score the test split and save one model folder.")
    p.add_argument("components", nargs="+", metavar="MODEL",
                   help="preset names (default, ranking...) or model names (autorec, edlae...)")
    p.add_argument("--data", default="synthetic", help="data set name or ratings file")
    p.add_argument("--target", choices=("rating", "ranking"), default="rating",
                   help="what the weights optimise")
    p.add_argument("--test-size", type=float, default=0.1, help="test fraction of the split")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, carve and models")
    p.add_argument("--validation", type=float, default=0.1, metavar="FRACTION",
                   help="fraction of the training split that chooses the weights")
    p.add_argument("--no-refit", action="store_true",
                   help="keep the components fitted without the validation rows")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--out", metavar="DIR", help="model folder (default: runs/<data>-blend-<time>)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=handler)


def _component(name: str) -> Any:
    from embrec.models import MODELS
    from embrec.presets import PRESETS

    if name in PRESETS or name not in MODELS:
        return name  # a preset (an unknown name is refused with the closest preset)
    return MODELS[name]()


def cmd_blend(args: argparse.Namespace) -> int:
    """``embrec blend``: fit, evaluate on the test split, save, print the weights."""
    from embrec.blending import _spec
    from embrec.commands.runs import SplitSpec, train_run
    from embrec.config import TrainConfig
    from embrec.modeldir import check_target
    from embrec.models import BlendConfig

    if args.out:
        check_target(args.out)
    config = BlendConfig(components=tuple(_spec(_component(c)) for c in args.components),
                         target=args.target, validation=args.validation,
                         refit=not args.no_refit)
    result = train_run(config, TrainConfig(seed=args.seed, device=args.device), args.data,
                       split_spec=SplitSpec(test_size=args.test_size, seed=args.seed))
    rec = result.recommender
    report: dict[str, Any] = getattr(rec.model, "report", {})
    out = Path(args.out or f"runs/{Path(args.data).stem}-blend-{time.strftime('%Y%m%d-%H%M%S')}")
    rec.save(out)
    summary = {"model": "blend", "data": args.data, "components": list(args.components),
               "fit_seconds": result.fit_seconds, **report, **result.metrics,
               "out": str(out)}
    if args.json:
        print_json(summary)
        return 0
    import pandas as pd

    print_frame(pd.DataFrame({"component": args.components, "weight": report["weights"]}))
    test = result.metrics.get("test", {})
    shown = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k in ("rmse", "ndcg@10"))
    print(f"test: {shown}; fit {result.fit_seconds:.2f} s; saved to {out}")
    return 0
