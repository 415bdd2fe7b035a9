"""Recommender: a trained model together with its id maps, scale and training facts.

``fit()`` returns one, so there is no unfitted state. It takes raw ids in and
gives raw ids out; the model inside only ever sees contiguous indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from embrec.config import TrainConfig
from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings
from embrec.models.base import ModelConfig, RatingModel

__all__ = ["OnUnknown", "Recommender"]

OnUnknown = Literal["error", "nan", "mean"]


@dataclass(eq=False)
class Recommender:
    """A trained rating model with everything needed to use it on raw ids.

    Attributes:
        model: the trained network (in eval mode, on ``device``).
        model_config: the config that built ``model``.
        train_config: the config it was trained with.
        users: raw user ids of the training data.
        items: raw item ids of the training data.
        scale: ``(min, max)`` rating scale; predictions are clipped to it.
        mean: mean training rating (the fallback for unknown ids).
        seen: ``(n_users, n_items)`` CSR matrix of training ratings, used to
            exclude seen items from recommendations.
        history: one dict per epoch (``epoch``, ``train_rmse``, ``validation_rmse``,
            ``seconds``...).
        item_info: item metadata (titles, genres) indexed by raw item id.
        metadata: facts about the training run: data source, fingerprint,
            split, seed, metrics.
    """

    model: RatingModel
    model_config: ModelConfig
    train_config: TrainConfig
    users: IdIndex
    items: IdIndex
    scale: tuple[float, float]
    mean: float
    seen: sp.csr_matrix
    history: list[dict[str, float]] = field(default_factory=list)
    item_info: pd.DataFrame | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_training(
        cls,
        model: RatingModel,
        model_config: ModelConfig,
        train_config: TrainConfig,
        train: Ratings,
        *,
        history: list[dict[str, float]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Recommender:
        """Wrap a freshly trained model with the facts of its training data.

        Args:
            model: the trained model.
            model_config: the config that built it.
            train_config: the training config.
            train: the training ratings (indexes, scale, seen items, metadata).
            history: per-epoch training history.
            metadata: extra facts to record (split, seed, metrics...).

        Returns:
            The recommender, with the model in eval mode.
        """
        model.eval()
        seen = sp.csr_matrix(
            (train.rating, (train.user, train.item)), shape=(train.n_users, train.n_items)
        )
        facts = {"data": train.source, "fingerprint": train.fingerprint(),
                 "n_train": len(train), **(metadata or {})}
        return cls(model, model_config, train_config, train.users, train.items, train.scale,
                   float(train.rating.mean()), seen, list(history or []), train.item_info, facts)

    @property
    def device(self) -> torch.device:
        """The device the model's weights live on."""
        return next(self.model.parameters()).device

    def predict(
        self,
        user: Any,
        item: Any,
        *,
        on_unknown: OnUnknown = "error",
        clip: bool = True,
    ) -> Any:
        """Predict ratings for raw ids: a float for scalars, an array for arrays.

        Args:
            user: one raw user id or an array of them.
            item: one raw item id or an array of them, aligned with ``user``.
            on_unknown: ``"error"`` raises for unknown ids, ``"nan"`` gives
                NaN, ``"mean"`` gives the training mean rating.
            clip: clip predictions to the rating scale.

        Returns:
            A float for a single pair, else a float32 array.

        Raises:
            UnknownIdError: for unknown ids when ``on_unknown="error"``.
        """
        scalar = np.ndim(user) == 0 and np.ndim(item) == 0
        policy: Literal["error", "missing"] = "error" if on_unknown == "error" else "missing"
        u = self.users.index(self.users.coerce(user), on_unknown=policy)
        i = self.items.index(self.items.coerce(item), on_unknown=policy)
        u, i = np.broadcast_arrays(u, i)
        known = (u >= 0) & (i >= 0)
        out = np.full(len(u), np.nan if on_unknown == "nan" else self.mean, dtype=np.float32)
        out[known] = self.predict_indices(u[known], i[known], clip=clip)
        return float(out[0]) if scalar else out

    def predict_indices(self, user: np.ndarray, item: np.ndarray, *, clip: bool = True,
                        batch_size: int = 65_536) -> np.ndarray:
        """Predict for internal index arrays, in batches, without autograd.

        Args:
            user: int user indices.
            item: int item indices, aligned with ``user``.
            clip: clip predictions to the rating scale.
            batch_size: pairs scored per forward pass.

        Returns:
            A float32 array of predictions.
        """
        out = np.empty(len(user), dtype=np.float32)
        users = torch.as_tensor(np.asarray(user, dtype=np.int64))
        items = torch.as_tensor(np.asarray(item, dtype=np.int64))
        with torch.inference_mode():
            for start in range(0, len(out), batch_size):
                stop = start + batch_size
                scores = self.model(users[start:stop].to(self.device),
                                    items[start:stop].to(self.device))
                out[start:stop] = scores.float().cpu().numpy()
        if clip:
            np.clip(out, self.scale[0], self.scale[1], out=out)
        return out
