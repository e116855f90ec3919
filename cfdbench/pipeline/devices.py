"""Which torch device a command runs on."""

from __future__ import annotations

import torch

from cfdbench.errors import CfdbenchError


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` picks CUDA when available (the rank's own GPU under torchrun), else the CPU;
    anything else is passed to torch."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count()) if local_rank is not None else torch.device("cuda")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CfdbenchError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CfdbenchError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return device
