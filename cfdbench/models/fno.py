"""Fourier neural operators: ``fno`` is neuraloperator's ``FNO`` in CFDBench's configuration,
``fno-cfdbench`` is CFDBench's own FNO function, and ``fno3d`` the channel's 3D FNO.

Both 2D models lift [u, v, mask, x, y, parameters] by a 1x1 convolution to 32 channels, apply four
spectral layers with 12 x 12 modes plus a 1x1 skip convolution, then project 32 -> 128 -> 2 with
GELU between, and mask the output; both have 1,188,706 parameters. They differ where
neuraloperator's model differs from CFDBench's code:

- activations: CFDBench applies one GELU after every Fourier block; neuraloperator's ``FNO``
  (without its channel MLP) applies GELU twice after each block but the last, and none after the
  last;
- coordinates: CFDBench's grid runs from 0 to 1 inclusive; neuraloperator's stops at 1 - 1/n;
- padding: ``fno`` zero-pads the non-periodic domain by 1/8 per side before the FFT; CFDBench does
  not (a recorded defect: the FFT then treats cavity and channel as periodic).

Both use :class:`~cfdbench.layers.spectral_conv.SpectralConv` (neuraloperator's layer with its
inverse shift corrected for odd axes), so with the same weights ``fno-cfdbench`` computes what
CFDBench's ``Fno2d`` computes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from neuralop.models import FNO
from torch import Tensor, nn

from cfdbench.layers.spectral_conv import SpectralConv
from cfdbench.models.base import NeuralOperator, OperatorMeta, broadcast_params
from cfdbench.models.registry import register_model


def fno_arguments(
    meta: OperatorMeta, n_modes: tuple[int, ...], hidden_channels: int, n_layers: int, projection_channels: int, padding
) -> dict[str, Any]:
    """neuraloperator's ``FNO`` arguments as cfdbench configures it: [window, mask, parameters] plus
    grid channels in, one 1x1 lifting convolution (CFDBench's), linear skips, no channel MLP, the
    fields out; its spectral layers are :class:`SpectralConv` (neuraloperator 2.0.0's is wrong on
    odd-length axes). ``n_modes`` counts as neuraloperator does: all kept frequencies per axis, of
    which n // 2 + 1 non-negative ones along the last (real-FFT) axis."""
    return {
        "n_modes": tuple(n_modes),
        "in_channels": meta.image_channels,  # + the grid channels the FNO adds
        "out_channels": meta.n_fields,
        "hidden_channels": hidden_channels,
        "n_layers": n_layers,
        "lifting_channel_ratio": 0,
        "projection_channel_ratio": projection_channels / hidden_channels,
        "positional_embedding": "grid",  # coordinates 0, 1/n, ..., 1 - 1/n (CFDBench's end at 1)
        "use_channel_mlp": False,
        "fno_skip": "linear",
        "domain_padding": padding,
        "conv_module": SpectralConv,
    }


class _FNOOperator(NeuralOperator):
    """Shared call: the network on [window, mask, parameter planes], plus the last frame if residual."""

    residual = False
    net: FNO
    fno_kwargs: dict[str, Any]

    def library_call(self) -> tuple[str, dict[str, Any]]:
        """neuraloperator's FNO and the arguments this model passed it (the spectral layer by name)."""
        conv = self.fno_kwargs["conv_module"]
        return "neuralop.models.FNO", {**self.fno_kwargs, "conv_module": f"{conv.__module__}.{conv.__qualname__}"}

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        out = self.net(torch.cat([inputs, mask, broadcast_params(params, inputs)], dim=1))
        return out + self.last_frame(inputs) if self.residual else out


@register_model("fno")
class FNO2d(_FNOOperator):
    """``modes`` = (modes_y, modes_x) as CFDBench counts them: ``modes_y`` positive and as many
    negative frequencies along the first axis, ``modes_x`` non-negative ones along the last."""

    def __init__(
        self,
        meta: OperatorMeta,
        modes: tuple[int, int] = (12, 12),
        hidden_channels: int = 32,
        n_layers: int = 4,
        projection_channels: int = 128,
        domain_padding: float | None = 0.125,
        residual: bool = False,
    ):
        super().__init__(meta)
        self.residual = residual
        n_modes = (2 * modes[0], 2 * modes[1] - 2)  # neuraloperator keeps n//2+1 along the rfft axis
        self.fno_kwargs = fno_arguments(meta, n_modes, hidden_channels, n_layers, projection_channels, domain_padding or None)
        self.net = FNO(**self.fno_kwargs)


class FourierBlock(nn.Module):
    """CFDBench's ``FnoBlock``: a spectral convolution plus a 1x1 convolution of the same input,
    then GELU."""

    def __init__(self, channels: int, n_modes: tuple[int, int]):
        super().__init__()
        self.spectral = SpectralConv(channels, channels, n_modes, bias=False)
        self.skip = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.spectral(x) + self.skip(x))


