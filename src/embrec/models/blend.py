"""A blend of registered models: one model whose score is a non-negative mix of theirs.

``BlendConfig.components`` lists the models (each a registry name, its config
and its training config); :func:`embrec.training.blend_fit.fit_blend` fits them and chooses
the weights on validation rows carved from the training ratings. The fitted
components live inside :class:`Blend` as submodules, so a blend saves (one
safetensors file), loads, serves and evaluates like any model.

- ``target="rating"``: ``r̂ = b + Σ_k w_k clip(r̂_k)``, weights ``w ≥ 0`` and
  intercept ``b`` by least squares on the validation ratings.
- ``target="ranking"``: ``s = Σ_k w_k z_k`` with ``z_k`` the component's scores
  standardised per user over the whole catalogue (scores of different models
  live on different scales), ``w`` on the simplex chosen by validation NDCG@k.

A user's vector is the concatenation of the components' user vectors, an
item's likewise; a new user folds into each component as that component
would fold them in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import Tensor, nn

from embrec.config import JsonConfig, require, require_choice
from embrec.data.ratings import Ratings
from embrec.errors import ConfigError
from embrec.models.base import RatingModel
from embrec.models.registry import component_configs

__all__ = ["Blend", "BlendConfig", "component_configs"]

TARGETS = ("rating", "ranking")


@dataclass(frozen=True, kw_only=True, slots=True)
class BlendConfig(JsonConfig):
    """What to blend and how the weights are chosen.

    Attributes:
        components: one dict per model, ``{"model": name, "config": {...},
            "train": {...}}`` (``train`` omitted: the model's default training;
            its seed omitted: one drawn from the blend's seed).
        target: ``rating`` (least squares on ratings) or ``ranking`` (NDCG@k).
        validation: fraction of the training ratings carved out (seeded) to
            choose the weights on; never the test rows.
        refit: after choosing the weights, fit every component again on all the
            training ratings (twice the time; uses the carved rows too).
        k: the NDCG cut-off the ranking weights are chosen for.
        steps: the ranking weights are searched on the simplex grid of
            ``1 / steps`` (``steps + 1`` pairs for two components).
    """

    name: ClassVar[str] = "blend"
    closed_form: ClassVar[bool] = True  # fitted by fit_blend, not by fit()'s loop
    components: tuple[dict[str, Any], ...] | None = None  # required: None is refused
    target: str = "rating"
    validation: float = 0.1
    refit: bool = True
    k: int = 10
    steps: int = 20

    def __post_init__(self) -> None:
        if not self.components:
            raise ConfigError("components", self.components, "must list at least one model",
                              hint="run `embrec blend MODEL MODEL...`, or call "
                              "embrec.blend([...]) from Python")
        normal = []
        for spec in self.components:
            require(isinstance(spec, dict), "components", spec, "must hold dicts")
            model, train = component_configs(spec)
            entry: dict[str, Any] = {"model": model.name, "config": model.to_dict()}
            if train is not None:
                entry["train"] = train.to_dict()
            normal.append(entry)
        object.__setattr__(self, "components", tuple(normal))  # JSON-normal: lists, not tuples
        require_choice("target", self.target, TARGETS)
        require(0 < self.validation < 1, "validation", self.validation, "must be in (0, 1)")
        require(self.k >= 1, "k", self.k, "must be at least 1")
        require(self.steps >= 1, "steps", self.steps, "must be at least 1")

    @property
    def specs(self) -> tuple[dict[str, Any], ...]:
        """The components' specs (never ``None`` once the config exists)."""
        return self.components or ()

    @property
    def scores(self) -> str:
        """``rating`` for a rating blend, ``ranking`` for a ranking one."""
        return "rating" if self.target == "rating" else "ranking"

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> Blend:
        """Build the unfitted components inside an unfitted blend.

        Raises:
            ConfigError: if a component refuses the data's size.
        """
        with torch.random.fork_rng():  # the fitted components replace these: draw nothing,
            models = [component_configs(spec)[0].build(n_users, n_items, scale=scale, mean=mean)
                      for spec in self.specs]  # so the carve depends on the seed alone
        return Blend(n_users, n_items, self, models, scale)


class Blend(RatingModel):
    """The components (``parts``), their ``weights`` and, for ratings, an ``intercept``."""

    weights: Tensor
    intercept: Tensor
    report: dict[str, Any]

    def __init__(self, n_users: int, n_items: int, config: BlendConfig,
                 parts: list[RatingModel], scale: tuple[float, float]) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        self.scale = scale
        self.parts = nn.ModuleList(parts)
        self.register_buffer("weights", torch.full((len(parts),), 1.0 / len(parts)))
        self.register_buffer("intercept", torch.zeros(()))
        self.report: dict[str, Any] = {}  # what fit_blend measured on the validation rows

    @property
    def variable_buffers(self) -> tuple[str, ...]:
        """The components' buffers sized by the training data (EASE's histories)."""
        return tuple(f"parts.{k}.{name}" for k, part in enumerate(self.parts)
                     for name in getattr(part, "variable_buffers", ()))

    def solve_with(self, train: Ratings, fit: Callable[..., Any]) -> None:
        """Fit the components with ``fit`` and the weights (see
        :func:`embrec.training.blend_fit.fit_blend`)."""
        from embrec.training.blend_fit import fit_blend

        fit_blend(self, train, fit)

    def part(self, k: int) -> RatingModel:
        """Component ``k``."""
        return cast(RatingModel, self.parts[k])

    def components(self) -> list[RatingModel]:
        """The components, in order."""
        return [self.part(k) for k in range(len(self.parts))]

    def _widths(self, side: str) -> list[int]:
        key = f"_{side}_widths"
        if key not in self.__dict__:
            probe = torch.zeros(1, dtype=torch.long, device=self.weights.device)
            self.__dict__[key] = [getattr(part, f"{side}_vectors")(probe).shape[1]
                                  for part in self.components()]
        widths: list[int] = self.__dict__[key]
        return widths

    def _split(self, vectors: Tensor, side: str) -> tuple[Tensor, ...]:
        return torch.split(vectors, self._widths(side), dim=1)

    def user_vectors(self, user: Tensor) -> Tensor:
        """The components' user vectors side by side: ``(batch, Σ widths)``."""
        return torch.cat([part.user_vectors(user).float() for part in self.components()], 1)

    def item_vectors(self, item: Tensor) -> Tensor:
        """The components' item vectors side by side: ``(batch, Σ widths)``."""
        return torch.cat([part.item_vectors(item).float() for part in self.components()], 1)

    def combine(self, scores: list[Tensor]) -> Tensor:
        """Mix the components' (clipped or standardised) scores with the weights."""
        total = torch.zeros_like(scores[0])
        for w, s in zip(self.weights.unbind(), scores, strict=True):
            total = total + w * s
        return total + self.intercept

    def standardised(self, k: int, users: Tensor, scores: Tensor) -> Tensor:
        """Component ``k``'s ``scores`` of ``users`` (rows), standardised per user over
        the whole catalogue; a ranking blend's input to :meth:`combine`."""
        part = self.part(k)
        catalogue = part.item_vectors(torch.arange(self.n_items, device=users.device))
        unique, inverse = torch.unique(users, dim=0, return_inverse=True)
        every = part.score_matrix(unique, catalogue).float()  # (unique users, n_items)
        mean, std = every.mean(1), every.std(1).clamp_min(1e-12)
        shape = (-1,) + (1,) * (scores.dim() - 1)
        return (scores - mean[inverse].reshape(shape)) / std[inverse].reshape(shape)

    def _mixed(self, users: Tensor, items: Tensor, matrix: bool) -> Tensor:
        parts = zip(self.components(), self._split(users, "user"), self._split(items, "item"),
                    strict=True)
        scores = []
        for k, (part, u, i) in enumerate(parts):
            s = (part.score_matrix(u, i) if matrix else part.score(u, i)).float()
            if self.config.target == "rating":
                scores.append(s.clamp(*self.scale))
            else:
                scores.append(self.standardised(k, u, s))
        return self.combine(scores)

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Blend aligned pairs: ``(batch,)``."""
        return self._mixed(user_vectors, item_vectors, matrix=False)

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Blend every user against every item: ``(b, n)``."""
        return self._mixed(user_vectors, item_vectors, matrix=True)

    def item_factors(self) -> Tensor:
        """Unit item factors of each component scaled by ``sqrt(w_k / Σ w)``, side by side:
        their cosine is the weighted mean of the components' cosines.

        Raises:
            ConfigError: if no component has item factors (``popular`` alone).
        """
        blocks = []
        share = self.weights / self.weights.sum().clamp_min(1e-12)
        for part, w in zip(self.components(), share.unbind(), strict=True):
            try:
                factors = part.item_factors().float()
            except ConfigError:
                continue
            unit = factors / factors.norm(dim=1, keepdim=True).clamp_min(1e-12)
            blocks.append(unit * w.sqrt())
        if not blocks:
            raise ConfigError("components", [p["model"] for p in self.config.specs],
                              "have no item similarity",
                              hint="blend a model with item factors, e.g. 'biased-mf'")
        return torch.cat(blocks, 1)

    def history_vector(self, items: np.ndarray, ratings: np.ndarray) -> Tensor:
        """A new user folded into every component, side by side: ``(1, Σ widths)``."""
        from embrec.foldin import fold_in, user_prior

        vectors = []
        index = torch.as_tensor(items, dtype=torch.long, device=self.weights.device)
        for part in self.components():
            direct = getattr(part, "history_vector", None)
            if direct is not None:
                vectors.append(direct(items, ratings).float())
                continue
            targets = torch.as_tensor(ratings, device=index.device)
            vectors.append(fold_in(part, part.item_vectors(index), targets,
                                   user_prior(part)).float())
        return torch.cat(vectors, 1)
