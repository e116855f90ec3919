"""Factorised attention over the three axes of a 3D field (FactFormer / IFactFormer).

Instead of N x N attention over all N = nx·ny·nz points, each axis gets its own kernel
κ_a = Q_a K_aᵀ (N_a x N_a), built from the field averaged over the two other axes, and the
values are contracted with the kernels along their axes: in parallel and summed by
concatenation (IFactFormer-m) or one after another (FactFormer's and IFactFormer-o's chain).
No softmax; scaling 1 (1/sqrt(Dk) when kernel_multiplier > 4), as in the reference
(``../shared/reference/models.md`` A.2–A.3). Positional phases are computed in at least
float32 (bf16 autocast cannot hold them) and in float64 for a float64 model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AXIS_EQUATIONS = ("bhij,bhjmsc->bhimsc", "bhij,bhmjsc->bhmisc", "bhij,bhmsjc->bhmsic")


class GatedMLP(nn.Module):
    """Linear(dim, 2 dim), gelu(first half) · second half, Linear(dim, out)."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.expand, self.project = nn.Linear(dim, 2 * dim), nn.Linear(dim, out)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.expand(x).chunk(2, dim=-1)
        return self.project(F.gelu(gate) * value)


class RotaryEmbedding(nn.Module):
    """GPT-NeoX rotary encoding of a 1D coordinate: angle = (64 · coord) · 10000^(-2j/d)."""

    def __init__(self, dim: int, coordinate_scale: float = 64.0):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, dim, 2).float() / dim), persistent=False)
        self.coordinate_scale = coordinate_scale

    def forward(self, x: Tensor, coordinates: Tensor) -> Tensor:
        """Rotate ``x`` (..., N, d) by the angles of ``coordinates`` (N,), in at least float32 even
        under autocast (the angles reach hundreds of radians, beyond bf16's resolution), in float64 for
        a float64 model."""
        wide = at_least_float32(x.dtype)
        with torch.autocast(x.device.type, enabled=False):
            angle = (coordinates.to(wide)[:, None] * self.coordinate_scale) * self.inv_freq.to(wide)[None, :]
            freqs = torch.cat([angle, angle], dim=-1)
            xw = x.to(wide)
            first, second = xw.chunk(2, dim=-1)
            return (xw * freqs.cos() + torch.cat([-second, first], dim=-1) * freqs.sin()).to(x.dtype)


def at_least_float32(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; half precisions (and float32) give float32."""
    return torch.promote_types(dtype, torch.float32)


class AxisKernel(nn.Module):
    """κ_a for one axis: project, average over the other axes, gated MLP, then Q Kᵀ with RoPE."""

    def __init__(self, dim: int, latent_dim: int, heads: int, key_dim: int, use_rope: bool, scale: float = 1.0):
        super().__init__()
        self.heads, self.key_dim = heads, key_dim
        self.project = nn.Linear(dim, dim, bias=False)
        self.norm, self.mlp = nn.LayerNorm(dim), GatedMLP(dim, latent_dim)
        self.to_q = nn.Linear(latent_dim, heads * key_dim, bias=False)
        self.to_k = nn.Linear(latent_dim, heads * key_dim, bias=False)
        for layer in (self.to_q, self.to_k):
            nn.init.xavier_uniform_(layer.weight, gain=0.02)
        self.rope = RotaryEmbedding(key_dim) if use_rope else None
        self.scale = scale

    def forward(self, features: Tensor, axis: int, coordinates: Tensor) -> Tensor:
        """``features`` (B, nx, ny, nz, dim) -> kernel (B, heads, N_a, N_a) along spatial ``axis`` (0, 1, 2)."""
        others = tuple(1 + a for a in range(3) if a != axis)
        pooled = self.project(features).mean(dim=others)  # (B, N_a, dim)
        latent = self.mlp(self.norm(pooled))
        batch, length = latent.shape[:2]
        q = self.to_q(latent).view(batch, length, self.heads, self.key_dim).transpose(1, 2)
        k = self.to_k(latent).view(batch, length, self.heads, self.key_dim).transpose(1, 2)
        if self.rope is not None:
            q, k = self.rope(q, coordinates), self.rope(k, coordinates)
        kernel = q @ k.transpose(-1, -2)
        return kernel if self.scale == 1.0 else kernel * self.scale


class FactorizedAttention(nn.Module):
    """One factorised-attention block (FAB) on (B, nx, ny, nz, dim) fields; ``chained`` selects the
    -o variant (κ_z ×_z κ_y ×_y κ_x ×_x V) over the -m variant (the three contractions concatenated)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        latent_dim: int,
        kernel_multiplier: int = 3,
        use_rope: bool = True,
        chained: bool = False,
    ):
        super().__init__()
        self.heads, self.dim_head, self.chained = heads, dim_head, chained
        self.norm = nn.LayerNorm(dim)
        self.to_v = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_features = nn.Linear(dim, dim, bias=False)
        key_dim = dim_head * kernel_multiplier
        scale = 1.0 if kernel_multiplier <= 4 else key_dim**-0.5  # the reference's rule without softmax
        self.kernels = nn.ModuleList(AxisKernel(dim, latent_dim, heads, key_dim, use_rope, scale) for _ in range(3))
        combined = heads * dim_head * (1 if chained else 3)
        self.out_norm = nn.InstanceNorm3d(combined, affine=False, eps=1e-5)
        self.to_out = nn.Sequential(nn.Linear(combined, dim, bias=False), nn.GELU(), nn.Linear(dim, dim, bias=False))

    def forward(self, u: Tensor, coordinates: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        normed = self.norm(u)
        batch, nx, ny, nz, _ = u.shape
        values = self.to_v(normed).view(batch, nx, ny, nz, self.heads, self.dim_head).permute(0, 4, 1, 2, 3, 5)
        features = self.to_features(normed)
        kernels = [kernel(features, axis, coordinates[axis]) for axis, kernel in enumerate(self.kernels)]
        if self.chained:
            mixed = values
            for equation, kernel in zip(AXIS_EQUATIONS, kernels):
                mixed = torch.einsum(equation, kernel, mixed)
        else:
            mixed = torch.cat([torch.einsum(eq, kernel, values) for eq, kernel in zip(AXIS_EQUATIONS, kernels)], dim=-1)
        channels = mixed.permute(0, 1, 5, 2, 3, 4).reshape(batch, -1, nx, ny, nz)  # head-major, then [x|y|z]
        return self.to_out(self.out_norm(channels).permute(0, 2, 3, 4, 1))


class GaussianFourierFeatures(nn.Module):
    """Fixed random Fourier features of 3D positions, [sin 2π p·B, cos 2π p·B] with B = scale·N(0, 1),
    then a linear layer: the global positional encoding. B is a (frozen) parameter, as in the
    reference, so it is saved with the weights and counted."""

    def __init__(self, dim: int, scale: float = 8.0, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.frequencies = nn.Parameter(scale * torch.randn(3, dim // 2, generator=generator), requires_grad=False)
        self.linear = nn.Linear(dim, dim)

    def forward(self, positions: Tensor) -> Tensor:
        wide = at_least_float32(self.linear.weight.dtype)
        with torch.autocast(positions.device.type, enabled=False):  # phases of ~1e3 rad: at least float32
            projected = 2 * math.pi * positions.to(wide) @ self.frequencies.to(wide)
            features = torch.cat([projected.sin(), projected.cos()], dim=-1)
        return self.linear(features)
