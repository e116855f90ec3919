"""neuraloperator's ``SpectralConv`` with its inverse transform corrected for odd-length axes.

neuraloperator 2.0.0 (the release ``neuraloperator>=2.0,<2.1`` pins; no later one exists) centres
the spectrum with ``fftshift`` before keeping the lowest modes, and un-centres it with ``fftshift``
again where ``ifftshift`` is the inverse. The two agree on even lengths; on an odd-length axis
other than the last (the last is the real-FFT axis, never shifted) the kept modes come back
rolled by one frequency, so the layer mixes every mode into its neighbour's place. Upstream fixed
this after 2.0.0 (neuraloperator PR #688) and also made the real inverse transform ignore the
imaginary part of its zero-frequency and Nyquist bins explicitly (PR #702: cuFFT does not always
do so, which left line artefacts); no release contains either. The channel's 33-point
wall-normal axis, padded or not, is such an axis.

:class:`SpectralConv` keeps the parent's parameters, initialisation and contraction (checkpoints
load unchanged) and replaces ``forward`` with one written from that description: forward real
FFT, centre, keep the lowest modes, contract, un-centre with ``ifftshift``, inverse. On grids
whose shifted axes are all even it computes what the parent computes.
"""

from __future__ import annotations

import torch
from neuralop.layers.spectral_convolution import SpectralConv as NeuralopSpectralConv
from torch import Tensor


def centred_slice(size: int, kept: int) -> slice:
    """The ``kept`` lowest frequencies of a centred spectrum of ``size`` modes (zero frequency at
    index ``size // 2``): ``kept // 2`` negative ones, the zero, and the rest positive."""
    start = size // 2 - kept // 2
    return slice(start, start + kept)


def _shift(spectrum: Tensor, dims: list[int], inverse: bool = False) -> Tensor:
    """Centre the zero frequency along ``dims`` (``fftshift``), or undo it (``ifftshift``)."""
    if not dims:  # a 1D real FFT: nothing to centre
        return spectrum
    return torch.fft.ifftshift(spectrum, dim=dims) if inverse else torch.fft.fftshift(spectrum, dim=dims)


class SpectralConv(NeuralopSpectralConv):
    """Fourier layer ``(B, C_in, *grid) -> (B, C_out, *grid)``, neuraloperator's with the inverse
    shift corrected; a drop-in ``conv_module`` for neuraloperator's ``FNO``."""

    def forward(self, x: Tensor, output_shape: tuple[int, ...] | None = None) -> Tensor:
        dims = list(range(-self.order, 0))
        shifted = dims if self.complex_data else dims[:-1]  # the real FFT's last axis holds k >= 0 only
        out_grid = self._output_grid(list(x.shape[2:]), output_shape)
        spectrum = self._spectrum(x, dims, shifted)
        weight = self.weight[self._weight_slices(list(spectrum.shape[2:]))]
        kept = list(weight.shape[-self.order :])
        out_spectrum = torch.zeros(
            [x.shape[0], self.out_channels, *self._spectrum_size(out_grid)], device=x.device, dtype=self._spectral_dtype()
        )
        source = (slice(None), slice(None), *self._kept(list(spectrum.shape[2:]), kept))
        target = (slice(None), slice(None), *self._kept(list(out_spectrum.shape[2:]), kept))
        out_spectrum[target] = self._contract(spectrum[source], weight, separable=self.separable)
        out = self._inverse(_shift(out_spectrum, shifted, inverse=True), out_grid, dims)
        return out if self.bias is None else out + self.bias

    def _output_grid(self, grid: list[int], output_shape: tuple[int, ...] | None) -> list[int]:
        """The output's grid: ``output_shape``, else the input's scaled by the layer's factor."""
        if output_shape is not None:
            return list(output_shape)
        if self.resolution_scaling_factor is not None:
            return [round(s * r) for s, r in zip(grid, self.resolution_scaling_factor)]
        return grid

    def _spectrum_size(self, grid: list[int]) -> list[int]:
        return grid if self.complex_data else [*grid[:-1], grid[-1] // 2 + 1]

    def _spectral_dtype(self) -> torch.dtype:
        return torch.chalf if self.fno_block_precision in ("half", "mixed") else torch.cfloat

    def _spectrum(self, x: Tensor, dims: list[int], shifted: list[int]) -> Tensor:
        """The (real) FFT of ``x`` over the grid, centred along the ``shifted`` axes."""
        if self.fno_block_precision == "half":
            x = x.half()
        transform = torch.fft.fftn if self.complex_data else torch.fft.rfftn
        spectrum = transform(x, norm=self.fft_norm, dim=dims)
        spectrum = _shift(spectrum, shifted)
        return spectrum.chalf() if self.fno_block_precision == "mixed" else spectrum

    def _weight_slices(self, spectrum_size: list[int]) -> tuple[slice, ...]:
        """The weights of the modes this grid can hold: all of them unless the layer was built with
        more (``max_n_modes``) than it now uses, or the grid has fewer modes than that."""
        slices = [slice(None)] * (1 if self.separable else 2)
        for axis, (size, n_modes, max_modes) in enumerate(zip(spectrum_size, self.n_modes, self.max_n_modes)):
            surplus = max_modes - min(size, n_modes)
            if not surplus:
                slices.append(slice(None))
            elif axis == self.order - 1 and not self.complex_data:
                slices.append(slice(None, -surplus))  # the real FFT's modes start at k = 0
            else:
                slices.append(slice(surplus // 2, -surplus // 2))  # centred, like the spectrum
        return tuple(slices)

    def _kept(self, spectrum_size: list[int], kept: list[int]) -> list[slice]:
        """Where the kept modes sit in a centred spectrum of this size."""
        slices = [centred_slice(size, n) for size, n in zip(spectrum_size, kept)]
        if not self.complex_data:
            slices[-1] = slice(None, kept[-1])
        return slices

    def _inverse(self, spectrum: Tensor, grid: list[int], dims: list[int]) -> Tensor:
        """Inverse FFT to ``grid``. For real output the last axis is inverted alone, after the
        imaginary parts of its zero-frequency and (even length) Nyquist bins are dropped: the values
        an exact real inverse ignores, and that cuFFT does not always ignore."""
        if self.complex_data:
            return torch.fft.ifftn(spectrum, s=grid, dim=dims, norm=self.fft_norm)
        if self.order > 1:
            spectrum = torch.fft.ifftn(spectrum, s=grid[:-1], dim=dims[:-1], norm=self.fft_norm)
        real_bins = [0, grid[-1] // 2] if grid[-1] % 2 == 0 else [0]
        keep_imag = torch.ones(spectrum.shape[-1], device=spectrum.device, dtype=spectrum.real.dtype)
        keep_imag[real_bins] = 0
        spectrum = torch.complex(spectrum.real, spectrum.imag * keep_imag)
        return torch.fft.irfft(spectrum, n=grid[-1], dim=dims[-1], norm=self.fft_norm)
