"""The model contract: what every model gives the one fit loop and the one recommender.

A model is an ``nn.Module`` built by its config's ``build(n_users, n_items, scale=, mean=)``
and provides:

- **scoring**: ``user_vectors(user)``, ``item_vectors(item)`` and ``score(user
  vectors, item vectors)``; the recommender scores whole catalogues, folds new
  users in and finds similar items through these alone (:class:`RatingModel`).
- **tables and dense parameters** (models ``fit`` trains, :class:`EmbeddingModel`):
  ``user_embedding`` and ``item_embedding`` rows, their trailing ``bias_columns``,
  and ``dense_parameters()``, every other parameter. Tables are updated
  row-sparsely, dense parameters every step.
- **random state**: a model drops out only inside :class:`Tower` modules, whose
  :class:`DropoutMasks` (``dropout_masks()``) are its whole random state. ``fit``
  hands them its seeded generator (``reset_masks``), checkpoints save their
  blocks, and data-parallel ranks replace them with masks drawn for the global
  batch (``replace_masks``): that is what makes seeded training, resume equality
  and 2 ranks = 1 hold. A model must draw no other randomness in ``forward``
  (``nn.Dropout``, ``torch.rand``); the contract suite checks this.
- **optional hand-written paths**, proven equal to autograd by the contract
  suite: ``gradient_step`` (:class:`HandStepModel`) and ``rating_kernel``
  (:class:`KernelModel`).

The per-use L2 penalty every training path applies is
:func:`~embrec.models.fastpath.add_decay`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar, cast, runtime_checkable

import torch
from torch import Tensor, nn

from embrec.models.fastpath import HandStep, add_decay, output_and_gradient, tower_gradient_step
from embrec.models.init import init_embedding, init_layers, output_bounds, start_output
from embrec.models.tower import DropoutMasks, Tower, TowerStep

__all__ = ["ConcatTowerModel", "DotModel", "DropoutMasks", "EmbeddingModel", "HandStep",
           "HandStepModel", "KernelModel", "ModelConfig", "RatingModel", "Tower", "TowerStep",
           "add_decay", "output_and_gradient", "tower_gradient_step"]

C = TypeVar("C", bound="ModelConfig")

class RatingModel(nn.Module, ABC):
    """Predicts ratings for (user, item) index pairs.

    Subclasses define :meth:`user_vectors`, :meth:`item_vectors` and
    :meth:`score`; :meth:`score_matrix` and :meth:`item_factors` have generic
    defaults that a model may override with something faster.
    """

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items

    @abstractmethod
    def user_vectors(self, user: Tensor) -> Tensor:
        """Return every per-user parameter for ``user`` indices: ``(batch, user_dim)``."""

    @abstractmethod
    def item_vectors(self, item: Tensor) -> Tensor:
        """Return every per-item parameter for ``item`` indices: ``(batch, item_dim)``."""

    @abstractmethod
    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score aligned rows of user and item vectors: ``(batch,)`` predicted ratings."""

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        """Predict ratings for aligned ``user`` and ``item`` index tensors: ``(batch,)``."""
        return self.score(self.user_vectors(user), self.item_vectors(item))

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score every user against every item: ``(n_users_block, n_items_block)``.

        The default expands the pairs and calls :meth:`score`; dot-product
        models override it with one matrix product.
        """
        n_u, n_i = user_vectors.shape[0], item_vectors.shape[0]
        users = user_vectors.unsqueeze(1).expand(n_u, n_i, -1).reshape(n_u * n_i, -1)
        items = item_vectors.unsqueeze(0).expand(n_u, n_i, -1).reshape(n_u * n_i, -1)
        return self.score(users, items).reshape(n_u, n_i)

    def item_factors(self) -> Tensor:
        """Return the vectors used for item-item similarity: ``(n_items, dim)``."""
        return self.item_vectors(torch.arange(self.n_items, device=next(self.parameters()).device))

    def dropout_masks(self) -> list[DropoutMasks]:
        """Return the model's whole random state: its towers' masks, in module order."""
        towers = [t for t in self.modules() if isinstance(t, Tower)]
        return [m for t in towers for m in t.masks if m is not None]

    def reset_masks(self, generator: torch.Generator | None = None) -> None:
        """Forget pre-drawn dropout masks and draw later ones from ``generator``."""
        for masks in self.dropout_masks():
            masks.reset(generator)

    def replace_masks(self, make: Callable[[DropoutMasks, int], DropoutMasks]
                      ) -> list[DropoutMasks]:
        """Replace every dropout mask source by ``make(old, input width)``; return the new ones.

        Data-parallel training uses this to draw masks for the global batch.
        """
        made = []
        for tower in (t for t in self.modules() if isinstance(t, Tower)):
            for k, masks in enumerate(tower.masks):
                if masks is not None:
                    made.append(make(masks, tower.layer(k).in_features))
                    tower.masks[k] = made[-1]
        return made

class DotModel(RatingModel):
    """A rating model whose score is the dot product of its user and item vectors.

    The closed-form and sampled models (popular, EASE, AutoRec, Bayesian FM)
    are; top-N is then one matrix product.

    Attributes:
        variable_buffers: buffers whose length the training data sets, not the
            config; loading sizes them to the saved ones.
    """

    variable_buffers: tuple[str, ...] = ()

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Aligned rows' dot products: ``(batch,)``."""
        return (user_vectors * item_vectors).sum(1)

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Every user against every item in one product: ``(b, n)``."""
        return user_vectors @ item_vectors.t()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        """Size the data-dependent buffers to the saved ones."""
        for name in self.variable_buffers:
            saved = state_dict.get(prefix + name)
            if isinstance(saved, Tensor):
                current: Tensor = getattr(self, name)
                setattr(self, name, torch.empty_like(saved, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class EmbeddingModel(RatingModel):
    """A rating model whose user and item vectors are rows of one ``width``-column
    embedding table per side (``n_users`` and ``n_items`` rows): the models ``fit`` trains.

    Attributes:
        bias_columns: how many trailing columns of each row are biases rather than
            factors (regularised by ``bias_weight_decay`` instead of ``weight_decay``).
    """

    bias_columns: int = 0
    bounds: tuple[float, float] | None = None

    def __init__(self, n_users: int, n_items: int, factors: int, *, biases: bool = False) -> None:
        super().__init__(n_users, n_items)
        self.bias_columns = int(biases)
        width = factors + self.bias_columns  # rows are [factors, bias]
        # uninitialised: every model draws its tables itself (init_weights), once
        self.user_embedding = nn.Embedding(n_users, width, _weight=torch.empty(n_users, width))
        self.item_embedding = nn.Embedding(n_items, width, _weight=torch.empty(n_items, width))

    def init_weights(self, config: EmbeddingFields, scale: tuple[float, float], mean: float,
                     layers: Iterable[nn.Module] = (), *, start: bool = True) -> None:
        """Set ``bounds`` (if ``config.bounded``), draw both tables' factors (biases at 0) and
        the dense ``layers`` by ``config.init``; if ``start``, the last layer predicts ``mean``."""
        self.bounds = output_bounds(scale) if config.bounded else None
        for table in (self.user_embedding, self.item_embedding):
            init_embedding(table.weight, config.init, config.init_std)
            if self.bias_columns:
                with torch.no_grad():
                    table.weight[:, -self.bias_columns:].zero_()
        dense = list(layers)
        init_layers(dense, config.init)
        if dense and start:
            start_output(cast(nn.Linear, dense[-1]), mean, self.bounds)

    def dense_parameters(self) -> list[nn.Parameter]:
        """Return every parameter except the two tables (updated densely, every step)."""
        tables = {id(self.user_embedding.weight), id(self.item_embedding.weight)}
        return [p for p in self.parameters() if id(p) not in tables]

    def user_vectors(self, user: Tensor) -> Tensor:
        """Return the users' embedding rows: ``(batch, width)``."""
        return cast(Tensor, self.user_embedding(user))

    def item_vectors(self, item: Tensor) -> Tensor:
        """Return the items' embedding rows: ``(batch, width)``."""
        return cast(Tensor, self.item_embedding(item))

    def factors(self, vectors: Tensor) -> Tensor:
        """Return ``vectors`` without their trailing bias columns: ``(batch, width - bias)``."""
        return vectors[:, :vectors.shape[1] - self.bias_columns]

    def plus_biases(self, z: Tensor, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Add the rows' bias columns (if any) to raw scores ``z``: ``(batch,)`` aligned pairs
        or a ``(b, n)`` block of every user against every item."""
        if not self.bias_columns:
            return z
        if z.dim() == 1:
            return z + user_vectors[:, -1] + item_vectors[:, -1]
        return z + user_vectors[:, -1:] + item_vectors[:, -1]

    def item_factors(self) -> Tensor:
        """Return the item rows without bias columns: ``(n_items, width - bias_columns)``."""
        return self.factors(self.item_embedding.weight)


@runtime_checkable
class HandStepModel(Protocol):
    """A model with a hand-written rating step (no autograd), equal to the autograd step."""

    def gradient_step(self, weight_decay: float, bias_weight_decay: float) -> HandStep:
        """Return the step: forward and MSE + :func:`add_decay` gradients; run under no_grad."""
        ...


@runtime_checkable
class ConcatTowerModel(Protocol):
    """A model whose raw score is ``concat_tower([user factors; item factors])`` plus its bias
    columns, through ``bounds`` (the MLP): the shape training's fused step takes."""

    bias_columns: int
    bounds: tuple[float, float] | None

    @property
    def concat_tower(self) -> Tower:
        """The tower over the concatenated factors."""
        ...


@runtime_checkable
class KernelModel(Protocol):
    """A model with a compiled per-rating trainer (:mod:`embrec.kernels`)."""

    def rating_kernel(self) -> tuple[Any, tuple[float, float] | None]:
        """Return the kernel and the output bounds ``(low, width)`` or ``None``."""
        ...


class EmbeddingFields(Protocol):
    """The fields every embedding model's config has (:meth:`EmbeddingModel.init_weights`)."""

    @property
    def bounded(self) -> bool: ...
    @property
    def init(self) -> str: ...
    @property
    def init_std(self) -> float: ...


class ModelConfig(Protocol):
    """What every model config offers: a registry name, ``build`` and a JSON round trip."""

    name: ClassVar[str]

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float],
              mean: float) -> RatingModel:
        """Create the untrained model for a data set (``scale`` is the rating scale, for a
        bounded output; ``mean`` the training mean rating, where a global bias starts)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict."""
        ...

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Build the config from a dict, rejecting unknown keys."""
        ...
