"""fit(): the one training loop. Seed, shuffle, step, validate, stop early, return a Recommender.

Read :func:`_epochs` top to bottom: each epoch shuffles the device-resident
ratings once, walks them in slices, and for each slice computes gradients and
takes one optimiser step. Nothing in the step waits for the device: the
predictions of the epoch are gathered into one buffer and turned into train
RMSE/MAE once the epoch is over, which is also when NaN is checked.

Gradients come from the model's hand-written ``gradient_step`` when it has one
(biased MF, GMF and MLP do: for networks this small it is 2-3x faster than
autograd) and from autograd otherwise. The loss is the mean squared error plus
``weight_decay * mean(|user vector|² + |item vector|²)`` over the batch, which
penalises only the embedding rows the batch uses, once per rating (Surprise's
``reg``); dense layers get plain weight decay from the optimiser.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import TrainingWarning
from embrec.models.base import ModelConfig, RatingModel
from embrec.models.mlp import Tower
from embrec.recommender import Recommender
from embrec.training.batches import Columns, columns, known_rows, shuffled, validation_rows
from embrec.training.diagnostics import diagnose, error_metrics
from embrec.training.optim import FlatParameters, Optimizer, learning_rate

__all__ = ["fit", "resolve_device"]

log = logging.getLogger(__name__)

Step = Callable[[Tensor, Tensor, Tensor], Tensor]
SMALL_BATCH = 32_768
"""Below this batch size ``num_threads=None`` trains on one thread (see TrainConfig)."""
WIDE_UPDATE = 65_536
"""From this many parameters up, the optimiser step and the gradient reset use every thread
torch has, even when the model's step runs on one: both are element-wise, so the result is
the same, and on 2 cores Adam over ML-100K's 138,000 MLP parameters takes 40 us instead of 77."""


def fit(model_config: ModelConfig, train: Ratings, train_config: TrainConfig | None = None, *,
        validation: Ratings | None = None, metadata: dict[str, Any] | None = None) -> Recommender:
    """Train the model ``model_config`` describes on ``train``.

    Args:
        model_config: the model to build (``embrec.models.MODELS`` lists them).
        train: the training ratings.
        train_config: how to train; ``TrainConfig()`` when omitted.
        validation: held-out ratings to watch (raw ids are mapped through
            ``train``'s indexes; pairs with unseen ids are left out and counted).
            Overrides ``train_config.validation``.
        metadata: extra facts to record in the recommender's ``metadata``.

    Returns:
        The trained recommender, with per-epoch ``history`` and ``metadata``
        holding the seed, device, fit seconds and ``diagnostics``.

    Raises:
        ConfigError: if ``train`` is empty.
    """
    if getattr(model_config, "closed_form", False):
        from embrec.training.closed_form import fit_closed_form
        return fit_closed_form(model_config, train, train_config, metadata=metadata)
    config = train_config or TrainConfig()
    seed = config.seed if config.seed is not None else int(np.random.default_rng().integers(2**62))
    device = resolve_device(config.device)
    facts: dict[str, Any] = {"seed": seed, "device": str(device), **(metadata or {})}
    if device.type == "cpu":
        facts["threads"] = threads_for(config)
    started = time.perf_counter()
    with _threads(config) as wide:
        torch.manual_seed(seed)
        fit_rows, held, facts["validation_unknown"] = _validation(train, validation, config, seed)
        data = columns(train, fit_rows, device)
        mean = float(data.rating.mean()) if len(data) else float(np.mean(train.scale))
        model = model_config.build(train.n_users, train.n_items, scale=train.scale,
                                   mean=mean).to(device)
        generator = torch.Generator(device=device).manual_seed(seed)
        update_threads = _update_threads(model, wide)
        if device.type == "cpu":
            facts["update_threads"] = update_threads
        history = _epochs(model, data, held, config, generator, train.scale, update_threads)
        facts["fit_seconds"] = time.perf_counter() - started
        facts["diagnostics"] = diagnose(model, data, held, history, train.scale)
    return Recommender.from_training(model, model_config, config, train, history=history,
                                     metadata=facts)


