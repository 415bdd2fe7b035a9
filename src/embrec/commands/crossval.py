"""``embrec evaluate DIR --folds K``: cross-validate a saved model's settings on its data.

The model folder supplies the model and training settings and the data it was
trained on (or ``--test-data FILE`` names other ratings); each fold trains a
fresh model, and the table shows every metric's mean ± standard deviation.
"""

from __future__ import annotations

import argparse

from embrec.commands.display import print_json
from embrec.commands.options import read_options
from embrec.errors import ArtifactError

__all__ = ["cmd_crossval"]


def cmd_crossval(args: argparse.Namespace) -> int:
    """Run ``--folds`` K-fold cross-validation and print mean ± std per metric."""
    from embrec.commands.runs import recorded_read_options
    from embrec.crossval import cross_validate
    from embrec.data.datasets import load_dataset
    from embrec.recommender import load

    rec = load(args.model_dir)
    metadata = rec.metadata
    data = args.test_data or metadata.get("data")
    if not data:
        raise ArtifactError(f"{args.model_dir} records no data to cross-validate on",
                            hint="pass the ratings with --test-data FILE")
    options = read_options(args) if args.test_data else recorded_read_options(rec)
    ratings = load_dataset(str(data), **options)
    split = metadata.get("split") or {}
    result = cross_validate(rec.model_config, ratings, rec.train_config, folds=args.folds,
                            seed=int(split.get("seed", 0)), metrics=args.metrics, k=args.k,
                            threshold=args.threshold)
    if args.json:
        print_json({"data": str(data), "folds": args.folds, **result})
        return 0
    print(f"{args.folds}-fold cross-validation of {rec.model_name} on {data} "
          f"({len(ratings):,} ratings)")
    for key, mean in result["mean"].items():
        print(f"{key:>14}: {mean:.4f} ± {result['std'][key]:.4f}")
    return 0

