"""Fourier neural operator (neuraloperator's ``FNO``) in CFDBench's configuration, and in 3D for the channel.

CFDBench: lift by a 1x1 convolution of [u, v, mask, x, y, parameters] to 32 channels, four
spectral layers with 12 x 12 modes plus a 1x1 skip convolution, GELU, then 32 -> 128 -> 2.
Here the same network comes from neuraloperator; unlike CFDBench (a recorded defect) the
non-periodic cavity/channel domains are zero-padded before the FFT (``domain_padding``), and
the mask is applied to the output.
"""

from __future__ import annotations

from typing import Any

import torch
from neuralop.models import FNO
from torch import Tensor

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
        "positional_embedding": "grid",  # coordinates in [0, 1]
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
        super().__init__(
            meta,
            modes=list(modes),
            hidden_channels=hidden_channels,
            n_layers=n_layers,
            projection_channels=projection_channels,
            domain_padding=domain_padding,
            residual=residual,
        )
        self.residual = residual
        n_modes = (2 * modes[0], 2 * modes[1] - 2)  # neuraloperator keeps n//2+1 along the rfft axis
        self.fno_kwargs = fno_arguments(meta, n_modes, hidden_channels, n_layers, projection_channels, domain_padding or None)
        self.net = FNO(**self.fno_kwargs)


@register_model("fno-cfdbench")
class FNO2dCFDBench(FNO2d):
    """CFDBench's FNO exactly: no domain padding before the FFT (the periodicity it assumes is
    wrong for cavity and channel domains; kept for comparison with the paper)."""

    def __init__(self, meta: OperatorMeta, domain_padding: float | None = None, **hparams):
        super().__init__(meta, domain_padding=domain_padding, **hparams)


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
        super().__init__(
            meta,
            modes=list(modes),
            hidden_channels=hidden_channels,
            n_layers=n_layers,
            projection_channels=projection_channels,
            wall_padding=wall_padding,
            residual=residual,
        )
        self.residual = residual
        padding = [0.0, wall_padding, 0.0] if wall_padding else None
        self.fno_kwargs = fno_arguments(meta, tuple(modes), hidden_channels, n_layers, projection_channels, padding)
        self.net = FNO(**self.fno_kwargs)
