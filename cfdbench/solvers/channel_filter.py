"""DNS channel state -> filtered coarse frames (the IFactFormer-style data of the channel datasets).

x and z (periodic): a filter of the coarse cell width Δ̄ applied in Fourier space, either a
top-hat (transfer function sinc(kΔ̄/2)) or a sharp cut-off at the coarse Nyquist wavenumber,
then evaluated at the coarse cell centres. y: cubic-spline interpolation of the DNS profile
(velocity zero on the walls) onto coarse nodes that include both walls, tanh-clustered or
uniform. Every step is a fixed linear map, built once as a small matrix and applied with a
tensor contraction, so filtering runs on the solver's device.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from torch import Tensor

from cfdbench.errors import CfdbenchError
from cfdbench.solvers.channel import ChannelGrid, ChannelState

FILTERS = ("top-hat", "sharp")


@dataclass(frozen=True)
class CoarseGrid:
    """Stored frame grid: ``nx`` x ``nz`` cell centres, ``ny`` wall-normal nodes including the walls."""

    nx: int
    ny: int
    nz: int
    y_stretching: float = 0.0  # tanh clustering of the nodes; 0 = uniform
    filter: str = "top-hat"

    def __post_init__(self) -> None:
        if self.filter not in FILTERS:
            raise CfdbenchError(f"unknown channel filter {self.filter!r}; choose from {list(FILTERS)}")
        if min(self.nx, self.nz) < 1 or self.ny < 3:
            raise CfdbenchError(f"a coarse channel grid needs nx, nz >= 1 and ny >= 3, got {self.nx} x {self.ny} x {self.nz}")

    def x(self, lx: float) -> np.ndarray:
        return (np.arange(self.nx) + 0.5) * lx / self.nx

    def z(self, lz: float) -> np.ndarray:
        return (np.arange(self.nz) + 0.5) * lz / self.nz

    def y(self) -> np.ndarray:
        eta = np.linspace(-1.0, 1.0, self.ny)
        return eta if self.y_stretching == 0 else np.tanh(self.y_stretching * eta) / math.tanh(self.y_stretching)

    def describe(self, grid: ChannelGrid) -> dict:
        """What the stored frames are, for the files and the card: filter, its widths, the grids."""
        return {
            **asdict(self),
            "filter_width_x": grid.lx / self.nx,
            "filter_width_z": grid.lz / self.nz,
            "dns_grid": asdict(grid),
        }


def periodic_filter_matrix(n_fine: int, length: float, fine_offset: float, points: np.ndarray, width: float, kind: str):
    """(len(points), n_fine): filtered Fourier interpolant of periodic samples at ``fine_offset + j·h``,
    evaluated at ``points``. The transfer function is sinc(kΔ̄/2) (top-hat) or 1 for |k| below the
    coarse Nyquist wavenumber π/Δ̄ (sharp)."""
    h = length / n_fine
    modes = np.arange(n_fine // 2 + 1)
    k = 2 * np.pi * modes / length
    weights = np.where((modes == 0) | ((n_fine % 2 == 0) & (modes == n_fine // 2)), 1.0, 2.0)
    transfer = np.sinc(k * width / (2 * np.pi)) if kind == "top-hat" else (k <= np.pi / width + 1e-12).astype(float)
    distance = points[:, None, None] - (fine_offset + h * np.arange(n_fine))[None, :, None]
    return (weights * transfer * np.cos(k * distance)).sum(axis=-1) / n_fine


def spline_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(len(target), len(source)): not-a-knot cubic-spline interpolation as a linear map."""
    return CubicSpline(source, np.eye(len(source)), axis=0)(target)


class ChannelFilter:
    """Filters channel states of one :class:`ChannelGrid` to a :class:`CoarseGrid`."""

    def __init__(self, grid: ChannelGrid, coarse: CoarseGrid, dtype: torch.dtype, device: torch.device | str):
        if coarse.nx > grid.nx or coarse.nz > grid.nz:
            raise CfdbenchError(f"the coarse grid ({coarse.nx} x {coarse.nz}) is finer than the DNS ({grid.nx} x {grid.nz})")
        self.grid, self.coarse = grid, coarse
        tensor = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        xc, zc = coarse.x(grid.lx), coarse.z(grid.lz)
        width_x, width_z = grid.lx / coarse.nx, grid.lz / coarse.nz
        # Each component is filtered from where it lives: u from the x-faces, w from the z-faces.
        self.x_map = tensor(periodic_filter_matrix(grid.nx, grid.lx, 0.5 * grid.dx, xc, width_x, coarse.filter))
        self.x_map_faces = tensor(periodic_filter_matrix(grid.nx, grid.lx, 0.0, xc, width_x, coarse.filter))
        self.z_map = tensor(periodic_filter_matrix(grid.nz, grid.lz, 0.5 * grid.dz, zc, width_z, coarse.filter))
        self.z_map_faces = tensor(periodic_filter_matrix(grid.nz, grid.lz, 0.0, zc, width_z, coarse.filter))
        centres, faces, target = grid.y_centres(), grid.y_faces(), coarse.y()
        with_walls = np.concatenate([[-1.0], centres, [1.0]])
        self.y_velocity = tensor(spline_matrix(with_walls, target)[:, 1:-1])  # wall values are zero
        self.y_faces = tensor(spline_matrix(faces, target)[:, 1:-1])  # v: zero on the wall faces
        self.y_pressure = tensor(spline_matrix(centres, target))

    def __call__(self, state: ChannelState) -> dict[str, Tensor]:
        """Coarse frames (B, nz, ny, nx) of u, v, w and p."""
        fields = {
            "u": (state.u, self.x_map_faces, self.y_velocity, self.z_map),
            "v": (state.v[:, :, 1:-1], self.x_map, self.y_faces, self.z_map),
            "w": (state.w, self.x_map, self.y_velocity, self.z_map_faces),
            "p": (state.p, self.x_map, self.y_pressure, self.z_map),
        }
        return {
            name: torch.einsum("ax,cy,dz,bxyz->bdca", x_map, y_map, z_map, values)
            for name, (values, x_map, y_map, z_map) in fields.items()
        }
