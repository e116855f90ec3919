"""Spectral convolution over space and time that may change the number of time steps.

Spectral-Refiner's building block (``../shared/reference/models.md`` B.1, item 5): a real FFT
over (H, W, T) of (B, C, H, W, T) fields, the lowest ``modes`` kept in each corner of the two
spatial axes (four complex weight blocks) and along time (the half-spectrum), multiplied by
learned complex weights, and an inverse FFT to ``out_steps`` time steps. Producing a different
number of time steps than were read is how the network resamples time (T_in -> latent steps ->
output window). An optional bias per kept mode, scaled by ``delta``, is the output layer's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cfdbench.errors import CfdbenchError


def check_modes(modes: tuple[int, int, int], shape: tuple[int, int, int], where: str) -> None:
    """Refuse modes an (H, W, T) grid cannot hold: at most H//2, W//2 and T//2 + 1."""
    limits = (shape[0] // 2, shape[1] // 2, shape[2] // 2 + 1)
    if any(m < 1 or m > limit for m, limit in zip(modes, limits)):
        raise CfdbenchError(
            f"{where}: modes (H, W, T) = {tuple(modes)} do not fit a {shape[0]} x {shape[1]} grid over {shape[2]} "
            f"time steps (at most {limits})"
        )


class SpectralConvT(nn.Module):
    """Fourier layer over (H, W, T): ``(B, C_in, H, W, T) -> (B, C_out, H, W, out_steps)``.

    Weights are stored as real pairs (one (C_in, C_out, m_h, m_w, m_t, 2) block per spatial
    corner), initialised as the reference does, 0.5 / (C_in C_out) U[0, 1); the bias starts at 0.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: tuple[int, int, int],
        out_steps: int | None = None,
        bias: bool = False,
        delta: float = 0.1,
    ):
        super().__init__()
        self.modes, self.out_steps, self.delta = tuple(int(m) for m in modes), out_steps, delta
        scale = 0.5 / (in_channels * out_channels)
        self.weights = nn.ParameterList(
            nn.Parameter(scale * torch.rand(in_channels, out_channels, *self.modes, 2)) for _ in range(4)
        )
        biases = (nn.Parameter(torch.zeros(out_channels, *self.modes, 2)) for _ in range(4))
        self.biases = nn.ParameterList(biases) if bias else None

    def _corners(self) -> list[tuple[slice, slice]]:
        mh, mw = self.modes[:2]
        low_h, high_h, low_w, high_w = slice(None, mh), slice(-mh, None), slice(None, mw), slice(-mw, None)
        return [(low_h, low_w), (high_h, low_w), (low_h, high_w), (high_h, high_w)]

    def forward(self, x: Tensor, out_steps: int | None = None) -> Tensor:
        """``out_steps`` (else the layer's, else T) time steps out."""
        b, _, h, w, t = x.shape
        steps = out_steps or self.out_steps or t
        mt = self.modes[2]
        dtype = x.dtype
        x_ft = torch.fft.rfftn(x.float() if dtype in (torch.float16, torch.bfloat16) else x, dim=(-3, -2, -1))
        out_channels = self.weights[0].shape[1]
        out_ft = torch.zeros(b, out_channels, h, w, steps // 2 + 1, dtype=x_ft.dtype, device=x.device)
        for index, (rows, cols) in enumerate(self._corners()):
            weight = torch.view_as_complex(self.weights[index].to(x_ft.real.dtype))
            block = torch.einsum("bihwt,iohwt->bohwt", x_ft[:, :, rows, cols, :mt], weight)
            if self.biases is not None:
                block = block + self.delta * torch.view_as_complex(self.biases[index].to(x_ft.real.dtype))
            out_ft[:, :, rows, cols, :mt] = block
        return torch.fft.irfftn(out_ft, s=(h, w, steps), dim=(-3, -2, -1)).to(dtype)
