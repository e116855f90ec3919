"""Whole batches whose indices the main process chooses and worker processes only read.

Exact runs (``--resume``, DDP) need the same batches in the same order whatever ``--num-workers``
is. So the order is never drawn in a worker: a *schedule* (a torch ``Sampler``) yields, in the
main process, each step's sample indices and the size of the global batch they belong to;
``DataLoader`` workers only gather ``samples[indices]`` (a deterministic read), and the
``DataLoader`` returns their results in the schedule's order. 0 and N workers therefore give
bitwise the same batches (tested), and a DDP rank's batches are its share of the same global
batches (:func:`cfdbench.training.distributed.rank_batches`).

With workers: persistent (started once, reused every epoch; :meth:`BatchLoader.set_epoch` picks
the next epoch's order), ``prefetch_factor`` batches queued per worker, and pinned memory when
the batches go to a GPU (then copied with ``non_blocking=True``: :func:`to_device`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError
from cfdbench.training.distributed import Ranks, rank_batches

PREFETCH_FACTOR = 2  # batches each worker keeps ready
Step = tuple[Tensor, int]  # (this process's sample indices, size of the global batch)


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


@dataclass(frozen=True)
class _Failure:
    """A user-facing error raised in a worker, carried back whole: DataLoader would otherwise
    re-raise it with the worker's traceback pasted into its message."""

    kind: type
    message: str


class _Gather(torch.utils.data.Dataset):
    """``samples[indices]`` for one scheduled step: all a worker does."""

    def __init__(self, samples: torch.utils.data.Dataset):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, step: Step) -> tuple[dict[str, Tensor], int] | _Failure:
        indices, global_batch = step
        try:
            return self.samples[indices], global_batch
        except CfdbenchError as err:
            return _Failure(type(err), str(err))


class BatchLoader:
    """Iterates ``(batch, global batch size)`` in the schedule's order, read by ``num_workers``
    worker processes (0: in this process)."""

    def __init__(self, samples: torch.utils.data.Dataset, schedule: torch.utils.data.Sampler, num_workers: int = 0, pin_memory: bool = False):
        if num_workers < 0:
            raise CfdbenchError(f"--num-workers must be >= 0, got {num_workers}")
        self.schedule = schedule
        self.loader = torch.utils.data.DataLoader(
            _Gather(samples),
            sampler=schedule,
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
            yield item


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
