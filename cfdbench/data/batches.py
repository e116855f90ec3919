"""Whole batches whose indices the main process chooses and worker processes only read.

Exact runs (``--resume``, DDP) need the same batches in the same order whatever ``--num-workers``
is. So the order is never drawn in a worker: a *schedule* (a torch ``Sampler``) yields, in the
main process, each step's sample indices and the size of the global batch they belong to;
``DataLoader`` workers only gather ``samples[indices]`` (a deterministic read), and the
``DataLoader`` returns their results in the schedule's order. 0 and N workers therefore give
bitwise the same batches (tested), and a DDP rank's batches are its share of the same global
batches (:func:`rank_batches`).

With workers: persistent (started once, reused every epoch; :meth:`BatchLoader.set_epoch` picks
the next epoch's order), ``prefetch_factor`` batches queued per worker, and pinned memory when
the batches go to a GPU (then copied with ``non_blocking=True``: :func:`to_device`). A worker
hands its batch over through a ring of shared-memory batches allocated once (:class:`_SharedSlots`)
rather than a fresh shared-memory segment per batch, as ``DataLoader`` does by default: touching
fresh shared pages cost more than reading the batch from page-cached files (measured: 7 ms for
a 10 MiB batch, against 8 ms to read it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError

PREFETCH_FACTOR = 2  # batches each worker keeps ready
Step = tuple[Tensor, int]  # (this process's sample indices, size of the global batch)
NumberedStep = tuple[int, Tensor, int]  # (step of the pass, indices, global batch size)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a run: rank, world size and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def check_batch_size(batch_size: int, world_size: int) -> int:
    """The per-rank batch size; a global batch the ranks cannot share evenly is refused."""
    if batch_size % world_size:
        raise CfdbenchError(f"batch size {batch_size} is not divisible by the {world_size} ranks; use a multiple of {world_size}")
    return batch_size // world_size


def epoch_order(n_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: a function of (seed, epoch) only, so a resumed run and every
    rank draw the same permutation."""
    return torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def rank_batches(n_samples: int, batch_size: int, ranks: Ranks, seed: int, epoch: int) -> Iterator[tuple[torch.Tensor, int]]:
    """(this rank's sample indices, size of the global batch) per step. A final global batch
    smaller than the world size is dropped, since a rank cannot step on no samples."""
    order = epoch_order(n_samples, seed, epoch)
    for first in range(0, n_samples, batch_size):
        batch = order[first : first + batch_size]
        if len(batch) < ranks.world_size:
            return
        yield batch[ranks.rank :: ranks.world_size], len(batch)


class RankBatches(torch.utils.data.Sampler):
    """One rank's share of each shuffled global batch of an epoch: the order of ``rank_batches``,
    a function of (seed, epoch) only. Call :meth:`set_epoch` before each epoch."""

    def __init__(self, n_samples: int, batch_size: int, ranks: Ranks, seed: int, epoch: int = 1):
        self.n_samples, self.batch_size, self.ranks, self.seed, self.epoch = n_samples, batch_size, ranks, seed, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Step]:
        return rank_batches(self.n_samples, self.batch_size, self.ranks, self.seed, self.epoch)

    def __len__(self) -> int:
        return sum(1 for _ in rank_batches(self.n_samples, self.batch_size, self.ranks, self.seed, self.epoch))


class FixedBatches(torch.utils.data.Sampler):
    """Consecutive chunks of ``batch_size`` of a fixed index sequence (validation, evaluation)."""

    def __init__(self, indices: Tensor, batch_size: int):
        self.indices, self.batch_size = indices, batch_size

    def set_epoch(self, epoch: int) -> None:
        """The same batches every epoch."""

    def __iter__(self) -> Iterator[Step]:
        for first in range(0, len(self.indices), self.batch_size):
            chunk = self.indices[first : first + self.batch_size]
            yield chunk, len(chunk)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)


class _Numbered(torch.utils.data.Sampler):
    """A schedule's steps numbered from 0 in each pass: the number picks a worker's shared slot."""

    def __init__(self, schedule: torch.utils.data.Sampler):
        self.schedule = schedule

    def __iter__(self) -> Iterator[NumberedStep]:
        return ((step, indices, size) for step, (indices, size) in enumerate(self.schedule))

    def __len__(self) -> int:
        return len(self.schedule)


