"""Whole batches whose indices the main process chooses and worker processes only read.

Exact runs (``--resume``, DDP) need the same batches in the same order whatever ``--num-workers``
is. So the order is never drawn in a worker: a *schedule* (a torch ``Sampler``) yields, in the
main process, each step's sample indices and the size of the global batch they belong to;
``DataLoader`` workers only gather ``samples[indices]`` (a deterministic read), and the
``DataLoader`` returns their results in the schedule's order. 0 and N workers therefore give
bitwise the same batches (tested), and a DDP rank's batches are its share of the same global
batches (:func:`rank_batches`).

With workers: one stream of steps across epochs (the workers start once and read the next
epoch's first batches while this one ends; :meth:`BatchLoader.set_epoch` picks the epoch),
``prefetch_factor`` batches queued per worker, and pinned memory when
the batches go to a GPU (then copied with ``non_blocking=True``: :func:`to_device`). A worker
reads its batch straight into one of a ring of shared-memory batches allocated once
(:class:`_SharedSlots`) rather than into a fresh shared-memory segment per batch, as
``DataLoader`` does by default: touching fresh pages cost more than reading the batch from
page-cached files (measured: 7 ms for a 10 MiB batch, against 8 ms to read it). The main process
then lends the slot's tensors to a consumer that uses each batch within its step (``lend``), or
copies them out.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError

PREFETCH_FACTOR = 2  # batches each worker keeps ready
LENT_STEPS = 2  # batches drawn after a lent one while it stays valid (see _SharedSlots)
Step = tuple[Tensor, int]  # (this process's sample indices, size of the global batch)
NumberedStep = tuple[int, np.ndarray, int]  # (step of the stream, indices, global batch size)


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

    varies_by_epoch = True

    def __init__(self, n_samples: int, batch_size: int, ranks: Ranks, seed: int, epoch: int = 1):
        self.n_samples, self.batch_size, self.ranks, self.seed, self.epoch = n_samples, batch_size, ranks, seed, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def steps(self, epoch: int) -> Iterator[Step]:
        """The steps of any epoch (the order depends on (seed, epoch) alone)."""
        return rank_batches(self.n_samples, self.batch_size, self.ranks, self.seed, epoch)

    def __iter__(self) -> Iterator[Step]:
        return self.steps(self.epoch)

    def __len__(self) -> int:
        return sum(1 for _ in self.steps(self.epoch))


class FixedBatches(torch.utils.data.Sampler):
    """Consecutive chunks of ``batch_size`` of a fixed index sequence (validation, evaluation)."""

    varies_by_epoch = False

    def __init__(self, indices: Tensor, batch_size: int):
        self.indices, self.batch_size, self.epoch = indices, batch_size, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def steps(self, epoch: int) -> Iterator[Step]:
        """The same batches every epoch."""
        for first in range(0, len(self.indices), self.batch_size):
            chunk = self.indices[first : first + self.batch_size]
            yield chunk, len(chunk)

    def __iter__(self) -> Iterator[Step]:
        return self.steps(self.epoch)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)


class _Stream(torch.utils.data.Sampler):
    """A schedule's steps epoch after epoch from ``first_epoch`` on, without end, numbered
    continuously: workers read the next epoch's first batches while this one's last are consumed,
    and the number picks a worker's shared slot."""

    def __init__(self, schedule: torch.utils.data.Sampler, first_epoch: int):
        self.schedule, self.first_epoch = schedule, first_epoch

    def __iter__(self) -> Iterator[NumberedStep]:
        number = 0
        for epoch in itertools.count(self.first_epoch):
            first_of_epoch = number
            for indices, size in self.schedule.steps(epoch):
                yield number, indices.numpy(), size  # pickled by value: a tensor would travel through a new shared-memory file
                number += 1
            if number == first_of_epoch:  # an empty epoch: the stream ends rather than spin
                return


