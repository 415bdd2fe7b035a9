"""GMF: element-wise product of user and item embeddings, then a dense head (Goodreads notebook).

``GMFConfig(embedding_dim=99, hidden=(1,), activation="relu", dropout=0.2)`` is
the notebook's network: embeddings of 99, multiplied element-wise, dropout 0.2,
Dense(1, relu), Dense(1). With ``hidden=()`` the head is a single weighted sum,
He et al.'s generalised matrix factorisation. Beware the notebook's one-unit
ReLU: once its input turns negative for every pair the unit is dead and the
model predicts one constant; the training diagnostics report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from embrec.config import JsonConfig, require, require_choice
from embrec.models.base import EmbeddingModel
from embrec.models.init import INITS, init_dense, init_embedding, output_bounds, start_output
from embrec.models.mlp import (
    ACTIVATIONS,
    PAIR_BUDGET,
    HandStep,
    Tower,
    TowerStep,
    bound,
    output_and_gradient,
)

__all__ = ["GMF", "GMFConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class GMFConfig(JsonConfig):
    """Element-wise product of embeddings, then dense layers.

    Attributes:
        embedding_dim: size of each user and item embedding.
        hidden: widths of the dense layers between the product and the output.
        activation: their activation: ``relu``, ``tanh`` or ``linear``.
        dropout: dropout rate on the product.
        bounded: squash outputs into the (slightly widened) rating scale.
        init: ``keras`` or ``normal`` (see :mod:`embrec.models.init`).
        init_std: embedding standard deviation for ``init="normal"``.
    """

    name: ClassVar[str] = "gmf"
    embedding_dim: int = 99
    hidden: tuple[int, ...] = (1,)
    activation: str = "relu"
    dropout: float = 0.2
    bounded: bool = False
    init: str = "keras"
    init_std: float = 0.05

    def __post_init__(self) -> None:
        require(self.embedding_dim >= 1, "embedding_dim", self.embedding_dim, "must be >= 1")
        require(all(w >= 1 for w in self.hidden), "hidden", self.hidden, "widths must be >= 1")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")
        require_choice("activation", self.activation, ACTIVATIONS)
        require_choice("init", self.init, INITS)
        require(self.init_std > 0, "init_std", self.init_std, "must be > 0")

    def build(self, n_users: int, n_items: int, *, scale: tuple[float, float] = (1.0, 5.0),
              mean: float = 3.0) -> GMF:
        """Create the untrained network.

        Args:
            n_users: number of users.
            n_items: number of items.
            scale: rating scale, used when ``bounded``.
            mean: training mean rating: the output bias starts there with
                ``init="normal"`` (Keras, and so ``init="keras"``, starts it at zero).

        Returns:
            The model.
        """
        return GMF(n_users, n_items, self, scale, mean)


class GMF(EmbeddingModel):
    """User embedding ⊙ item embedding -> dropout -> dense layers -> one output."""

    def __init__(self, n_users: int, n_items: int, config: GMFConfig,
                 scale: tuple[float, float], mean: float) -> None:
        dim = config.embedding_dim
        super().__init__(n_users, n_items, dim)
        dropout = (config.dropout,) + (0.0,) * len(config.hidden)
        self.tower = Tower((dim, *config.hidden, 1), dropout, config.activation)
        self.bounds = output_bounds(scale) if config.bounded else None
        for table in (self.user_embedding, self.item_embedding):
            init_embedding(table.weight, config.init, config.init_std)
        for k in range(len(self.tower.layers)):
            init_dense(self.tower.layer(k), config.init)
        if config.init == "normal":
            start_output(self.tower.layer(len(self.tower.layers) - 1), mean, self.bounds)

    def score(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Predict ratings for aligned rows: ``(batch,)``."""
        return bound(self.tower(user_vectors * item_vectors).squeeze(1), self.bounds)

    def score_matrix(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """Score every user against every item with matrix products.

        The first layer's unit ``h`` sees ``sum_d u_d i_d W_hd``, which is
        ``(u * W_h) @ i.T``: one ``(b * width, dim) @ (dim, n)`` product.

        Returns:
            ``(n_users_block, n_items_block)`` predictions.
        """
        first = self.tower.layer(0)
        b, n = user_vectors.shape[0], item_vectors.shape[0]
        width = first.weight.shape[0]
        scaled = user_vectors.unsqueeze(1) * first.weight.unsqueeze(0)  # (b, width, dim)
        chunk = max(1, PAIR_BUDGET // max(b * width, 1))
        blocks = []
        for start in range(0, n, chunk):
            items = item_vectors[start:start + chunk]
            z = (scaled.reshape(b * width, -1) @ items.t()).reshape(b, width, -1)  # (b, width, n)
            blocks.append(self.tower.finish(z.transpose(1, 2) + first.bias))  # (b, chunk, 1)
        return bound(torch.cat(blocks, 1).squeeze(2), self.bounds)

    def gradient_step(self, weight_decay: float, bias_weight_decay: float) -> HandStep:
        """Return the hand-written rating step: forward and MSE + L2 gradients, no autograd.

        The step ``(user, item, rating) -> (predictions, user row gradients, item
        row gradients)`` computes what :func:`embrec.training.step.autograd_step`
        does for the rating loss, adding the dense layers' gradients to their
        ``.grad``; call it under ``torch.no_grad()``. (GMF rows have no bias
        columns, so ``bias_weight_decay`` does not apply.)
        """
        users, items = self.user_embedding.weight.detach(), self.item_embedding.weight.detach()
        tower, bounds = TowerStep(self.tower), self.bounds

        def step(user: Tensor, item: Tensor, rating: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            u = users.index_select(0, user)  # (batch, embedding_dim)
            i = items.index_select(0, item)  # (batch, embedding_dim)
            z, saved = tower.forward(u * i)
            prediction, grad = output_and_gradient(z.squeeze(1), rating, bounds)
            grad_product = tower.backward(saved, grad.unsqueeze(1))  # (batch, embedding_dim)
            grad_u, grad_i = grad_product * i, grad_product.mul_(u)
            if weight_decay > 0:
                grad_u.add_(u, alpha=2.0 * weight_decay / len(rating))
                grad_i.add_(i, alpha=2.0 * weight_decay / len(rating))
            return prediction, grad_u, grad_i

        return step
