"""A fit's optimisers: row-sparse (or Keras-dense) for the embedding tables, flat for the rest.

The engine owns the trained storage: the tables live in their row optimiser's
``[weights | state]`` buffers (:mod:`embrec.training.sparse`) and the dense
parameters in one flat buffer (:mod:`embrec.training.optim`), each installed in
the model as its parameters. Every trainer updates those buffers, torch steps
through :meth:`Engine.update`, the compiled kernels in place; checkpoints save
them whichever trainer ran.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from embrec.config import TrainConfig
from embrec.models.base import EmbeddingModel
from embrec.training.optim import DenseOptimizer, DenseParameters
from embrec.training.sparse import DenseTableAdam, RowOptimizer, row_optimizer

__all__ = ["Engine"]


class Engine:
    """The model's optimisers: row-sparse (or Keras-dense) for the tables, flat for the rest.

    ``one_adam_call``: the Keras-dense tables and the dense layers take the same Adam
    update, so the fused MLP step (:mod:`embrec.training.fused`) takes both in one call.
    """

    def __init__(self, model: EmbeddingModel, config: TrainConfig) -> None:
        self.modules = [model.user_embedding, model.item_embedding]
        self.dense = DenseParameters(model, [m.weight for m in self.modules])
        self.dense_optimizer = DenseOptimizer(self.dense, config)
        epsilon = config.adam_epsilon if config.optimizer.startswith("adam") else 1e-10
        weights = [m.weight.detach() for m in self.modules]
        self.keras: DenseTableAdam | None = None
        self.tables: list[RowOptimizer] = []
        if config.embedding_updates == "dense":
            self.keras = DenseTableAdam(weights[0], weights[1], epsilon)
            trained = list(self.keras.weights)
        else:
            self.tables = [row_optimizer(config.optimizer, w, epsilon) for w in weights]
            trained = [table.weight for table in self.tables]
        for module, weight in zip(self.modules, trained, strict=True):
            module.weight = nn.Parameter(weight)  # trained in the optimiser's buffer
        self.one_adam_call = self.keras is not None \
            and self.dense_optimizer.kind in ("adam", "adamw") \
            and self.dense_optimizer.epsilon == self.keras.epsilon

    def update(self, user_index: Tensor, user_grad: Tensor, item_index: Tensor,
               item_grad: Tensor, lr: float, step: int) -> None:
        """Apply update ``step`` (from 1): the rows used, then the dense layers."""
        with torch.no_grad():
            if self.keras is not None:
                self.keras.step(user_index, user_grad, item_index, item_grad, lr, step)
            else:
                self.tables[0].step(user_index, user_grad, lr, step)
                self.tables[1].step(item_index, item_grad, lr, step)
            self.dense_optimizer.step(lr, step)
            self.dense.grad.zero_()

    def release(self) -> None:
        """Give every parameter its own contiguous storage back; drop the optimiser state."""
        self.dense.release()
        for module in self.modules:  # one copy each, whether the view is strided or not
            weight = module.weight.detach().clone(memory_format=torch.contiguous_format)
            module.weight = nn.Parameter(weight)
        self.tables, self.keras = [], None