class _SharedSlots:
    """``count`` batches in shared memory, allocated once before the workers start.

    The worker of step s copies its batch into slot ``s % count`` and returns only the slot; the
    main process copies the batch out before passing it on. ``DataLoader`` (in order) sends step
    s + workers x prefetch to a worker only when it returns step s, so with more slots than that
    a slot is never rewritten before it has been read."""

    def __init__(self, probe: dict[str, Tensor], count: int):
        self.rows = len(probe["case"])
        self.buffers = [{key: torch.empty_like(value).share_memory_() for key, value in probe.items()} for _ in range(count)]

    def put(self, slot: int, batch: dict[str, Tensor]) -> bool:
        """Copy ``batch`` into a slot (in a worker); False when it does not fit (then it travels as is)."""
        buffers = self.buffers[slot]
        fits = batch.keys() == buffers.keys() and all(
            value.dtype == buffers[key].dtype and value.shape[1:] == buffers[key].shape[1:] and len(value) <= self.rows
            for key, value in batch.items()
        )
        if fits:
            for key, value in batch.items():
                buffers[key][: len(value)].copy_(value)
        return fits

    def take(self, slot: int, rows: int, pin: bool) -> dict[str, Tensor]:
        """The batch of a slot as private tensors (pinned for a GPU when ``pin``)."""
        return {key: _copy(value[:rows], pin) for key, value in self.buffers[slot].items()}


def _copy(value: Tensor, pin: bool) -> Tensor:
    out = torch.empty(value.shape, dtype=value.dtype, pin_memory=pin)
    return out.copy_(value)


@dataclass(frozen=True)
class _InSlot:
    """A worker's answer when its batch is in a shared slot."""

    slot: int
    rows: int
    global_batch: int


@dataclass(frozen=True)
class _Failure:
    """A user-facing error raised in a worker, carried back whole: DataLoader would otherwise
    re-raise it with the worker's traceback pasted into its message."""

    kind: type
    message: str


class _Gather(torch.utils.data.Dataset):
    """``samples[indices]`` for one scheduled step, handed over in a shared slot when there are slots: all a worker does."""

    def __init__(self, samples: torch.utils.data.Dataset, slots: _SharedSlots | None = None):
        self.samples, self.slots = samples, slots

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, step: NumberedStep) -> tuple[dict[str, Tensor], int] | _InSlot | _Failure:
        number, indices, global_batch = step
        try:
            batch = self.samples[indices]
        except CfdbenchError as err:
            return _Failure(type(err), str(err))
        if self.slots is not None:
            slot = number % len(self.slots.buffers)
            if self.slots.put(slot, batch):
                return _InSlot(slot, len(indices), global_batch)
        return batch, global_batch


class BatchLoader:
    """Iterates ``(batch, global batch size)`` in the schedule's order, read by ``num_workers``
    worker processes (0: in this process)."""

    def __init__(
        self,
        samples: torch.utils.data.Dataset,
        schedule: torch.utils.data.Sampler,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        if num_workers < 0:
            raise CfdbenchError(f"--num-workers must be >= 0, got {num_workers}")
        self.schedule, self.pin_memory = schedule, pin_memory
        self.slots = _shared_slots(samples, schedule, num_workers * PREFETCH_FACTOR + 2) if num_workers else None
        self.loader = torch.utils.data.DataLoader(
            _Gather(samples, self.slots),
            sampler=_Numbered(schedule),
            batch_size=None,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            prefetch_factor=PREFETCH_FACTOR if num_workers > 0 else None,
            pin_memory=pin_memory,
        )

    def set_epoch(self, epoch: int) -> None:
        self.schedule.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.schedule)

    def __iter__(self) -> Iterator[tuple[dict[str, Tensor], int]]:
        for item in self.loader:
            if isinstance(item, _Failure):
                raise _rebuilt(item)
            if isinstance(item, _InSlot):
                yield self.slots.take(item.slot, item.rows, self.pin_memory), item.global_batch
            else:
                yield item


def _shared_slots(samples: torch.utils.data.Dataset, schedule: torch.utils.data.Sampler, count: int) -> _SharedSlots | None:
    """Slots shaped like the schedule's first (largest) batch, or None for an empty schedule."""
    first = next(iter(schedule), None)
    return None if first is None else _SharedSlots(samples[first[0]], count)


def _rebuilt(failure: _Failure) -> CfdbenchError:
    """The worker's error as its own kind when that kind takes a message alone, else as a CfdbenchError."""
    try:
        return failure.kind(failure.message)
    except TypeError:
        return CfdbenchError(failure.message)


class Batches:
    """The batches alone (no global sizes) of a :class:`BatchLoader`: ``AutoregressiveDataset.loader``."""

    def __init__(self, loader: BatchLoader):
        self.batch_loader = loader

    def __len__(self) -> int:
        return len(self.batch_loader)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return (batch for batch, _ in self.batch_loader)


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """The batch on ``device``; from pinned memory to a GPU the copies are asynchronous."""
    if device.type == "cpu":
        return batch
    return {key: value.to(device, non_blocking=value.is_pinned()) for key, value in batch.items()}
