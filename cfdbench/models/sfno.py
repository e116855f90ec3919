"""SFNO: Spectral-Refiner's spatiotemporal Fourier neural operator (Cao, Brarda, Li & Xi, ICLR 2025).

From the description in ``../shared/reference/models.md`` (B.1); not neuraloperator's spherical
SFNO. An input window of T_in frames maps to the next ``meta.output_frames`` frames in one call,
with spectral convolutions over (H, W, t):

1. lift: each input channel plus a fixed positional encoding of ``width`` channels ([x, y, t] and
   damped temporal sines/cosines), a layer norm, a 1x1 convolution, then a spectral convolution
   that resamples the T_in steps to ``latent_steps`` and a point-wise FFN, added to the last time
   slice of the lifted input;
2. ``num_layers - 1`` spectral layers ``act(FFN(SpectralConv(v)) + Conv1x1(v))``;
3. a 1x1 reduction to the fields;
4. the output operator: the last input frame prepended, time zero-padded, an unstruncated-in-time
   spectral convolution with a bias (scaled by ``delta``) resampling to the output window, and the
   result added to the last input frame.

cfdbench's data differ from the reference's periodic vorticity: several fields (u, v) are
channels; the fluid mask and the case parameters enter as extra constant channels
(``conditioning``); walls are not periodic, so the hidden fields are zero-padded at the far end
of each axis by ``spatial_padding`` of its length before the Fourier layers (opposite walls no
longer touch through the FFT's wrap-around) and cropped before the reduction, and
no Leray projection is applied (it is only exact for periodic velocity). With one field and no
conditioning the network is the reference's, parameter for parameter (16,469,791 at width 10,
modes 32 x 32 x 5). The reference's ``temporal_padding`` flag has no described effect and is not
reproduced.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from cfdbench.errors import CfdbenchError
from cfdbench.layers.mlp import activation as make_activation
from cfdbench.layers.spectral_conv_t import SpectralConvT, check_modes
from cfdbench.models.base import NeuralOperator, OperatorMeta, broadcast_params
from cfdbench.models.registry import register_model


def positional_encoding(channels: int, shape: tuple[int, int, int], beta: float, like: Tensor) -> Tensor:
    """(channels, H, W, T): x and y on [0, 1], t_k = (k + 1) / 100 (the reference's grid, which starts
    one step in), then channels - 3 temporal bases exp(βt) sin(π(k+1)t) (k even) or
    exp(βt) cos(π(k+1)t) (k odd)."""
    h, w, t = shape
    grid = {"dtype": like.dtype, "device": like.device}
    y = torch.linspace(0, 1, h, **grid)[:, None, None].expand(h, w, t)
    x = torch.linspace(0, 1, w, **grid)[None, :, None].expand(h, w, t)
    time = (torch.arange(t, **grid) + 1) / 100
    bases = []
    for k in range(channels - 3):
        wave = torch.sin if k % 2 == 0 else torch.cos
        bases.append((torch.exp(beta * time) * wave(math.pi * (k + 1) * time)).expand(h, w, t))
    return torch.stack([x, y, time.expand(h, w, t), *bases])


class PointwiseFFN(nn.Sequential):
    """1x1x1 convolutions width -> expansion * width -> width with an activation between."""

    def __init__(self, width: int, expansion: int, act: str):
        super().__init__(nn.Conv3d(width, expansion * width, 1), make_activation(act), nn.Conv3d(expansion * width, width, 1))


@register_model("sfno")
class SpatiotemporalFNO(NeuralOperator):
    """Input window (B, T_in*C, H, W) -> the next ``meta.output_frames`` frames (B, m*C, H, W)."""

    output_window = True

    def __init__(
        self,
        meta: OperatorMeta,
        modes_x: int = 12,
        modes_y: int = 12,
        modes_t: int = 5,
        width: int = 20,
        latent_steps: int = 10,
        num_layers: int = 4,
        beta: float = -0.01,
        delta: float = 0.1,
        activation: str = "relu",
        channel_expansion: int = 4,
        spatial_padding: float = 0.125,
        conditioning: bool = True,
    ):
        super().__init__(meta)
        if width < 4 or width % 2:
            raise CfdbenchError(f"sfno: width must be even and at least 4 (its positional encoding), got {width}")
        if num_layers < 1:
            raise CfdbenchError(f"sfno: num_layers must be at least 1, got {num_layers}")
        if not 1 <= latent_steps <= meta.input_frames:
            raise CfdbenchError(
                f"sfno: latent_steps must lie in [1, input frames = {meta.input_frames}], got {latent_steps}; "
                "train with more input frames (training.input_frames) or fewer latent steps"
            )
        h, w = meta.grid_shape
        self.padding = (round(spatial_padding * h), round(spatial_padding * w))
        padded = (h + self.padding[0], w + self.padding[1])
        modes = (modes_y, modes_x, modes_t)
        check_modes(modes, (*padded, meta.input_frames), "sfno lift")
        check_modes(modes, (*padded, latent_steps), "sfno spectral layers")
        check_modes(modes, (h, w, 2 * (latent_steps + 1)), "sfno output layer")
        self.width, self.beta, self.latent_steps, self.conditioning = width, beta, latent_steps, conditioning
        in_channels = meta.n_fields + (1 + meta.n_params if conditioning else 0)
        self.act = make_activation(activation)
        self.norm = nn.GroupNorm(1, in_channels * width, eps=1e-7)  # the reference's eps
        self.lift = nn.Conv3d(in_channels * width, width, 1)
        self.lift_spectral = SpectralConvT(width, width, modes, out_steps=latent_steps)
        self.lift_ffn = PointwiseFFN(width, channel_expansion, activation)
        self.spectral = nn.ModuleList(SpectralConvT(width, width, modes) for _ in range(num_layers - 1))
        self.ffns = nn.ModuleList(PointwiseFFN(width, channel_expansion, activation) for _ in range(num_layers - 1))
        self.skips = nn.ModuleList(nn.Conv3d(width, width, 1) for _ in range(num_layers - 1))
        self.reduce = nn.Conv3d(width, meta.n_fields, 1)
        self.output = SpectralConvT(meta.n_fields, meta.n_fields, modes, bias=True, delta=delta)

    def input_fields(self, inputs: Tensor) -> Tensor:
        """The input window (B, T_in*C, H, W) as fields over time (B, C, H, W, T_in)."""
        b, _, h, w = inputs.shape
        return inputs.reshape(b, self.meta.input_frames, self.meta.n_fields, h, w).permute(0, 2, 3, 4, 1)

    def _inputs(self, inputs: Tensor, mask: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """(fields (B, C, H, W, T_in), every input channel (B, C', H, W, T_in)), time last."""
        fields = self.input_fields(inputs)
        if not self.conditioning:
            return fields, fields
        constant = torch.cat([mask, broadcast_params(params, mask)], dim=1)[..., None].expand(-1, -1, -1, -1, fields.shape[-1])
        return fields, torch.cat([fields, constant], dim=1)

    def latent(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        """The reduced latent trajectory (B, C, H, W, latent_steps): everything before the output operator."""
        fields, channels = self._inputs(inputs, mask, params)
        b, c, h, w, t = channels.shape
        encoded = channels[:, :, None] + positional_encoding(self.width, (h, w, t), self.beta, channels)[None, None]
        lifted = self.lift(self.norm(encoded.reshape(b, c * self.width, h, w, t)))
        lifted = F.pad(lifted, (0, 0, 0, self.padding[1], 0, self.padding[0]))
        v = self.act(lifted[..., -1:] + self.lift_ffn(self.lift_spectral(lifted)))
        for spectral, ffn, skip in zip(self.spectral, self.ffns, self.skips):
            v = self.act(ffn(spectral(v)) + skip(v))
        return self.reduce(v[:, :, :h, :w])

    def window_from_latent(self, fields: Tensor, latent: Tensor, output: SpectralConvT | None = None) -> Tensor:
        """The output operator (``output``, else the trained one): last input frame + resampled
        correction, (B, C, H, W, m). Spectral refinement swaps in a widened ``output``."""
        last = fields[..., -1:]
        steps, pad = self.meta.output_frames, self.latent_steps + 1
        series = F.pad(torch.cat([last, latent], dim=-1), (pad, 0))
        correction = (output or self.output)(series, out_steps=steps + 1 + pad)[..., -steps:]
        return last + correction

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        window = self.window_from_latent(self.input_fields(inputs), self.latent(inputs, mask, params))
        return window.permute(0, 4, 1, 2, 3).flatten(1, 2)  # (B, m*C, H, W), oldest frame first
