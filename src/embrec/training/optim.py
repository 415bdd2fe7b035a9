"""A fit's optimisers (:class:`Engine`): the dense layers in one flat buffer, and the schedules.

The engine owns the trained storage: the tables live in their row optimiser's
``[weights | state]`` buffers (:mod:`embrec.training.sparse`); the rest, the dense
layers and global biases (small, updated every step), in one contiguous buffer (as
``nn.Parameter`` views registered in place of the originals) with their gradients in
another, so an Adam step is one call whatever the number of layers and zeroing the
gradients one fill. Every trainer updates those buffers, torch steps through
:meth:`Engine.update`, the compiled kernels in place; checkpoints save them whichever
trainer ran.

Parameter groups: only weight matrices (kernels, two or more dimensions) are
decayed, by ``dense_weight_decay``; layer biases and the global bias never are,
so decay cannot pull the predictions' mean away from the ratings' mean.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from embrec.config import TrainConfig
from embrec.models.base import EmbeddingModel
from embrec.training.sparse import (
    AdamTensors,
    DenseTableAdam,
    RowOptimizer,
    adam_update,
    row_optimizer,
)

__all__ = ["DenseOptimizer", "DenseParameters", "Engine", "Schedule", "learning_rate",
           "learning_rates"]


class DenseParameters:
    """A model's non-embedding parameters as views into one buffer, gradients in another.

    Kernels come first, so ``data[:kernel_size]`` is what weight decay applies to.

    Args:
        model: the model; its dense parameters are replaced by views of the buffer.
        skip: parameters to leave alone (the embedding tables).
    """

    def __init__(self, model: nn.Module, skip: list[Tensor]) -> None:
        skipped = {id(t) for t in skip}
        entries = [(module, name, p) for module in model.modules()
                   for name, p in module.named_parameters(recurse=False) if id(p) not in skipped]
        entries.sort(key=lambda entry: entry[2].dim() < 2)  # kernels first (stable)
        self.kernel_size = sum(p.numel() for _, _, p in entries if p.dim() >= 2)
        total = sum(p.numel() for _, _, p in entries)
        like = skip[0] if skip else next(model.parameters())
        self.data = torch.zeros(total, dtype=like.dtype, device=like.device)
        self.grad = torch.zeros_like(self.data)
        self.entries: list[tuple[nn.Module, str, nn.Parameter]] = []
        offset = 0
        for module, name, p in entries:
            size = p.numel()
            view = self.data[offset:offset + size].view_as(p)
            view.copy_(p.detach())
            replacement = nn.Parameter(view)
            replacement.grad = self.grad[offset:offset + size].view_as(p)
            setattr(module, name, replacement)
            self.entries.append((module, name, replacement))
            offset += size

    def release(self) -> None:
        """Give every parameter its own storage again and drop the gradients."""
        for module, name, p in self.entries:
            setattr(module, name, nn.Parameter(p.detach().clone()))
        self.entries = []


class DenseOptimizer:
    """Adam, AdamW, SGD (with momentum) or Adagrad over a :class:`DenseParameters`.

    Args:
        flat: the parameters.
        config: optimiser, epsilon, momentum and ``dense_weight_decay``
            (coupled L2 for adam, sgd and adagrad; decoupled for adamw).
    """

    def __init__(self, flat: DenseParameters, config: TrainConfig) -> None:
        self.flat, self.kind = flat, config.optimizer
        self.epsilon = config.adam_epsilon if self.kind.startswith("adam") else 1e-10
        self.momentum, self.decay = config.momentum, config.dense_weight_decay
        self.first = torch.zeros_like(flat.data)
        self.second = torch.zeros_like(flat.data)

    def adam_tensors(self, lr: float) -> AdamTensors | None:
        """Apply this step's weight decay and return the Adam tensors; ``None`` if not Adam.

        The caller then takes the Adam update itself (with other groups in one call).
        """
        if self.kind not in ("adam", "adamw"):
            return None
        data, grad, kernels = self.flat.data, self.flat.grad, self.flat.kernel_size
        if self.decay and kernels:
            if self.kind == "adamw":
                data[:kernels].mul_(1 - lr * self.decay)
            else:
                grad[:kernels].add_(data[:kernels], alpha=self.decay)
        return data, grad, self.first, self.second

    def step(self, lr: float, step: int) -> None:
        """Apply update number ``step`` (from 1) with learning rate ``lr``; gradients stay."""
        adam = self.adam_tensors(lr)
        if adam is not None:
            adam_update(*adam, lr, step, self.epsilon, fused=True)
            return
        data, grad, kernels = self.flat.data, self.flat.grad, self.flat.kernel_size
        if self.decay and kernels:
            grad[:kernels].add_(data[:kernels], alpha=self.decay)
        if self.kind == "sgd":
            if self.momentum:
                grad = self.first.mul_(self.momentum).add_(grad)
            data.add_(grad, alpha=-lr)
        else:  # adagrad; rowwise-adagrad is element-wise on dense layers
            self.second.addcmul_(grad, grad)
            data.addcdiv_(grad, self.second.sqrt().add_(self.epsilon), value=-lr)

    def state_dict(self) -> dict[str, Tensor]:
        """Return the moments (for checkpoints)."""
        return {"first": self.first, "second": self.second}


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


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """Return the learning rate of zero-based optimiser step ``step`` of ``total``."""
    return float(learning_rates(config, np.array([float(step)]), total)[0])


class Schedule:
    """The learning rate of each optimiser step, computed on the host (no device sync)."""

    def __init__(self, config: TrainConfig, n: int) -> None:
        self.config = config
        self.total = config.epochs * math.ceil(n / config.batch_size)
        self.done = 0
        self.last = config.learning_rate

    def next(self) -> float:
        """Return the learning rate of the next step; ``done`` then counts it (from 1)."""
        self.last = learning_rate(self.config, self.done, self.total)
        self.done += 1
        return self.last

    def rates(self, start: int, stop: int) -> np.ndarray:
        """The learning rates of zero-based steps ``start:stop``, as :meth:`next` gives them."""
        return learning_rates(self.config, np.arange(start, stop, dtype=np.float64), self.total)

    def advance(self, count: int) -> None:
        """Count ``count`` steps taken with :meth:`rates`."""
        self.done += count
        self.last = float(self.rates(self.done - 1, self.done)[0])


def learning_rates(config: TrainConfig, steps: np.ndarray, total: int) -> np.ndarray:
    """The learning rates of zero-based, ascending optimiser steps ``steps`` of ``total``.

    Schedules: ``constant``; ``cosine`` to 0; ``step`` (x0.1 at half and three quarters);
    ``onecycle`` (cosine warm-up from peak/25 over the first quarter, cosine fall to peak/1e4).
    """
    peak, progress = config.learning_rate, steps / max(total, 1)
    if config.schedule == "constant":
        return np.full(len(steps), peak)
    if config.schedule == "cosine":
        return peak * 0.5 * (1.0 + np.cos(np.pi * progress))
    if config.schedule == "step":
        return peak * np.where(progress >= 0.5, 0.1, 1.0) * np.where(progress >= 0.75, 0.1, 1.0)
    warm, start, end = 0.25, peak / 25, peak / 1e4
    cut = int(np.searchsorted(progress, warm))  # steps ascend: warm-up first, then the fall
    rising, falling = progress[:cut], progress[cut:]
    return np.concatenate([
        start + (peak - start) * 0.5 * (1.0 - np.cos(np.pi * rising / warm)),
        end + (peak - end) * 0.5 * (1.0 + np.cos(np.pi * (falling - warm) / (1 - warm)))])