class _SharedSlots:
    """``count`` batches in shared memory, allocated once (the dataset's ``empty_batch``) before the
    workers start.

    The worker of step s reads its batch straight into slot ``s % count`` (the dataset's
    ``gather(indices, out)``) and returns only the slot number. ``DataLoader`` (in order) sends
    step s + workers x prefetch to a worker only when it returns step s, so with ``count`` =
    workers x prefetch + ``LENT_STEPS`` + 1, step s's slot is first rewritten once step
    s + ``LENT_STEPS`` + 1 has been returned: a batch lent without a copy stays valid while the
    loop draws the next ``LENT_STEPS`` batches."""

    def __init__(self, samples: torch.utils.data.Dataset, probe: Tensor, count: int):
        self.rows = len(probe)
        self.buffers = [samples.empty_batch(self.rows) for _ in range(count)]
        for buffers in self.buffers:
            for value in buffers.values():
                value.untyped_storage().share_memory_()  # in place: views of one block stay views of it
        self.keys = tuple(samples.gather(probe, out=self.buffers[0]))

    def fill(self, samples: torch.utils.data.Dataset, slot: int, indices: Tensor) -> None:
        """Read the batch of ``indices`` into ``slot`` (in a worker)."""
        samples.gather(indices, out=self.buffers[slot])

    def take(self, slot: int, rows: int, pin: bool, lend: bool) -> dict[str, Tensor]:
        """The batch of a slot: its shared tensors themselves when ``lend`` (and not ``pin``), else
        private copies (pinned for a GPU when ``pin``)."""
        views = {key: self.buffers[slot][key][:rows] for key in self.keys}
        return views if lend and not pin else _private(views, pin)


def _private(batch: dict[str, Tensor], pin: bool) -> dict[str, Tensor]:
    """A copy of every tensor of ``batch`` (in pinned memory when ``pin``)."""
    return {key: torch.empty(value.shape, dtype=value.dtype, pin_memory=pin).copy_(value) for key, value in batch.items()}


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
    """``samples[indices]`` for one scheduled step, read into a shared slot when there are slots: all a worker does."""

    def __init__(self, samples: torch.utils.data.Dataset, slots: _SharedSlots | None = None):
        self.samples, self.slots = samples, slots

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, step: NumberedStep) -> tuple[dict[str, Tensor], int] | _InSlot | _Failure:
        number, indices, global_batch = step
        indices = torch.as_tensor(indices)
        try:
            if self.slots is None:
                return self.samples[indices], global_batch
            slot = number % len(self.slots.buffers)
            self.slots.fill(self.samples, slot, indices)
            return _InSlot(slot, len(indices), global_batch)
        except CfdbenchError as err:
            return _Failure(type(err), str(err))


