"""Physics metrics: what a prediction gets wrong about the flow, beyond pixels.

- ``divergence``: incompressibility of the predicted velocity, made dimensionless;
- ``ke_drift``: relative kinetic-energy gain (+) or loss (-) against the truth;
- ``strouhal``: the dominant shedding frequency of a probe signal as a Strouhal number.

3D channel statistics live in :mod:`cfdbench.metrics.channel`.

Velocity arrays are (B, 2, H, W) = (u, v) on a uniform cell-centred grid with spacings ``dx``,
``dy`` (B,) in metres; ``mask`` is (B or 1, 1, H, W), 1 in the fluid. Formulas: ``docs/metrics.md``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

TINY = 1e-300


def _interior(mask: Tensor) -> Tensor:
    """Fluid cells whose eight neighbours are fluid too (where the stencils below see no wall): (B, 1, H-2, W-2)."""
    m = mask
    rows = m[..., :-2, :] * m[..., 1:-1, :] * m[..., 2:, :]
    return rows[..., :-2] * rows[..., 1:-1] * rows[..., 2:]


def _smooth(f: Tensor, dim: int) -> Tensor:
    """The 1-2-1 mean along ``dim`` (one cell shorter at each end)."""
    n = f.shape[dim]
    return 0.25 * (f.narrow(dim, 0, n - 2) + 2 * f.narrow(dim, 1, n - 2) + f.narrow(dim, 2, n - 2))


def _gradients(velocity: Tensor, dx: Tensor, dy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """du/dx, du/dy, dv/dx, dv/dy on the interior cells: central differences averaged 1-2-1 across.

    On stored frames, whose cell velocities are the means of their two face velocities
    (:mod:`cfdbench.solvers.resample`), ``du/dx + dv/dy`` is then exactly the face divergence of the
    eight cells around, averaged 1-2-1 in both directions: round-off for a divergence-free flow."""
    u, v = velocity[:, 0], velocity[:, 1]
    dx, dy = dx[:, None, None], dy[:, None, None]

    def ddx(f: Tensor) -> Tensor:
        return _smooth((f[:, :, 2:] - f[:, :, :-2]) / (2 * dx), 1)

    def ddy(f: Tensor) -> Tensor:
        return _smooth((f[:, 2:, :] - f[:, :-2, :]) / (2 * dy), 2)

    return ddx(u), ddy(u), ddx(v), ddy(v)


def divergence(velocity: Tensor, mask: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """RMS of div u over interior fluid cells divided by the RMS velocity-gradient magnitude there:
    0 for a solenoidal field, O(1) for a field that ignores continuity. (B,)"""
    dudx, dudy, dvdx, dvdy = _gradients(velocity, dx, dy)
    inner = _interior(mask)[:, 0].expand_as(dudx)
    n = inner.sum(dim=(1, 2)).clamp(min=1)
    div_ms = ((dudx + dvdy) ** 2 * inner).sum(dim=(1, 2)) / n
    grad_ms = ((dudx**2 + dudy**2 + dvdx**2 + dvdy**2) * inner).sum(dim=(1, 2)) / n
    return torch.sqrt(div_ms / grad_ms.clamp(min=TINY))


def kinetic_energy(velocity: Tensor, mask: Tensor) -> Tensor:
    """Mean kinetic energy per unit mass over the fluid, 1/2 mean (u^2 + v^2): (B,)."""
    return 0.5 * ((velocity**2).sum(dim=1, keepdim=True) * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp(min=1)


def ke_drift(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Signed relative kinetic-energy error (KE_p - KE_y) / KE_y: > 0 gains energy, < 0 loses it. (B,)"""
    true = kinetic_energy(target, mask)
    return (kinetic_energy(pred, mask) - true) / true.clamp(min=TINY)


def dominant_frequency(signal: np.ndarray, dt: float) -> float:
    """Frequency (Hz) of the largest peak of a demeaned, Hann-windowed signal's spectrum, refined by
    a parabola through the peak and its neighbours; NaN for a constant or too short signal."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.size < 8 or not np.all(np.isfinite(signal)) or np.ptp(signal) == 0:
        return float("nan")
    windowed = (signal - signal.mean()) * np.hanning(signal.size)
    power = np.abs(np.fft.rfft(windowed)) ** 2
    peak = int(np.argmax(power[1:]) + 1)
    shift = 0.0
    if 1 <= peak < power.size - 1:
        left, centre, right = np.log(power[peak - 1 : peak + 2] + TINY)
        curvature = left - 2 * centre + right
        shift = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return (peak + shift) / (signal.size * dt)


def strouhal(signal: np.ndarray, dt: float, length: float, velocity: float, min_periods: float = 2.0) -> float:
    """Strouhal number f L / U of a probe signal; NaN when the signal holds fewer than ``min_periods``
    periods of its own dominant frequency (too short to measure it)."""
    frequency = dominant_frequency(signal, dt)
    if not np.isfinite(frequency) or frequency * len(signal) * dt < min_periods:
        return float("nan")
    return frequency * length / velocity
