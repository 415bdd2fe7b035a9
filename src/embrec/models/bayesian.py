"""A Bayesian factorization model fitted by Gibbs sampling, predicting the posterior average.

A user's vector sums embedding groups: the id, the items they rated (each
scaled by 1/sqrt(|N(u)|), SVD++'s implicit feedback) and their side features;
an item's sums its id, its raters (the "flipped" group) and its features. Each
group has its own normal prior, whose mean and precision are sampled too, so
the data decide how much each group counts (libFM's MCMC, Rendle 2012; the
sampler is :mod:`embrec.training.gibbs`). A prediction is the average over the
samples after burn-in, kept exactly: the user table holds every kept sample's
``[p, b_u, 1] / S`` side by side and the item table ``[q, 1, b_i + w0]``, so
one dot product (and one matrix product for top-N) gives the posterior mean; an id
with features but no ratings gets :meth:`BayesianFM.cold_vectors`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from embrec.config import JsonConfig, require, require_choice
from embrec.data.features import Features, FeatureSchema
from embrec.data.ratings import Ratings
from embrec.models.base import DotModel

__all__ = ["BayesianFM", "BayesianFMConfig"]

PRIORS = ("group", "shared")


@dataclass(frozen=True, kw_only=True, slots=True)
class BayesianFMConfig(JsonConfig):
    """The Bayesian factorization model's settings.

    Attributes:
        embedding_dim: factors per user and item (the rank).
        sweeps: Gibbs sweeps in all.
        burn_in: first sweeps left out of the average; the model keeps
            ``sweeps - burn_in`` samples, ``embedding_dim + 2`` floats each per row.
        implicit: add the user's rated items (SVD++) to the user side.
        flipped: add the item's raters to the item side.
        side_features: add the training data's ``user_features``/``item_features``.
        priors: ``group`` (a prior mean and precision per group of features and
            per column) or ``shared`` (one prior per side).
        init_std: standard deviation of the initial factors.
        tolerance: relative residual at which each conditional's conjugate-gradient
            solve stops (``benchmarks/results/model_notes.md``).
        seed: the sampler's random seed.
    """

    name: ClassVar[str] = "bayesian-fm"
    closed_form: ClassVar[bool] = True
    scores: ClassVar[str] = "rating"
    embedding_dim: int = 10
    sweeps: int = 200
    burn_in: int = 50
    implicit: bool = True
    flipped: bool = True
    side_features: bool = True
    priors: str = "group"
    init_std: float = 0.1
    tolerance: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.embedding_dim >= 1, "embedding_dim", self.embedding_dim, "must be >= 1")
        require(self.sweeps >= 1, "sweeps", self.sweeps, "must be >= 1")
        require(0 <= self.burn_in < self.sweeps, "burn_in", self.burn_in,
                f"must be >= 0 and below sweeps ({self.sweeps})")
        require_choice("priors", self.priors, PRIORS)
        require(self.init_std >= 0, "init_std", self.init_std, "must be >= 0")
        require(0 < self.tolerance < 1, "tolerance", self.tolerance, "must be in (0, 1)")

    @property
    def width(self) -> int:
        """Columns of the user and item tables: kept samples x (embedding_dim + 2)."""
        return (self.sweeps - self.burn_in) * (self.embedding_dim + 2)

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> BayesianFM:
        """Create the unfitted model; :meth:`BayesianFM.solve` samples it."""
        return BayesianFM(n_users, n_items, self)


def _schema_bytes(features: Features | None) -> Tensor:
    text = "" if features is None else json.dumps(features.schema.to_dict())
    return torch.tensor(list(text.encode()), dtype=torch.uint8)


class BayesianFM(DotModel):
    """Posterior-averaged predictions as a dot product of sample-stacked user and item rows."""

    variable_buffers = ("user_cold", "item_cold", "user_schema", "item_schema")  # feature-sized

    def __init__(self, n_users: int, n_items: int, config: BayesianFMConfig) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        width = config.width
        self.user_table = nn.Parameter(torch.zeros(n_users, width), requires_grad=False)
        self.item_table = nn.Parameter(torch.zeros(n_items, width), requires_grad=False)
        self.register_buffer("user_cold", torch.zeros(1, width))
        self.register_buffer("item_cold", torch.zeros(1, width))
        self.register_buffer("user_schema", torch.zeros(0, dtype=torch.uint8))
        self.register_buffer("item_schema", torch.zeros(0, dtype=torch.uint8))

    def solve(self, train: Ratings) -> None:
        """Run the Gibbs chain on ``train`` and keep the posterior-averaged tables."""
        from embrec.training.gibbs import run_chain

        users, items, starts, features = _sides(self.config, train)
        stacks = run_chain(users, items, train.user.astype(np.int64),
                           train.item.astype(np.int64), train.rating.astype(np.float64),
                           sweeps=self.config.sweeps, burn_in=self.config.burn_in,
                           seed=self.config.seed, side_rows=starts,
                           tolerance=self.config.tolerance)
        kept = len(stacks.users)
        device = self.user_table.device
        with torch.no_grad():
            for name, parts, scale in (("user_table", stacks.users, 1.0 / kept),
                                       ("item_table", stacks.items, 1.0),
                                       ("user_cold", stacks.user_side, 1.0 / kept),
                                       ("item_cold", stacks.item_side, 1.0)):
                value = torch.as_tensor(np.hstack(parts) * scale, dtype=torch.float32)
                if name.endswith("cold"):
                    setattr(self, name, value.to(device))
                else:
                    getattr(self, name).copy_(value)
        self.user_schema = _schema_bytes(features[0]).to(device)
        self.item_schema = _schema_bytes(features[1]).to(device)

    def user_vectors(self, user: Tensor) -> Tensor:
        """The users' sample-stacked rows: ``(batch, width)``."""
        return self.user_table[user]

    def item_vectors(self, item: Tensor) -> Tensor:
        """The items' sample-stacked rows: ``(batch, width)``."""
        return self.item_table[item]

    def item_factors(self) -> Tensor:
        """The items' posterior-mean factors (biases left out): ``(n_items, embedding_dim)``."""
        k = self.config.embedding_dim
        stacked = self.item_table.reshape(self.n_items, -1, k + 2)
        return stacked[:, :, :k].mean(1)

    def feature_schema(self, kind: str) -> FeatureSchema | None:
        """How raw ``kind`` ('user' or 'item') features encode, or None without features."""
        raw: Tensor = self.user_schema if kind == "user" else self.item_schema
        if raw.numel() == 0:
            return None
        return FeatureSchema.from_dict(json.loads(bytes(raw.cpu().tolist()).decode()))

    def cold_vectors(self, kind: str, rows: sp.csr_matrix) -> Tensor:
        """Vectors for ids without ratings from their encoded feature rows: ``(n, width)``.

        A row of zeros (no features) gives the average trained row's id and history part.
        """
        cold: Tensor = getattr(self, f"{kind}_cold")
        n_features = cold.shape[0] - 1
        dense = torch.zeros(rows.shape[0], n_features, device=cold.device)
        width = min(n_features, rows.shape[1])  # no row (or columns): the average row
        dense[:, :width] = torch.as_tensor(rows.toarray()[:, :width], dtype=torch.float32)
        return cold[0] + dense @ cold[1:]