def resolve_device(name: str) -> torch.device:
    """Return the device for ``name``; ``auto`` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def threads_for(config: TrainConfig) -> int:
    """Return the CPU threads ``fit`` uses for ``config`` (see ``TrainConfig.num_threads``)."""
    return config.num_threads or (1 if config.batch_size < SMALL_BATCH else torch.get_num_threads())


@contextlib.contextmanager
def _threads(config: TrainConfig) -> Iterator[int]:
    """Set torch's CPU threads and flush denormals to zero for the duration of ``fit``.

    Yields the thread count for element-wise parameter updates: torch's own
    setting unless ``num_threads`` fixes it (see :data:`WIDE_UPDATE`).

    Adam's moments of rarely used embedding rows decay geometrically into
    denormal floats, which x86 CPUs process ~100x slower: without flushing, the
    MovieLens notebook's Adam steps take 2.5x longer by the second epoch. Keras
    flushes them too (TensorFlow sets flush-to-zero in its CPU threads).
    """
    before = torch.get_num_threads()
    wanted = threads_for(config)
    torch.set_num_threads(wanted)
    flushing = torch.set_flush_denormal(True)
    try:
        yield config.num_threads or max(before, wanted)
    finally:
        torch.set_num_threads(before)
        if flushing:
            torch.set_flush_denormal(False)


def _update_threads(model: RatingModel, wide: int) -> int:
    """Threads for the optimiser step: ``wide`` for big CPU models, else the step's own."""
    parameters = sum(p.numel() for p in model.parameters())
    cpu = all(p.device.type == "cpu" for p in model.parameters())
    return wide if cpu and parameters >= WIDE_UPDATE else torch.get_num_threads()


def _validation(train: Ratings, validation: Ratings | None, config: TrainConfig,
                seed: int) -> tuple[np.ndarray | None, Columns | None, int]:
    """Return the fitted rows of ``train``, the validation columns and the unknown count."""
    device = resolve_device(config.device)
    if validation is not None:
        known, dropped = known_rows(validation, train)
        if len(known) == 0:
            log.warning("no validation rating has a user and an item seen in training; "
                        "training without validation")
            return None, None, dropped
        return None, columns(known, None, device), dropped
    fit_rows, held = validation_rows(len(train), config.validation, config.validation_mode,
                                     np.random.default_rng(seed))
    return fit_rows, None if held is None else columns(train, held, device), 0


def _epochs(model: RatingModel, data: Columns, held: Columns | None, config: TrainConfig,
            generator: torch.Generator, scale: tuple[float, float],
            update_threads: int) -> list[dict[str, float]]:
    """The training loop: returns one history record per epoch."""
    flat = FlatParameters(model)
    optimizer = Optimizer(flat, config)
    step_threads = torch.get_num_threads()
    for module in model.modules():
        if isinstance(module, Tower):
            module.reset_masks()  # masks drawn on another device or dtype
    step, hand = _step_function(model, config.weight_decay)
    schedule = _Schedule(config, len(data))
    predictions = torch.empty_like(data.rating)
    good, best = flat.data.clone(), _Best(flat.data)
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        batch = shuffled(data, generator)
        bar = _progress(config, epoch, len(data))
        with torch.inference_mode() if hand else contextlib.nullcontext():
            slices = (c.split(config.batch_size) for c in (*batch, predictions))
            for k, (user, item, rating, out) in enumerate(zip(*slices, strict=True)):
                out.copy_(step(user, item, rating))
                torch.set_num_threads(update_threads)
                optimizer.step(schedule.next())
                flat.grad.zero_()
                torch.set_num_threads(step_threads)
                if bar is not None and k % 50 == 49:
                    _report(bar, predictions, batch.rating, k + 1, config.batch_size)
        record = {"epoch": float(epoch), "lr": schedule.last,
                  **error_metrics(predictions, batch.rating, "train")}
        if not (math.isfinite(record["train_rmse"]) and bool(flat.data.isfinite().all())):
            flat.data.copy_(good)
            _close(bar)
            _warn_diverged(epoch, record["train_rmse"], config)
            break
        good.copy_(flat.data)
        if held is not None:
            record.update(_validate(model, held, scale))
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        _close(bar, record)
        del batch  # free this epoch's shuffled copy before the next is made
        if best.update(record, flat.data, epoch, config.early_stopping):
            break
    if config.early_stopping is not None and best.epoch > 0:
        flat.data.copy_(best.params)
    flat.release()
    model.eval()
    return history