class BatchLoader:
    """Iterates ``(batch, global batch size)`` in the schedule's order, read by ``num_workers``
    worker processes (0: in this process).

    With workers, one stream of steps runs across epochs: while the loop draws an epoch's last
    batches, the workers read the next epoch's first ones (its order is known in advance: a
    function of (seed, epoch)). A pass for another epoch than the next, or after a pass that
    stopped early, starts new workers.

    ``lend``: with workers, hand over each batch in the shared memory its worker read it into,
    without a copy. A lent batch stays valid while the loop draws the next ``LENT_STEPS`` batches
    of its pass and is overwritten after: a consumer that is done with each batch by its next step
    (the trainer, the evaluator) may borrow; one that keeps batches (``list(loader)``) must not."""

    def __init__(
        self,
        samples: torch.utils.data.Dataset,
        schedule: torch.utils.data.Sampler,
        num_workers: int = 0,
        pin_memory: bool = False,
        lend: bool = False,
    ):
        if num_workers < 0:
            raise CfdbenchError(f"--num-workers must be >= 0, got {num_workers}")
        self.schedule, self.pin_memory, self.lend = schedule, pin_memory, lend
        self.samples, self.num_workers = samples, num_workers
        slots = num_workers * PREFETCH_FACTOR + LENT_STEPS + 1
        self.slots = _shared_slots(samples, schedule, slots) if num_workers else None
        self._stream: Iterator | None = None  # the workers' DataLoader iterator, across epochs
        self._stream_epoch = None  # the epoch its next step belongs to

    def set_epoch(self, epoch: int) -> None:
        self.schedule.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.schedule)

    def __iter__(self) -> Iterator[tuple[dict[str, Tensor], int]]:
        _draw_like_a_data_loader()
        if not self.num_workers:
            for indices, global_batch in self.schedule:
                batch = self.samples[indices]
                yield _private(batch, pin=True) if self.pin_memory else batch, global_batch
            return
        epoch, steps, drawn_whole = self.schedule.epoch, len(self.schedule), False
        if steps == 0:
            return
        follows = self._stream_epoch is not None and (self._stream_epoch == epoch or not self.schedule.varies_by_epoch)
        if self._stream is None or not follows:  # first pass, a stop, or not the epoch after the last one
            self._stop_stream()
            self._stream = iter(self._data_loader(epoch))
        stream, self._stream_epoch = self._stream, None
        try:
            for _ in range(steps):
                item = next(stream)
                if isinstance(item, _Failure):
                    raise _rebuilt(item)
                if isinstance(item, _InSlot):
                    yield self.slots.take(item.slot, item.rows, self.pin_memory, self.lend), item.global_batch
                else:
                    yield item
            drawn_whole = True
        finally:
            if self._stream is stream:  # not a pass that a newer one has replaced
                if drawn_whole:
                    self._stream_epoch = epoch + 1  # the workers are already reading its first batches
                else:  # an error, or a consumer that stopped early: the next pass starts a new stream
                    self._stop_stream()

    def _stop_stream(self) -> None:
        """Stop the workers and wait for them before any new worker can write a shared slot. Explicitly:
        an exception re-raised from a worker holds the DataLoader iterator in a reference cycle, so
        dropping our reference alone would leave its workers running until the garbage collector."""
        stream, self._stream, self._stream_epoch = self._stream, None, None
        shutdown = getattr(stream, "_shutdown_workers", None)  # torch's own stop-and-join of its workers
        if shutdown is not None:
            shutdown()

    def _data_loader(self, first_epoch: int) -> torch.utils.data.DataLoader:
        """Workers reading the schedule's steps from ``first_epoch`` on (a new stream: new workers)."""
        return torch.utils.data.DataLoader(
            _Gather(self.samples, self.slots),
            sampler=_Stream(self.schedule, first_epoch),
            batch_size=None,
            num_workers=self.num_workers,
            prefetch_factor=PREFETCH_FACTOR,
            pin_memory=self.pin_memory,
            generator=torch.Generator(),  # the workers' base seed: the global generator's one draw per pass is made in __iter__
        )


def _draw_like_a_data_loader() -> None:
    """One draw from torch's global generator, as a pass of ``DataLoader`` makes (its workers' base
    seed), with or without workers: every pass leaves the global random state as a ``DataLoader``
    without workers did, so dropout during training is the same for any ``--num-workers`` and after
    ``--resume``, and runs made before the workers' stream existed replay bitwise."""
    torch.empty((), dtype=torch.int64).random_()


def _shared_slots(samples: torch.utils.data.Dataset, schedule: torch.utils.data.Sampler, count: int) -> _SharedSlots | None:
    """Slots shaped like the schedule's first (largest) batch; None for an empty schedule or a
    dataset that cannot read into given tensors (no ``empty_batch``/``gather``: its batches travel
    as ``DataLoader`` sends them)."""
    first = next(iter(schedule), None)
    if first is None or not (hasattr(samples, "empty_batch") and hasattr(samples, "gather")):
        return None
    return _SharedSlots(samples, first[0], count)


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
