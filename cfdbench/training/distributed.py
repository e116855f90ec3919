"""Data-parallel training on torch's own engine: ``torchrun --nproc_per_node N -m cfdbench train``.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` joins the
process group (NCCL on CUDA, gloo on the CPU) and picks each rank's device. Batches are global:
:func:`cfdbench.data.batches.rank_batches` cuts one seeded permutation per epoch into global batches
and gives each rank every ``world``-th sample of each, so the union of the ranks' batches is exactly
the batch a single process would draw, and :func:`scaled_loss` makes DDP's gradient average equal the
single-process gradient of the global batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from cfdbench.data.batches import Ranks


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> Ranks:
    """Join torchrun's process group when launched by it; otherwise a single rank on ``device``."""
    if not launched_by_torchrun():
        return Ranks(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(rank, world, device)


def scaled_loss(per_sample: torch.Tensor, global_batch: int, world_size: int) -> torch.Tensor:
    """Sum of this rank's per-sample losses scaled so that DDP's mean over ranks of the gradients
    is the gradient of the mean loss over the global batch."""
    return per_sample.sum() * world_size / global_batch


def all_reduce_sums(values: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Element-wise sum over ranks (identity on one rank)."""
    if not ranks.distributed:
        return values
    reduced = values.to(ranks.device, copy=True)  # NCCL reduces CUDA tensors, gloo CPU ones
    dist.all_reduce(reduced)
    return reduced.to(values.device)


def broadcast_object(value, ranks: Ranks):
    """Rank 0's ``value`` on every rank (a run folder name, say)."""
    if not ranks.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_finite(value: torch.Tensor, ranks: Ranks) -> bool:
    """Whether ``value`` is finite on every rank (so all ranks stop together on a NaN loss)."""
    bad = torch.tensor([0.0 if bool(torch.isfinite(value).all()) else 1.0], dtype=torch.float64)
    return float(all_reduce_sums(bad, ranks)[0]) == 0.0


def shutdown(ranks: Ranks, clean: bool = True) -> None:
    """Leave the process group; after an error, without waiting for the other ranks (they may be
    inside a collective the failed rank will never join, and torchrun stops them)."""
    if ranks.distributed and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()