def unit_grid(like: Tensor) -> Tensor:
    """CFDBench's coordinates (B, 2, H, W): 0 to 1 inclusive down the rows, then along the columns."""
    (h, w), batch = like.shape[-2:], like.shape[0]
    rows = torch.linspace(0, 1, h, device=like.device, dtype=like.dtype)
    columns = torch.linspace(0, 1, w, device=like.device, dtype=like.dtype)
    grid = torch.stack(torch.meshgrid(rows, columns, indexing="ij"))
    return grid.expand(batch, -1, -1, -1)


@register_model("fno-cfdbench")
class FNO2dCFDBench(NeuralOperator):
    """CFDBench's ``Fno2d``: [window, mask, coordinates, parameter planes] lifted by a 1x1 convolution,
    ``n_layers`` :class:`FourierBlock`, then 1x1 convolutions ``hidden -> projection_channels`` (GELU)
    ``-> fields``; no padding, no residual. ``modes`` as CFDBench counts them (see :class:`FNO2d`)."""

    def __init__(
        self,
        meta: OperatorMeta,
        modes: tuple[int, int] = (12, 12),
        hidden_channels: int = 32,
        n_layers: int = 4,
        projection_channels: int = 128,
    ):
        super().__init__(meta)
        n_modes = (2 * modes[0], 2 * modes[1] - 2)  # as in FNO2d: 2 x modes_y centred rows, modes_x columns from k = 0
        self.lift = nn.Conv2d(meta.image_channels + 2, hidden_channels, 1)
        self.blocks = nn.Sequential(*(FourierBlock(hidden_channels, n_modes) for _ in range(n_layers)))
        self.project = nn.Sequential(
            nn.Conv2d(hidden_channels, projection_channels, 1), nn.GELU(), nn.Conv2d(projection_channels, meta.n_fields, 1)
        )

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        x = torch.cat([inputs, mask, unit_grid(inputs), broadcast_params(params, inputs)], dim=1)
        return self.project(self.blocks(self.lift(x)))


@register_model("fno3d")
class FNO3d(_FNOOperator):
    """The channel baseline: neuraloperator's FNO over (z, y, x) volumes, frame -> next frame.

    ``modes`` = (modes_z, modes_y, modes_x) counted as neuraloperator counts them (all kept
    frequencies along z and y; along the rfft axis x, modes_x // 2 + 1 non-negative ones). x and z
    are periodic; only the wall-normal y is zero-padded by ``wall_padding`` before the FFT.
    """

    spatial_dims = (3,)

    def __init__(
        self,
        meta: OperatorMeta,
        modes: tuple[int, int, int] = (8, 16, 16),
        hidden_channels: int = 32,
        n_layers: int = 4,
        projection_channels: int = 128,
        wall_padding: float = 0.125,
        residual: bool = False,
    ):
        super().__init__(meta)
        self.residual = residual
        padding = [0.0, wall_padding, 0.0] if wall_padding else None
        self.fno_kwargs = fno_arguments(meta, tuple(modes), hidden_channels, n_layers, projection_channels, padding)
        self.net = FNO(**self.fno_kwargs)
