"""Optimisers over one flat parameter buffer, and the learning-rate schedules.

Training a small recommender takes thousands of tiny steps, so per-step overhead
decides the speed. All of a model's parameters are moved into one contiguous
buffer (embedding tables first) and their gradients into another; an optimiser
step is then one fused kernel over the whole model (``torch._fused_adam_``)
instead of a Python loop over tensors, and zeroing the gradients is one fill.
``torch.optim.Adam(fused=True)`` runs the same kernel with ~40 µs of Python
bookkeeping around it per step, more than the 2,500-step notebook training
can afford. Updates are dense, as in Keras: every embedding row's moments decay
at every step, whether or not the row was in the batch.

Weight decay on embedding tables is *not* applied here: the loss penalises the
rows a batch uses (see :func:`embrec.training.fit.fit`), so rarely seen users are
not shrunk towards zero at every step. Here it applies to the dense layers only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from embrec.config import TrainConfig

__all__ = ["FlatParameters", "Optimizer", "learning_rate"]


Group = tuple[Tensor, Tensor, Tensor, Tensor, float]
"""Parameters, gradients, first and second moments, weight decay."""


def _group(whole: tuple[Tensor, Tensor, Tensor, Tensor], part: slice, decay: float) -> Group:
    params, grads, first, second = (t[part] for t in whole)
    return params, grads, first, second, decay


class FlatParameters:
    """A model's parameters as views into one buffer, with gradients in another.

    Embedding tables come first, so ``data[:embedding_size]`` is every
    embedding and ``data[embedding_size:]`` every dense parameter.

    Args:
        model: the model; its parameters are re-pointed at the buffer.
    """

    def __init__(self, model: nn.Module) -> None:
        tables = [m.weight for m in model.modules() if isinstance(m, nn.Embedding)]
        table_ids = {id(t) for t in tables}
        self.parameters = tables + [p for p in model.parameters() if id(p) not in table_ids]
        self.embedding_size = sum(t.numel() for t in tables)
        total = sum(p.numel() for p in self.parameters)
        first = self.parameters[0]
        self.data = torch.empty(total, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.data)
        offset = 0
        for p in self.parameters:
            size = p.numel()
            self.data[offset:offset + size].copy_(p.detach().reshape(-1))
            p.data = self.data[offset:offset + size].view_as(p)
            p.grad = self.grad[offset:offset + size].view_as(p)
            offset += size

    def release(self) -> None:
        """Give every parameter its own storage again and drop the gradients."""
        for p in self.parameters:
            p.data = p.data.clone()
            p.grad = None


class Optimizer:
    """Adam, AdamW, SGD (with momentum) or Adagrad over a :class:`FlatParameters`.

    Args:
        flat: the parameters.
        config: optimiser, epsilon, momentum and weight decay.
    """

    def __init__(self, flat: FlatParameters, config: TrainConfig) -> None:
        self.flat = flat
        self.kind = config.optimizer
        self.epsilon = config.adam_epsilon if self.kind.startswith("adam") else 1e-10
        self.momentum = config.momentum
        self.decay = config.weight_decay
        self.first = torch.zeros_like(flat.data)
        self.second = torch.zeros_like(flat.data) if self.kind != "sgd" else self.first
        self.steps = torch.zeros((), dtype=torch.float32, device=flat.data.device)
        whole = (flat.data, flat.grad, self.first, self.second)
        split = flat.embedding_size
        if self.decay == 0 or split == flat.data.numel():
            self.groups = [_group(whole, slice(None), 0.0)]
        elif split == 0:
            self.groups = [_group(whole, slice(None), self.decay)]
        else:  # embeddings (penalised in the loss instead), then dense parameters
            self.groups = [_group(whole, slice(0, split), 0.0),
                           _group(whole, slice(split, None), self.decay)]

    def step(self, lr: float) -> None:
        """Apply one update with learning rate ``lr`` (gradients are left in place)."""
        self.steps.add_(1)
        for params, grads, first, second, decay in self.groups:
            if self.kind in ("adam", "adamw"):
                fused = torch._fused_adam_ if self.kind == "adam" else torch._fused_adamw_
                fused([params], [grads], [first], [second], [], [self.steps], lr=lr, beta1=0.9,
                      beta2=0.999, weight_decay=decay, eps=self.epsilon, amsgrad=False,
                      maximize=False)
            elif self.kind == "sgd":
                self._sgd(params, grads, first, lr, decay)
            else:
                self._adagrad(params, grads, second, lr, decay)

    def _sgd(self, params: Tensor, grads: Tensor, velocity: Tensor, lr: float,
             decay: float) -> None:
        if decay:
            grads.add_(params, alpha=decay)
        if self.momentum:
            velocity.mul_(self.momentum).add_(grads)
            grads = velocity
        params.add_(grads, alpha=-lr)

    def _adagrad(self, params: Tensor, grads: Tensor, total: Tensor, lr: float,
                 decay: float) -> None:
        if decay:
            grads.add_(params, alpha=decay)
        total.addcmul_(grads, grads)
        params.addcdiv_(grads, total.sqrt().add_(self.epsilon), value=-lr)


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """Return the learning rate for optimiser step ``step`` of ``total``.

    Args:
        config: the schedule and peak learning rate.
        step: zero-based step number.
        total: number of steps in the whole training.

    Returns:
        The learning rate.
    """
    peak, progress = config.learning_rate, step / max(total, 1)
    if config.schedule == "constant":
        return peak
    if config.schedule == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return peak * (0.1 if progress >= 0.5 else 1.0) * (0.1 if progress >= 0.75 else 1.0)
    warm = 0.25  # onecycle
    if progress < warm:
        start = peak / 25
        return start + (peak - start) * 0.5 * (1.0 - math.cos(math.pi * progress / warm))
    end = peak / 1e4
    return end + (peak - end) * 0.5 * (1.0 + math.cos(math.pi * (progress - warm) / (1 - warm)))
