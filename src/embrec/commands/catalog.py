"""What the command line lists in its help, importable without PyTorch or pandas.

``embrec --help`` must answer in a fraction of a second, so it cannot import the
model registry, the presets or the data-set registry (they pull in PyTorch and
pandas). These tables hold their names and one-line descriptions instead;
``tests/test_cli_help.py`` checks that they list exactly the names of
``embrec.models.MODELS``, ``embrec.presets.PRESETS`` (with the same
descriptions), ``embrec.data.datasets.DATASETS`` and ``embrec.data.split.METHODS``,
so a new entry there fails the tests until it is described here too.
"""

from __future__ import annotations

__all__ = ["DATASET_NAMES", "MODEL_HELP", "PRESET_HELP", "SPLIT_HELP"]

MODEL_HELP: dict[str, str] = {
    "biased-mf": "global mean + user and item biases + a dot product of factors",
    "gmf": "element-wise product of embeddings, then dense layers, plus user and item biases",
    "mlp": "concatenated embeddings, then an MLP tower, plus user and item biases",
    "neumf": "GMF and MLP towers fused (He et al. 2017), plus user and item biases",
    "popular": "yardstick: items by rating count (or damped mean); ranking scores, not ratings",
    "ease": "yardstick: Steck's closed-form item-item autoencoder; ranking scores, not ratings",
    "bayesian-fm": "Bayesian factorization (Gibbs sampling): ids, rated items, raters and "
                   "--user-features/--item-features, posterior-averaged",
    "edlae": "EASE with Steck's (2020) dropout-emphasised penalty, closed form; ranking scores",
    "autorec": "I-AutoRec (Sedhain et al. 2015): each item's ratings through a sigmoid "
               "autoencoder; U-AutoRec as an option",
    "blend": "non-negative linear blend of registered models, weights fitted on validation rows",
}

PRESET_HELP: dict[str, str] = {
    "movielens-notebook":
        "MovieLens notebook: concat(50, 50) -> Dense(70, relu) -> Dense(1), 2 epochs",
    "goodreads-notebook":
        "Goodreads notebook: 99 x 99 product -> Dense(1, relu) -> Dense(1), 10 epochs",
    "default":
        "biased MF, 32 factors, per-rating lazy Adam (compiled kernel), one-cycle, 10 epochs "
        "(selected on validation rows of ML-100K and a 10M-rating set)",
    "accurate":
        "blend of the default preset and I-AutoRec, weights fitted on validation rows (ML-100K: "
        "1-3 min on 2 CPU cores)",
    "ranking":
        "top-N on explicit ratings: biased MF trained with a softmax over in-batch items "
        "(ratings >= 4 are positives)",
}

SPLIT_HELP: dict[str, str] = {
    "random": "random ratings",
    "user": "the same fraction of each user's ratings",
    "time": "the latest ratings overall (a global time cut-off)",
    "last": "each user's latest rating",
    "leave-one-out": "each user's last rating (a random one without timestamps)",
}

DATASET_NAMES: tuple[str, ...] = (
    "ml-100k", "ml-1m", "ml-latest-small", "ml-25m", "ml-32m", "goodbooks-10k", "synthetic",
)


def listing(table: dict[str, str]) -> str:
    """Render ``{name: description}`` as ``name: description`` lines for a help epilog."""
    width = max(len(name) for name in table)
    return "\n".join(f"  {name:<{width}}  {text}" for name, text in table.items())
