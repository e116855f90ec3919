"""IFactFormer-m and -o: implicit factorised transformers for 3D turbulent channel flow.

Yang, Wang & Wang (2025), from the description in ``../shared/reference/models.md`` (A.1–A.4):
a grouped 1x1 lift that collapses the input window, a global Gaussian-Fourier positional
encoding, then one factorised-attention block applied ``n_layer`` times with shared weights
(u ← u + FAB(u)/L, the implicit layer), and a point-wise head. ``ifactformer_m`` contracts the
three axial kernels in parallel, ``ifactformer_o`` chains them (FactFormer's order).

Frames are (C, nz, ny, nx) in cfdbench's layout; the blocks work on (nx, ny, nz, C). Positions
are the reference's: uniform and endpoint-inclusive over the box ``lx`` x 2 x ``lz`` (the
channel's y-nodes are stretched, but the reference ignores that), so ``lx`` and ``lz`` are
hyper-parameters (defaults: the paper's 4π and 4π/3).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cfdbench.errors import CfdbenchError
from cfdbench.layers.factorized_attention import FactorizedAttention, GaussianFourierFeatures, at_least_float32
from cfdbench.models.base import NeuralOperator, OperatorMeta
from cfdbench.models.registry import register_model


class _ImplicitFactFormer(NeuralOperator):
    spatial_dims = (3,)
    chained = False

    def __init__(
        self,
        meta: OperatorMeta,
        dim: int = 96,
        heads: int = 5,
        dim_head: int = 96,
        depth: int = 1,
        n_layer: int = 10,
        kernel_multiplier: int = 3,
        latent_dim: int = 96,
        use_rope: bool = True,
        lx: float = 4 * math.pi,
        lz: float = 4 * math.pi / 3,
    ):
        super().__init__(meta)
        channels = meta.n_fields
        if dim % 2 or (dim // 2) % channels:
            raise CfdbenchError(f"dim must be even and dim/2 a multiple of the {channels} fields (grouped lift), got {dim}")
        self.n_layer, self.box = n_layer, (lx, 2.0, lz)
        self.lift = nn.Sequential(
            nn.Conv2d(channels, dim // 2, 1, groups=channels),
            nn.GELU(),
            nn.Conv2d(dim // 2, dim, (meta.input_frames, 1), bias=False),
        )
        self.encodings = nn.ModuleList(GaussianFourierFeatures(dim, seed=layer) for layer in range(depth))
        self.blocks = nn.ModuleList(
            FactorizedAttention(dim, heads, dim_head, latent_dim, kernel_multiplier, use_rope, self.chained) for _ in range(depth)
        )
        self.head = nn.Sequential(nn.Conv1d(dim, dim // 2, 1, bias=False), nn.GELU(), nn.Conv1d(dim // 2, channels, 1))

    def _axes(self, shape: tuple[int, int, int], like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Uniform, endpoint-inclusive coordinates along x, y, z (the reference's convention), in at
        least float32 (float64 for a float64 model)."""
        dtype = at_least_float32(like.dtype)
        return tuple(torch.linspace(0, length, n, device=like.device, dtype=dtype) for length, n in zip(self.box, shape))

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        batch, _, nz, ny, nx = inputs.shape
        frames = inputs.reshape(batch, self.meta.input_frames, self.meta.n_fields, nz, ny, nx)
        # (B, C, T, N) with N in x-major order: the lift convolves each channel over time.
        lifted = self.lift(frames.permute(0, 2, 1, 5, 4, 3).reshape(batch, self.meta.n_fields, self.meta.input_frames, -1))
        u = lifted.reshape(batch, -1, nx, ny, nz).permute(0, 2, 3, 4, 1)  # (B, nx, ny, nz, dim)
        axes = self._axes((nx, ny, nz), u)
        positions = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        for encoding, block in zip(self.encodings, self.blocks):
            u = u + encoding(positions)
            for _ in range(self.n_layer):  # the implicit layer: one block, shared weights
                u = u + block(u, axes) / self.n_layer
        out = self.head(u.reshape(batch, -1, u.shape[-1]).transpose(1, 2))  # (B, C, N)
        return out.view(batch, -1, nx, ny, nz).permute(0, 1, 4, 3, 2)

    def parameter_count(self) -> int:
        """Every weight, the frozen Fourier frequencies included, as the reference counts them."""
        return sum(p.numel() for p in self.parameters())


@register_model("ifactformer_m")
class IFactFormerM(_ImplicitFactFormer):
    """IFactFormer-m: the three axial contractions in parallel, concatenated."""


@register_model("ifactformer_o")
class IFactFormerO(_ImplicitFactFormer):
    """IFactFormer-o: FactFormer's chained axial contractions inside the implicit loop."""

    chained = True
