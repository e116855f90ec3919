"""Spectral metrics: the error per wavenumber band (fRMSE) and the kinetic-energy spectrum.

Every Fourier mode counts (PDEBench binned only the quadrant of non-negative frequencies, dropping
half the spectrum): wavenumbers come from ``fftfreq`` on both axes and modes are binned by the
integer part of ``|k| = sqrt(kx^2 + ky^2)`` in cycles per domain. Fields are masked (zero in
solids) before the transform, so solids add no error; by Parseval the squared fRMSE of the three
bands add up to the mean squared masked error over all cells.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Band edges in |k| (cycles per domain), PDEBench's: low [0, 4), mid [4, 12), high [12, inf).
BANDS = {"low": (0.0, 4.0), "mid": (4.0, 12.0), "high": (12.0, float("inf"))}


def wavenumber_magnitude(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """|k| of every mode of an (H, W) transform, in cycles per domain."""
    ky = torch.fft.fftfreq(height, d=1.0 / height, device=device, dtype=torch.float64)
    kx = torch.fft.fftfreq(width, d=1.0 / width, device=device, dtype=torch.float64)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def _power(values: Tensor) -> Tensor:
    """|FFT|^2 / (H W)^2 of (B, C, H, W) fields: sums to the mean square over all cells."""
    h, w = values.shape[-2:]
    return torch.fft.fft2(values).abs() ** 2 / (h * w) ** 2


def frmse(pred: Tensor, target: Tensor, mask: Tensor, band: str) -> Tensor:
    """RMSE carried by the modes of one band, mean over fields inside the root: (B,)."""
    low, high = BANDS[band]
    k = wavenumber_magnitude(*pred.shape[-2:], device=pred.device)
    selected = ((k >= low) & (k < high)).to(pred.dtype)
    return torch.sqrt((_power((pred - target) * mask) * selected).sum(dim=(2, 3)).mean(dim=1))


def energy_spectrum(velocity: Tensor, mask: Tensor) -> Tensor:
    """Isotropic kinetic-energy spectrum E(k) = 1/2 sum over shells |k| in [k, k+1) of the velocity
    components' power, for the masked velocity (B, C, H, W): (B, K) with K = max shell + 1."""
    k = wavenumber_magnitude(*velocity.shape[-2:], device=velocity.device).floor().long()
    power = 0.5 * _power(velocity * mask).sum(dim=1).flatten(1)
    spectrum = torch.zeros(power.shape[0], int(k.max()) + 1, dtype=power.dtype, device=power.device)
    return spectrum.index_add_(1, k.flatten(), power)


def spectrum_error(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Relative L1 distance of the energy spectra, sum_k |E_p(k) - E_y(k)| / sum_k E_y(k): (B,)."""
    predicted, true = energy_spectrum(pred, mask), energy_spectrum(target, mask)
    return (predicted - true).abs().sum(dim=1) / true.sum(dim=1).clamp(min=1e-300)
