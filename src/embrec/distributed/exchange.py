"""Data-parallel training on torch.distributed: row shards, one global batch, touched-row exchange.

Started under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
``MASTER_ADDR`` in the environment), :func:`fit <embrec.training.fit.fit>`
joins the process group by itself: ``gloo`` on CPU, ``nccl`` on CUDA (one
process per GPU, ``cuda:LOCAL_RANK``). Each rank owns a contiguous range of the
training rows (:class:`Shard`) and keeps only those on its device.

What "the same training" means: ``TrainConfig.batch_size`` is the *global*
batch. Every rank draws the same permutation of the global row numbers from the
shared seed, exactly as one process would; global batch ``b`` is that
permutation's ``b``-th slice, and each rank takes the rows of it that it owns
(possibly none: it then contributes nothing but still takes the step, so every
rank takes the same number of steps and no rating is used twice or dropped).
Dropout masks are drawn for the whole global batch and each rank keeps its
rows' masks. The loss is the mean over the global batch, so a rank scales its
gradients (and the per-use L2 penalty, divided by the batch inside the step) by
``local rows / global rows`` and the exchange sums them:

- dense layers: one all-reduce (sum) of the flat gradient buffer, which also
  carries each rank's touched-row counts;
- embedding tables: each rank coalesces its touched rows, and one all-gather
  hands every rank every rank's ``(index, rows)`` (padded to the largest), so a
  step's traffic grows with the rows the batches touch, not with the
  catalogue. The row-sparse optimisers then coalesce the concatenation.

Two collectives a step (see :func:`exchange`). Tables too big for one host
(model parallelism) would plug in at the same place: a step still yields
``(index, rows)`` per table, and the exchange would route each row to the rank
owning it (all-to-all) instead of gathering every row everywhere.

Every rank applies the same update to the same replica, so the weights stay
equal without broadcasting them, and equal (to float rounding) to one process
training on all rows with the same seed and batch size. DDP is not used: its
sparse-gradient path averaged tables of different widths wrongly (see issue 8).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from embrec.data.ratings import Ratings
from embrec.distributed.shards import ShardedRatings
from embrec.errors import ConfigError, DataError
from embrec.models.base import DropoutMasks, EmbeddingModel
from embrec.training.batches import Columns, columns, shuffled
from embrec.training.sparse import coalesce
from embrec.training.step import Step, StepOutput

__all__ = ["TIMEOUT", "DataParallel", "EpochOrder", "Group", "Shard", "ShardedMasks",
           "check_same_data", "epoch_order", "exchange", "join", "launched", "main_process",
           "shard_bounds", "shard_columns"]

TIMEOUT = datetime.timedelta(minutes=5)
"""How long a collective waits for the other ranks before failing (a rank that hung)."""


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def main_process() -> bool:
    """Whether this process reports and saves: rank 0 of a torchrun job, or a lone process."""
    return int(os.environ.get("RANK", "0")) == 0 if launched() else True


@dataclass(frozen=True, slots=True)
class Group:
    """This process's place in the process group.

    ``device`` is this rank's training device; ``owned`` says whether
    :func:`join` created the group (and :meth:`leave` ends it).
    """

    rank: int
    world_size: int
    device: torch.device
    owned: bool

    def leave(self) -> None:
        """End the process group if :func:`join` started it."""
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        """Wait for every rank."""
        dist.barrier()

    def broadcast_int(self, value: int) -> int:
        """Return rank 0's ``value`` on every rank."""
        box = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.broadcast(box, 0)
        return int(box.item())

    def gather_ints(self, values: list[int]) -> list[list[int]]:
        """Return every rank's ``values`` (same length on every rank), indexed by rank."""
        mine = torch.tensor(values, dtype=torch.int64, device=self.device)
        every = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(every, mine)
        return [t.tolist() for t in every]

    def sums(self, *values: Tensor | float) -> list[float]:
        """Return each of ``values`` summed over every rank (in float64)."""
        box = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(box)
        return cast(list[float], box.tolist())

    def mean(self, values: Tensor) -> float:
        """Return the mean of every rank's ``values``."""
        total, n = self.sums(values.double().sum(), len(values))
        return total / max(n, 1.0)


