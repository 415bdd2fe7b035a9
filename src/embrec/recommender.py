"""Recommender: a trained model together with its id maps, scale and training facts.

``fit()`` returns one, so there is no unfitted state: raw ids in, raw ids out; the
model inside only sees contiguous indices. What is derived from the frozen model
(item vectors, unit factors, mean ratings, the fold-in prior) is computed once, on
first use. ``save`` and ``load`` go through the plain state of :mod:`embrec.artifacts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from embrec import artifacts
from embrec.artifacts import ModelState
from embrec.coldstart import BIAS_DAMPING, cold_vector, damped_means
from embrec.config import TrainConfig, require, require_choice
from embrec.data.ids import IdIndex
from embrec.data.ratings import Ratings
from embrec.device import resolve_device
from embrec.errors import ConfigError, UnknownIdError
from embrec.foldin import fold_in, rated_items, user_prior
from embrec.models.base import ModelConfig, RatingModel
from embrec.topn import item_frame, titles_by_index, top_n, top_n_for_vector, top_similar

__all__ = ["BIAS_DAMPING", "OnUnknown", "Recommender", "load", "save"]

OnUnknown = Literal["error", "nan", "mean"]
T = TypeVar("T")


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
        seen: ``(n_users, n_items)`` CSR matrix of training ratings (excluded when recommending).
        history: one dict per epoch (``epoch``, ``train_rmse``, ``validation_rmse``...).
        item_info: item metadata (titles, genres) indexed by raw item id.
        metadata: facts about the training run: data, fingerprint, split, seed, metrics.
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
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

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
        """Wrap a freshly trained model (put in eval mode) with the id maps, scale, seen items
        and facts of its training data ``train``; ``metadata`` adds to those (split, seed...)."""
        model.eval()
        seen = sp.csr_matrix((train.rating, (train.user, train.item)),
                             shape=(train.n_users, train.n_items))
        facts = {"data": train.source, "fingerprint": train.fingerprint(),
                 "n_train": len(train), "scores": getattr(model_config, "scores", "rating"),
                 **(metadata or {})}
        return cls(model, model_config, train_config, train.users, train.items, train.scale,
                   float(train.rating.mean()), seen, list(history or []), train.item_info, facts)

    @property
    def device(self) -> torch.device:
        """The device the model's weights live on."""
        return next(self.model.parameters()).device

    @property
    def n_users(self) -> int:
        """Number of users the model knows."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items in the catalogue."""
        return len(self.items)

    @property
    def scores(self) -> str:
        """What the model's scores mean: ``"rating"`` or ``"ranking"`` (``popular``, ``ease``,
        a ranking loss): a ranking score is on no rating scale, so ``predict`` refuses it
        unless asked for ``kind="score"`` and ``evaluate`` reports ranking metrics only."""
        return str(self.metadata.get("scores") or getattr(self.model_config, "scores", "rating"))

    @property
    def model_name(self) -> str:
        """The registry name of the model, e.g. ``"biased-mf"``."""
        return str(self.model_config.name)

    def save(self, path: str | Path, *, test: Ratings | None = None) -> Path:
        """Write to the directory ``path``, replacing an earlier model there atomically.

        Files you added to the folder stay (:mod:`embrec.modeldir`; files: :mod:`embrec.artifacts`).

        Args:
            path: the model directory; its parent folders are created.
            test: the rows held out from training, saved for ``embrec evaluate DIR``.

        Returns:
            The directory's path.

        Raises:
            ArtifactError: if ``path`` is a file or a non-empty folder that is not an embrec
                model folder (never touched), the weights hold NaN or infinity, or another
                process is saving to ``path``.
        """
        kept = {f.name: getattr(self, f.name) for f in fields(ModelState) if f.name != "weights"}
        return artifacts.write(ModelState(weights=self.model.state_dict(), **kept), path, test=test)

    def predict(self, user: Any, item: Any, *, on_unknown: OnUnknown = "error",
                clip: bool = True, kind: Literal["rating", "score"] = "rating") -> Any:
        """Predict ratings for raw ids: a float for scalars, an array for arrays.

        Args:
            user: one raw user id or an array of them.
            item: one raw item id or an array of them, aligned with ``user``.
            on_unknown: ``"error"`` raises for unknown ids, ``"nan"`` gives
                NaN, ``"mean"`` falls back on the data: the item's damped mean
                rating for an unknown user, the user's for an unknown item,
                the global mean when both are unknown.
            clip: clip predictions to the rating scale.
            kind: ``"rating"``, or ``"score"`` for the model's raw score, never
                clipped (the only kind a ranking model, see :attr:`scores`, gives).

        Returns:
            A float for a single pair, else a float32 array.

        Raises:
            UnknownIdError: for unknown ids when ``on_unknown="error"``.
            ConfigError: for an unknown ``on_unknown`` policy or ``kind``, or
                ``kind="rating"`` from a ranking model.
        """
        require_choice("on_unknown", on_unknown, ("error", "nan", "mean"))
        require_choice("kind", kind, ("rating", "score"))
        if kind == "rating" and self.scores == "ranking":
            ranker = getattr(self.model_config, "scores", "rating") == "ranking"
            raise ConfigError("kind", kind, f"is not available: this {self.model_name} model's "
                              "scores rank items and are not ratings",
                              hint="pass kind='score' for the ranking scores, or " + (
                                  "train a rating model such as biased-mf" if ranker else
                                  "train it with loss='rating' (the default)") + " for ratings")
        clip = clip and kind == "rating"
        scalar = np.ndim(user) == 0 and np.ndim(item) == 0
        policy: Literal["error", "missing"] = "error" if on_unknown == "error" else "missing"
        try:
            u = self.users.index(self.users.coerce(user), on_unknown=policy)
            i = self.items.index(self.items.coerce(item), on_unknown=policy)
        except UnknownIdError as error:
            raise UnknownIdError(error.kind, error.ids, hint=(
                f"the model knows only the {error.kind}s of its training data; pass "
                "on_unknown='mean' (CLI: --on-unknown mean) for a fallback from the data's "
                "means, or on_unknown='nan'")) from None
        out = self.predict_with_fallback(u, i, on_unknown=on_unknown, clip=clip)
        return float(out[0]) if scalar else out

    def predict_with_fallback(self, user: np.ndarray, item: np.ndarray, *,
                              on_unknown: OnUnknown = "mean", clip: bool = True) -> np.ndarray:
        """:meth:`predict` on index arrays (broadcast together) where -1 marks an unknown id;
        ``on_unknown`` (``"nan"`` or ``"mean"``) gives those pairs' value. Returns float32."""
        u, i = np.broadcast_arrays(np.asarray(user, dtype=np.int64),
                                   np.asarray(item, dtype=np.int64))
        u, i = u.ravel(), i.ravel()
        known = (u >= 0) & (i >= 0)
        out = np.full(len(u), np.nan, dtype=np.float32)
        if on_unknown == "mean" and not known.all():
            means = self._cached("means", lambda: damped_means(self.seen, self.mean))
            fallback = np.where(i >= 0, means[1][np.maximum(i, 0)], self.mean)
            out[~known] = np.where(u >= 0, means[0][np.maximum(u, 0)], fallback)[~known]
        out[known] = self.predict_indices(u[known], i[known], clip=clip)
        return out

    def predict_indices(self, user: np.ndarray, item: np.ndarray, *, clip: bool = True,
                        batch_size: int = 65_536) -> np.ndarray:
        """Predict float32 scores for aligned index arrays, ``batch_size`` pairs per forward
        pass, without autograd (clipped to the rating scale with ``clip``)."""
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

    def recommend(self, user: Any = None, *, users: Any = None, n: int = 10,
                  exclude_seen: bool = True) -> pd.DataFrame:
        """Recommend the ``n`` best-scored items for one user or for many.

        Items are ranked by the model's raw score (ties to the item seen first
        in the index); the ``score`` column is clipped to the rating scale
        (for a model whose scores are ratings, see :attr:`scores`).

        Args:
            user: one raw user id; gives columns ``item``, ``score`` (and
                ``title`` when the data has titles), best first.
            users: many raw user ids instead; gives columns ``user``, ``rank``
                (from 1), ``item``, ``score`` (and ``title``).
            n: items per user; a user with fewer unseen items gets them all.
            exclude_seen: leave out the items each user rated in training.

        Returns:
            The recommendations as a DataFrame.

        Raises:
            UnknownIdError: for a user not seen in training.
            ConfigError: unless exactly one of ``user`` and ``users`` is given,
                or if ``n`` is not a positive integer.
        """
        _check_n(n)
        if (user is None) == (users is None) or (user is not None and np.ndim(user) != 0):
            raise ConfigError("user", user, "needs exactly one user id, or users=[...]",
                              hint="pass user=<id> for one user or users=[ids] for many")
        index = self.users.index(self.users.coerce(user if users is None else users))
        items, scores = self.top_n_indices(index, n=n, exclude_seen=exclude_seen)
        rows, ranks = np.nonzero(items >= 0)  # row by row, best first
        frame = self._item_frame(items[rows, ranks], scores[rows, ranks], "score")
        if users is not None:
            frame.insert(0, "rank", ranks + 1)
            frame.insert(0, "user", self.users.id_of(index)[rows])
        return frame

    def top_n_indices(self, users: np.ndarray, *, n: int = 10,
                      exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`recommend` on user indices: ``(items, scores)``, each ``(len(users),
        min(n, n_items))``, int64 item indices padded with -1 and float32 scores (clipped
        when they are ratings) padded with NaN."""
        seen = (self.seen.indptr, self.seen.indices) if exclude_seen else None
        items, scores = top_n(self.model, users, self._item_vectors(), n, seen=seen)
        if self.scores == "rating":
            np.clip(scores, self.scale[0], self.scale[1], out=scores)
        return items, scores

    def similar_items(self, item: Any, *, n: int = 10) -> pd.DataFrame:
        """Return the ``n`` items whose factors are closest in cosine to ``item``'s.

        Args:
            item: one raw item id.
            n: how many neighbours (the item itself is excluded).

        Returns:
            A DataFrame with columns ``item``, ``similarity`` (and ``title``), best first.

        Raises:
            UnknownIdError: for an item not seen in training.
            ConfigError: if ``n`` is not a positive integer.
        """
        _check_n(n)
        index = int(self.items.index(self.items.coerce(item))[0])
        unit = self._cached("unit_factors", lambda: torch.nn.functional.normalize(
            self.model.item_factors().detach().float(), dim=1, eps=1e-12))
        neighbours, similarity = top_similar(unit, index, n)
        return self._item_frame(neighbours, similarity, "similarity")

    def recommend_for_ratings(self, ratings: Mapping[Any, float], *, n: int = 10,
                              exclude_seen: bool = True,
                              on_unknown: Literal["error", "ignore"] = "error") -> pd.DataFrame:
        """Recommend for a new user given their ratings, without retraining.

        A user vector is fitted to the ratings with the items frozen (:mod:`embrec.foldin`);
        with no usable rating it is the mean user's. A model that builds it from the history
        itself (``popular``, ``ease``: ``model.history_vector``) gets it exactly.

        Args:
            ratings: raw item id -> rating.
            n: how many items to return.
            exclude_seen: leave out the items in ``ratings``.
            on_unknown: ``"error"`` raises for items not seen in training,
                ``"ignore"`` skips them.

        Returns:
            A DataFrame with columns ``item``, ``score`` (and ``title``), best first.

        Raises:
            UnknownIdError: for unknown items when ``on_unknown="error"``.
            DataError: for a rating that is not a finite number.
            ConfigError: for a bad ``n`` or ``on_unknown``.
        """
        _check_n(n)
        require_choice("on_unknown", on_unknown, ("error", "ignore"))
        index, values = rated_items(self.items, ratings, on_unknown=on_unknown)
        direct = getattr(self.model, "history_vector", None)
        if direct is not None:
            vector = direct(index, values)
        else:
            prior = self._cached("prior", lambda: user_prior(self.model))
            vector = fold_in(self.model, self._item_vectors()[torch.as_tensor(index)],
                             torch.as_tensor(values), prior)
        return self._vector_frame(vector, n, index if exclude_seen else None)

    def recommend_for_features(self, features: Mapping[str, Any], *, n: int = 10
                               ) -> pd.DataFrame:
        """Recommend for a new user known only by side features (the cold start).

        Args:
            features: raw feature values by column, e.g. ``{"age": 30, "gender": "F"}``.
            n: how many items to return.

        Returns:
            A DataFrame with columns ``item``, ``score`` (and ``title``), best first.

        Raises:
            ConfigError: if the model learnt no user features (see :mod:`embrec.coldstart`).
        """
        _check_n(n)
        return self._vector_frame(cold_vector(self, features), n, None)

    def _cached(self, key: str, build: Callable[[], T]) -> T:
        """``build()`` once per model device (a moved model's vectors are rebuilt)."""
        device, value = self._cache.get(key, (None, None))
        if device != self.device:
            with torch.no_grad():
                device, value = self._cache[key] = (self.device, build())
        return cast(T, value)

    def _item_frame(self, items: np.ndarray, values: np.ndarray, column: str) -> pd.DataFrame:
        titles = self._cached("titles", lambda: titles_by_index(self.item_info, self.items))
        return item_frame(self.items.id_of(items), values, column, titles, items)

    def _vector_frame(self, vector: torch.Tensor, n: int, exclude: np.ndarray | None
                      ) -> pd.DataFrame:
        """The ``n`` best items for a user vector not in the model, as :meth:`recommend` gives."""
        items, scores = top_n_for_vector(self.model, vector, self._item_vectors(), n,
                                         exclude=exclude)
        if self.scores == "rating":
            scores = np.clip(scores, *self.scale)
        return self._item_frame(items, scores, "score")

    def _item_vectors(self) -> torch.Tensor:
        all_items = torch.arange(self.n_items, device=self.device)
        return self._cached("item_vectors", lambda: self.model.item_vectors(all_items).detach())


def _check_n(n: int) -> None:
    require(isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 1,
            "n", n, "must be a positive integer")


def save(rec: Recommender, path: str | Path, *, test: Ratings | None = None) -> Path:
    """Write ``rec`` to the directory ``path``: :meth:`Recommender.save` as a function.

    Raises:
        ArtifactError: as :meth:`Recommender.save` does.
    """
    return rec.save(path, test=test)


def load(path: str | Path, *, device: str | torch.device = "cpu") -> Recommender:
    """Load a model directory written by :func:`save`, every file and value checked first.

    Args:
        path: the model directory.
        device: where to put the model: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.

    Returns:
        The recommender, its model in eval mode on ``device``.

    Raises:
        ArtifactError: for a missing, unreadable or changed file (hash mismatch), another
            format version, an invalid config value, an unknown model, or weights that do
            not fit the model or hold NaN/infinity.
        ConfigError: for a device that is not available.
    """
    target = resolve_device(device)  # before reading: a bad device is said first
    state = artifacts.read(path)
    kept = {f.name: getattr(state, f.name) for f in fields(state) if f.name != "weights"}
    return Recommender(state.build_model(target), **kept)