def _sides(config: BayesianFMConfig, train: Ratings) -> tuple[Any, Any, tuple[int, int],
                                                              tuple[Features | None, ...]]:
    """Both sides' designs and groups, where side features start, and the features used."""
    from embrec.training.gibbs import Side

    n_users, n_items = train.n_users, train.n_items
    pattern = sp.csr_matrix((np.ones(len(train)), (train.user, train.item)),
                            shape=(n_users, n_items))
    rng = np.random.default_rng(config.seed)
    sides, starts, used = [], [], []
    for matrix, extra, table, ids in (
            (pattern, config.implicit, train.user_features, train.users.ids),
            (pattern.T.tocsr(), config.flipped, train.item_features, train.items.ids)):
        counts = np.maximum(np.asarray(matrix.sum(1)).ravel(), 1.0)
        blocks = [sp.identity(matrix.shape[0], format="csr")]
        groups = [np.zeros(matrix.shape[0], np.int64)]
        if extra:
            blocks.append(sp.csr_matrix(sp.diags(1.0 / np.sqrt(counts)) @ matrix))
            groups.append(np.ones(matrix.shape[1], np.int64))
        starts.append(sum(b.shape[1] for b in blocks))
        features = table if config.side_features and table is not None else None
        if features is not None:
            blocks.append(features.rows(ids).astype(np.float64))
            groups.append(features.schema.groups + len(groups))
        used.append(features)
        group = np.concatenate(groups)
        if config.priors == "shared":
            group = np.zeros_like(group)
        design = sp.hstack(blocks, format="csr")
        weights = rng.normal(0.0, config.init_std, (design.shape[1], config.embedding_dim + 1))
        weights[:, -1] = 0.0
        sides.append(Side(design, group, weights))
    return sides[0], sides[1], (starts[0], starts[1]), tuple(used)
