"""Spectral metrics: error per wavenumber band, PDEBench's fRMSE and cfdbench's band power, and the
kinetic-energy spectrum. Fields are masked (zero in solids) before the transform, so solids add no
error.

- ``frmse`` is PDEBench's fRMSE exactly (``metric_func``): per field, the squared error amplitudes
  |F(p - y)|^2 of the modes with 0 <= i < ny/2 and 0 <= j < nx/2 only (one quadrant of
  non-negative frequencies) are summed per shell floor(sqrt(i^2 + j^2)) < min(ny, nx)/2; each
  shell's root is divided by nx ny (domain lengths 1, PDEBench's default); a band is the mean of
  those shell values over shells [0, 4), [4, 12) or [12, min(ny, nx)/2); then the mean over fields.
- ``band_rmse`` is cfdbench's: every Fourier mode counts (wavenumbers from ``fftfreq`` on both
  axes), binned by |k| = sqrt(kx^2 + ky^2) in cycles per domain, and a band's value is the RMSE its
  modes carry, so by Parseval the squares of the three bands add up to the mean squared masked
  error over all cells.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Band edges in |k| (cycles per domain; PDEBench's shells: iLow = 4, iHigh = 12).
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


def band_rmse(pred: Tensor, target: Tensor, mask: Tensor, band: str) -> Tensor:
    """cfdbench's band power: the RMSE carried by every mode of one band, mean over fields inside
    the root: (B,)."""
    low, high = BANDS[band]
    k = wavenumber_magnitude(*pred.shape[-2:], device=pred.device)
    selected = ((k >= low) & (k < high)).to(pred.dtype)
    return torch.sqrt((_power((pred - target) * mask) * selected).sum(dim=(2, 3)).mean(dim=1))


def pdebench_shells(height: int, width: int, device: torch.device | None = None) -> tuple[Tensor, int]:
    """PDEBench's fRMSE bins: the shell floor(sqrt(i^2 + j^2)) of each mode (i, j) of the quadrant
    i < H/2, j < W/2 (-1 where it is at or past the last shell), and the number of shells min(H, W)/2."""
    n_shells = min(height // 2, width // 2)
    i = torch.arange(height // 2, device=device, dtype=torch.float64)[:, None]
    j = torch.arange(width // 2, device=device, dtype=torch.float64)[None, :]
    shell = torch.sqrt(i**2 + j**2).floor().long()
    return torch.where(shell < n_shells, shell, -1), n_shells


def frmse(pred: Tensor, target: Tensor, mask: Tensor, band: str) -> Tensor:
    """PDEBench's fRMSE of one 2D sample in one band, (B,). A band without a shell on this grid
    (high, below 26 cells a side) scores 0, where PDEBench's mean over no shells is NaN."""
    h, w = pred.shape[-2:]
    shell, n_shells = pdebench_shells(h, w, device=pred.device)
    squared = torch.fft.fft2((pred - target) * mask)[..., : h // 2, : w // 2].abs() ** 2
    inside = shell >= 0
    per_shell = torch.zeros(*squared.shape[:2], n_shells, dtype=squared.dtype, device=squared.device)
    per_shell.index_add_(2, shell[inside], squared[..., inside])
    amplitude = torch.sqrt(per_shell) / (h * w)
    first, last = (int(min(edge, n_shells)) for edge in BANDS[band])
    if first >= last:
        return torch.zeros(pred.shape[0], dtype=pred.dtype, device=pred.device)
    return amplitude[..., first:last].mean(dim=2).mean(dim=1)


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