def join(device: torch.device) -> Group | None:
    """Join (or start, from torchrun's environment) the process group; ``None`` in one process.

    A CUDA ``device`` without an index becomes ``cuda:LOCAL_RANK``.
    """
    owned = False
    if not dist.is_initialized():
        if not launched():
            return None
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
        owned = True
    elif device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if dist.get_world_size() == 1:
        return None
    return Group(dist.get_rank(), dist.get_world_size(), device, owned)


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Return ``[start, stop)``: the contiguous training rows rank ``rank`` owns of ``n``."""
    return n * rank // world_size, n * (rank + 1) // world_size


@dataclass(frozen=True, slots=True)
class Shard:
    """The training rows one rank owns: global rows ``[start, stop)`` of ``total``.

    A rank that read only its part of the file (:mod:`embrec.distributed.reading`)
    owns scattered rows instead: ``positions`` lists them (sorted), and
    ``start``/``stop`` are 0 and their count.
    """

    start: int
    stop: int
    total: int
    positions: Tensor | None = None

    def __len__(self) -> int:
        return self.stop - self.start


def shard_columns(train: Ratings, fit_rows: np.ndarray | None, device: torch.device,
                  group: Group | None) -> tuple[Columns, Shard | None]:
    """This process's training columns: every fitted row, or its rank's contiguous shard.

    ``fit_rows`` are the rows trained on (``None``: all) of ``train``, which is
    the same on every rank; the shard is ``None`` without a group.

    Raises:
        DataError: if the ranks hold different training data.
    """
    if group is None:
        return columns(train, fit_rows, device), None
    if isinstance(train, ShardedRatings):
        return _read_shard(train, fit_rows, device, group)
    total = len(train) if fit_rows is None else len(fit_rows)
    sums = [int(train.user.sum(dtype=np.int64)), int(train.item.sum(dtype=np.int64)),
            int(train.rating.sum(dtype=np.float64) * 1024)]
    check_same_data(group, [total, train.n_users, train.n_items, *sums],
                    "training rows, users, items or ratings")
    start, stop = shard_bounds(total, group.rank, group.world_size)
    rows = np.arange(start, stop) if fit_rows is None else fit_rows[start:stop]
    return columns(train, rows, device), Shard(start, stop, total)


def _read_shard(train: ShardedRatings, fit_rows: np.ndarray | None, device: torch.device,
                group: Group) -> tuple[Columns, Shard]:
    """The columns and shard of a rank that read only its own rows."""
    if fit_rows is not None:
        raise ConfigError("validation", "rows", "cannot be held out of rows read per rank",
                          hint="train without validation, or let every rank read the whole file")
    check_same_data(group, [train.total, train.n_users, train.n_items],
                    "training rows, users or items")
    kind = np.int32 if train.total < 2**31 else np.int64  # the epoch permutation's dtype
    positions = torch.from_numpy(train.positions.astype(kind)).to(device)
    return columns(train, None, device), Shard(0, len(train), train.total, positions)


@dataclass(frozen=True, slots=True)
class EpochOrder:
    """One epoch of a rank's rows in the order they are used, cut into steps.

    Attributes:
        batch: the rank's rows, shuffled, indices as int64.
        local: rows of ``batch`` used by each step (consecutive slices).
        total: rows of the global batch of each step (over all ranks).
        positions: each row's place in its global batch (``None`` in one process).
    """

    batch: Columns
    local: list[int]
    total: list[int]
    positions: Tensor | None


def epoch_order(data: Columns, generator: torch.Generator, batch_size: int,
                shard: Shard | None = None) -> EpochOrder:
    """Shuffle one epoch: the global permutation one process would draw, restricted to a shard.

    ``generator`` is seeded identically on every rank; ``batch_size`` is the
    global batch; ``shard`` is ``None`` in one process.
    """
    if shard is None:
        batch = shuffled(data, generator)
        full, rest = divmod(len(batch), batch_size)
        sizes = [batch_size] * full + ([rest] if rest else [])
        return EpochOrder(batch, sizes, sizes, None)
    order = torch.randperm(shard.total, generator=generator, device=data.rating.device,
                           dtype=torch.int32 if shard.total < 2**31 else torch.int64)
    rows, where = _mine(order, shard)
    del order
    steps = -(-shard.total // batch_size)
    local = torch.bincount(where // batch_size, minlength=steps).tolist()
    total = [min(batch_size, shard.total - k * batch_size) for k in range(steps)]
    batch = Columns(data.user.index_select(0, rows).long(), data.item.index_select(0, rows).long(),
                    data.rating.index_select(0, rows))
    return EpochOrder(batch, local, total, where.remainder_(batch_size))


def _mine(order: Tensor, shard: Shard, chunk: int = 1 << 22) -> tuple[Tensor, Tensor]:
    """The shard's rows in ``order`` (local numbers) and their places in it, a chunk at a time.

    Working in chunks keeps the temporaries small: a rank's memory for the
    epoch grows with its own rows, besides the one global permutation (and,
    for scattered rows, a lookup from place to local row of the same size,
    cheaper than a binary search over the places).
    """
    rows, where = [], []
    lookup = None
    if shard.positions is not None:
        lookup = order.new_full((shard.total,), -1)
        lookup[shard.positions.long()] = torch.arange(len(shard), dtype=order.dtype,
                                                      device=order.device)
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        if lookup is None:
            hit = ((part >= shard.start) & (part < shard.stop)).nonzero().squeeze(1)
            rows.append(part.index_select(0, hit).sub_(shard.start))
        else:  # scattered rows: a row is ours where the lookup has a local number
            local = lookup.index_select(0, part)
            hit = (local >= 0).nonzero().squeeze(1)
            rows.append(local.index_select(0, hit))
        where.append(hit.to(order.dtype).add_(start))
    return torch.cat(rows), torch.cat(where)


class ShardedMasks(DropoutMasks):
    """Dropout masks drawn for the whole global batch, as one process would; a rank keeps its own.

    ``columns`` is the width of the layer input the masks apply to.
    """

    def __init__(self, rate: float, columns: int) -> None:
        super().__init__(rate)
        self.columns = columns
        self.mine: Tensor | None = None

    def prepare(self, rows: int, positions: Tensor, like: Tensor) -> None:
        """Draw the masks of a global batch of ``rows`` and keep those at ``positions``."""
        template = like.new_zeros((1, self.columns)).expand(rows, self.columns)
        self.mine = super().take(template).index_select(0, positions)

    def take(self, like: Tensor) -> Tensor:
        """Return the masks :meth:`prepare` kept (``like`` has this rank's rows)."""
        if self.mine is None or self.mine.shape[0] != like.shape[0]:
            raise RuntimeError("ShardedMasks.take without a matching prepare()")
        return self.mine


class DataParallel:
    """One rank's part of data-parallel training: its shard, its masks and the exchange.

    Building it replaces the model's dropout masks: do it before ``make_step``.
    """

    def __init__(self, group: Group, shard: Shard, model: EmbeddingModel) -> None:
        self.group, self.shard = group, shard
        self.masks = cast(list[ShardedMasks], model.replace_masks(
            lambda old, width: ShardedMasks(old.rate, width)))
        self.widths = (model.user_embedding.weight.shape[1], model.item_embedding.weight.shape[1])

    def epoch(self, data: Columns, generator: torch.Generator, batch_size: int) -> EpochOrder:
        """Return this rank's part of the epoch one process would draw from ``generator``."""
        return epoch_order(data, generator, batch_size, self.shard)

    def step(self, step: Step, batch: Columns, order: EpochOrder, k: int, start: int,
             dense_grad: Tensor) -> StepOutput:
        """Take global step ``k`` on this rank's ``batch`` and return the exchanged gradients.

        ``batch`` (possibly empty) starts at ``start`` in ``order.batch``;
        ``dense_grad`` is all-reduced in place. Returns ``batch``'s predictions
        and every rank's row gradients, scaled to the global batch's mean loss.
        """
        n, total = len(batch), order.total[k]
        if self.masks and order.positions is not None:
            positions = order.positions[start:start + n]
            for masks in self.masks:
                masks.prepare(total, positions, batch.rating)
        out = step(batch) if n else _nothing(batch, dense_grad, self.widths)
        (user_index, user_grad), (item_index, item_grad) = exchange(
            self.group, dense_grad, [(out.user_index, out.user_grad),
                                     (out.item_index, out.item_grad)], n / total)
        return StepOutput(out.prediction, user_index, user_grad, item_index, item_grad)

    def errors(self, predictions: Tensor, rating: Tensor, prefix: str) -> dict[str, float]:
        """Return ``{prefix}_rmse`` and ``{prefix}_mae`` over every rank's rows."""
        error = (predictions - rating).double()
        sse, sae, n = self.group.sums(error.square().sum(), error.abs().sum(), len(error))
        return {f"{prefix}_rmse": (sse / max(n, 1.0)) ** 0.5, f"{prefix}_mae": sae / max(n, 1.0)}


def exchange(group: Group, dense_grad: Tensor, tables: list[tuple[Tensor, Tensor]],
             scale: float = 1.0) -> list[tuple[Tensor, Tensor]]:
    """Sum the dense gradient over the ranks and gather every rank's touched table rows.

    Two collectives a step, whatever the number of tables: one all-reduce of
    the dense gradient with each rank's touched-row counts appended (each rank
    writes its own slots), then one all-gather of the coalesced rows, each
    rank's payload padded to the largest; a row's int64 index rides in two
    extra float32 columns, bit for bit. Traffic grows with the rows the batches
    touch, not with the tables' size.

    ``dense_grad`` is replaced by the sum over ranks of ``scale`` (this rank's
    share of the global batch) times each rank's; ``tables`` holds per table
    this rank's ``(index, rows)`` (repeats allowed). Returns per table every
    rank's coalesced ``(index, rows * scale)``, in rank order (identical on
    every rank).
    """
    mine = [coalesce(index, rows) for index, rows in tables]
    size, slots = dense_grad.numel(), len(tables)
    box = dense_grad.new_zeros(size + group.world_size * slots)
    torch.mul(dense_grad.view(-1), scale, out=box[:size])
    start = size + group.rank * slots
    box[start:start + slots] = torch.tensor([float(len(i)) for i, _ in mine])
    dist.all_reduce(box)
    dense_grad.view(-1).copy_(box[:size])
    counts = box[size:].view(group.world_size, slots).round().long().tolist()
    width = max(rows.shape[1] for _, rows in mine)
    payload = dense_grad.new_zeros((max(sum(c) for c in counts), width + 2))
    offset = 0
    for index, rows in mine:
        part = payload[offset:offset + len(index)]
        torch.mul(rows, scale, out=part[:, :rows.shape[1]])
        part[:, width:] = index.contiguous().view(torch.float32).view(-1, 2)
        offset += len(index)
    every = [torch.empty_like(payload) for _ in counts]
    dist.all_gather(every, payload)
    return [_unpack(every, counts, t, rows.shape[1], width) for t, (_, rows) in enumerate(mine)]


def _unpack(every: list[Tensor], counts: list[list[int]], table: int, columns: int,
            width: int) -> tuple[Tensor, Tensor]:
    """Table ``table``'s rows out of every rank's payload."""
    parts = [received[sum(c[:table]):sum(c[:table + 1])] for received, c in zip(every, counts,
                                                                                strict=True)]
    rows = torch.cat([p[:, :columns] for p in parts])
    index = torch.cat([p[:, width:] for p in parts]).contiguous().view(torch.int64).view(-1)
    return index, rows


def _nothing(batch: Columns, dense_grad: Tensor, widths: tuple[int, int]) -> StepOutput:
    """The step of a rank that owns no row of a global batch: no prediction, no gradient."""
    empty = batch.user.new_zeros(0)
    return StepOutput(batch.rating.new_zeros(0), empty, dense_grad.new_zeros((0, widths[0])),
                      empty, dense_grad.new_zeros((0, widths[1])))


def check_same_data(group: Group, facts: list[int], what: str) -> None:
    """Raise ``DataError`` unless every rank passed the same ``facts`` about its data.

    ``facts`` are integers (row count, users, items, a hash); ``what`` names them.

    Raises:
        DataError: naming the ranks that disagree with rank 0.
    """
    every = group.gather_ints(facts)
    differ = [r for r, f in enumerate(every) if f != every[0]]
    if differ:
        raise DataError(f"rank {group.rank}: ranks {differ} have different {what} than rank 0 "
                        f"({every[differ[0]]} vs {every[0]})",
                        hint="every rank must read the same ratings with the same split")