class _Schedule:
    """The learning rate of each optimiser step, computed on the host (no device sync)."""

    def __init__(self, config: TrainConfig, n: int) -> None:
        self.config = config
        self.total = config.epochs * math.ceil(n / config.batch_size)
        self.done = 0
        self.last = config.learning_rate

    def next(self) -> float:
        self.last = learning_rate(self.config, self.done, self.total)
        self.done += 1
        return self.last


class _Best:
    """The best validation RMSE so far, its epoch and a copy of its weights."""

    def __init__(self, params: Tensor) -> None:
        self.rmse, self.params, self.epoch = math.inf, params.clone(), 0

    def update(self, record: dict[str, float], params: Tensor, epoch: int,
               patience: int | None) -> bool:
        """Record ``epoch``; return whether early stopping says to stop."""
        rmse = record.get("validation_rmse", math.inf)
        if rmse < self.rmse:
            self.rmse, self.epoch = rmse, epoch
            self.params.copy_(params)
        if patience is None or not math.isfinite(self.rmse) or epoch - self.epoch < patience:
            return False
        log.info("early stopping after epoch %d; best epoch %d", epoch, self.epoch)
        return True


def _warn_diverged(epoch: int, rmse: float, config: TrainConfig) -> None:
    warnings.warn(
        f"training stopped in epoch {epoch}: the loss became {rmse ** 2} (not finite); "
        f"kept the weights of the last good epoch ({epoch - 1})\n  hint: lower "
        f"learning_rate={config.learning_rate} or use a schedule such as 'onecycle'",
        TrainingWarning, stacklevel=4)


def _step_function(model: RatingModel, l2: float) -> tuple[Step, bool]:
    """Return the gradient step for ``model`` and whether it runs without autograd."""
    build = getattr(model, "gradient_step", None)
    if build is not None:
        hand: Step = build(l2)
        return hand, True

    def autograd_step(user: Tensor, item: Tensor, rating: Tensor) -> Tensor:
        users, items = model.user_vectors(user), model.item_vectors(item)
        prediction = model.score(users, items)
        loss = torch.nn.functional.mse_loss(prediction, rating)
        if l2 > 0:
            loss = loss + l2 * (users.square().sum() + items.square().sum()) / len(rating)
        loss.backward()  # type: ignore[no-untyped-call]
        return prediction.detach()

    return autograd_step, False


def _validate(model: RatingModel, held: Columns, scale: tuple[float, float],
              chunk: int = 1 << 16) -> dict[str, float]:
    """Validation RMSE and MAE of predictions clipped to the scale, as ``predict`` gives."""
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(held.user[s:s + chunk].long(), held.item[s:s + chunk].long())
                         for s in range(0, len(held), chunk)])
    return error_metrics(out.clamp_(scale[0], scale[1]), held.rating, "validation")


def _report(bar: Any, predictions: Tensor, rating: Tensor, done: int, size: int) -> None:
    """Move the progress bar past ``done`` batches; show the loss over the last 50."""
    stop = min(done * size, len(rating))
    window = slice(max(0, stop - 50 * size), stop)
    bar.update(stop - bar.n)
    bar.set_postfix(loss=f"{float((predictions[window] - rating[window]).square().mean()):.4f}")


def _progress(config: TrainConfig, epoch: int, n: int) -> Any:
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n, desc=f"epoch {epoch}/{config.epochs}", unit="rating", leave=True)


def _close(bar: Any, record: dict[str, float] | None = None) -> None:
    if bar is None:
        return
    if record is not None:
        bar.update(bar.total - bar.n)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k.endswith("rmse")})
    bar.close()
