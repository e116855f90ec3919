"""Fully connected stacks, as CFDBench's FFN and DeepONet family use them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class NormAct(nn.Module):
    """CFDBench's scale-invariant activation: standardise each hidden vector, activate, then
    restore its mean and scale, so the non-linearity acts the same whatever the magnitude."""

    def __init__(self, activation: nn.Module, eps: float = 1e-6):
        super().__init__()
        self.activation, self.eps = activation, eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True, unbiased=False) + self.eps
        return self.activation((x - mean) / std) * std + mean


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def activation(name: str, norm: bool = False) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; valid: {', '.join(ACTIVATIONS)}")
    act = ACTIVATIONS[name]()
    return NormAct(act) if norm else act


class MLP(nn.Module):
    """Linear layers of the given widths (``[in, hidden..., out]``), an activation between them and
    none after the last (``activate_last`` adds one)."""

    def __init__(self, widths: Sequence[int], act: str = "relu", norm_act: bool = False, activate_last: bool = False):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"an MLP needs at least input and output widths, got {list(widths)}")
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(widths) - 2 or activate_last:
                layers.append(activation(act, norm_act))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def widths(n_in: int, width: int, depth: int, n_out: int) -> list[int]:
    """CFDBench's ``[n_in] + [width] * depth`` stack, ending in ``n_out`` (``depth`` linear layers)."""
    return [n_in] + [width] * (depth - 1) + [n_out]


def grid_points(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Cell-centre coordinates (H*W, 2) as (x, y) in [0, 1], row-major like a flattened frame."""
    y = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    x = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
