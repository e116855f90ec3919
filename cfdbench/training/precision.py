"""Mixed precision: bf16 autocast by default on CUDA, fp16 with a gradient scaler as an option,
float32 on the CPU; spectral convolutions always run in float32.

An FFT in bf16 is unsupported or inaccurate (bf16 keeps 8 bits of mantissa, and a spectral layer
sums over the whole grid), so :func:`keep_spectral_float32` wraps every neuraloperator
``SpectralConv`` of a model to run outside autocast on float32 input, whatever the precision of
the rest.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

from cfdbench.errors import CfdbenchError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA, fp32 elsewhere; fp16 needs CUDA (its gradient scaler does)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise CfdbenchError("precision fp16 needs a CUDA device (gradient scaling); use bf16 or fp32 on the CPU")
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward pass's autocast context (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler that is active only for fp16 (bf16 has float32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def _float32_forward(forward):
    """``forward`` run outside autocast on float32 input."""

    @functools.wraps(forward)
    def run(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return forward(x.float(), *args, **kwargs)

    return run


def keep_spectral_float32(model: nn.Module) -> int:
    """Make every spectral convolution of ``model`` run in float32; returns how many. Only the
    modules' ``forward`` is replaced, so parameters and checkpoints are unchanged."""
    from neuralop.layers.spectral_convolution import SpectralConv

    wrapped = 0
    for module in model.modules():
        if isinstance(module, SpectralConv) and not getattr(module, "_cfdbench_float32", False):
            module.forward = _float32_forward(module.forward)
            module._cfdbench_float32 = True
            wrapped += 1
    return wrapped
