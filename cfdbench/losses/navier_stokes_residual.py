"""The incompressible Navier–Stokes residual of a predicted trajectory, in vorticity form.

Spectral-Refiner fine-tunes on the residual of the vorticity equation (``../shared/reference/
models.md`` B.2–B.3), ``R = ∂ω/∂t + u·∇ω − ν Δω`` with ``ω = ∂v/∂x − ∂u/∂y``; the pressure drops out,
so the suite's velocity-only predictions (u, v) are enough. Here it is computed on the stored
cell-centred grids of the suite's flows by second-order central differences, only where every
stencil point is fluid (the mask eroded by two cells), with time derivatives between consecutive
frames and the spatial terms averaged over the two (the trapezoidal rule, second order at the
half step). Body forces act only inside solids, which the erosion excludes; a free surface (the
dam break) has no residual of this form, and :data:`RESIDUAL_PROBLEMS` names the flows that do.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from cfdbench.losses.sobolev import SobolevLoss

RESIDUAL_PROBLEMS = ("cavity", "tube", "cylinder")  # single-phase incompressible flows
FINE_TUNING_ALPHA = 10 ** (-1.5)  # the reference's α for the H^-1 norm of the residual


def _dx(f: Tensor, spacing: Tensor) -> Tensor:
    """Central difference along the last axis, zero on the two edge columns: (..., H, W)."""
    return F.pad((f[..., 2:] - f[..., :-2]), (1, 1)) / (2 * spacing)


def _dy(f: Tensor, spacing: Tensor) -> Tensor:
    return F.pad((f[..., 2:, :] - f[..., :-2, :]), (0, 0, 1, 1)) / (2 * spacing)


def _laplacian(f: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    fx = F.pad(f[..., 2:] - 2 * f[..., 1:-1] + f[..., :-2], (1, 1)) / dx**2
    fy = F.pad(f[..., 2:, :] - 2 * f[..., 1:-1, :] + f[..., :-2, :], (0, 0, 1, 1)) / dy**2
    return fx + fy


def interior_mask(mask: Tensor, cells: int = 2) -> Tensor:
    """Fluid cells whose ``cells``-neighbourhood (a square) is fluid and inside the frame: (B, 1, H, W)."""
    size = 2 * cells + 1
    eroded = -F.max_pool2d(-F.pad(mask.float(), (cells,) * 4, value=0.0), size, stride=1)
    return (eroded > 0.5).to(mask.dtype)


def vorticity_residual(velocity: Tensor, mask: Tensor, dt: Tensor, dx: Tensor, dy: Tensor, nu: Tensor) -> Tensor:
    """R at the half steps of a trajectory ``velocity`` (B, T, 2, H, W) = (u, v) on a uniform grid:
    (B, T - 1, H, W), zero outside the eroded fluid. ``dt``, ``dx``, ``dy``, ``nu``: (B,) physical."""
    shape = (-1, 1, 1, 1)
    dx, dy, dt, nu = (x.reshape(shape).to(velocity.dtype) for x in (dx, dy, dt, nu))
    u, v = velocity[:, :, 0], velocity[:, :, 1]  # (B, T, H, W)
    omega = _dx(v, dx) - _dy(u, dy)
    nonlinear = u * _dx(omega, dx) + v * _dy(omega, dy) - nu * _laplacian(omega, dx, dy)
    residual = (omega[:, 1:] - omega[:, :-1]) / dt + 0.5 * (nonlinear[:, 1:] + nonlinear[:, :-1])
    return residual * interior_mask(mask)


def residual_norm(residual: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """The reference's fine-tuning norm of a residual (B, T', H, W): H^-1 in space (α = 10^-1.5, the
    wavenumbers of the frame's height and width, no cut-off below the grid's), L2 averaged over
    time; (B,)."""
    norms = []
    for b in range(residual.shape[0]):  # each case on its own domain
        sides = (float(height[b]), float(width[b]))
        loss = SobolevLoss(order=-1, alpha=FINE_TUNING_ALPHA, diameter=sides, relative=False)
        norms.append(loss.norm(residual[b : b + 1]) / math.sqrt(residual.shape[1]))
    return torch.cat(norms)
