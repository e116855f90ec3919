"""Batched staggered (MAC) grid and its finite-difference operators.

Pressure lives at cell centres, u on the faces normal to x, v on the faces normal to y.
Divergence and gradient are negative adjoints of each other, so the discrete projection is
exact and there is no checkerboarding. Every operator works on a batch of cases that share
cell counts but may differ in spacing (one physical window per case), so a whole parameter
sweep advances as one tensor.

Boundary conditions are per axis:
  - ``"periodic"``;
  - ``"wall"``: prescribed velocity on both ends (no-slip walls, moving lids, or any Dirichlet
    data such as an exact solution); the normal velocity lives on the boundary faces, which
    the solver never changes, the tangential velocity comes from :class:`WallVelocity`;
  - ``"channel"`` (x only): a velocity inlet at x = 0 (the profile is held in the first u
    face column, tangential velocity zero) and an outlet at x = lx where p = 0 and the
    velocity has zero normal gradient; the outlet face velocity is an unknown.
Along a bounded axis the normal-velocity array includes both boundary faces; along a
periodic axis it holds one face per cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError

BOUNDARY_TYPES = ("periodic", "wall", "channel")


@dataclass
class WallVelocity:
    """Tangential velocity of each wall: one value per case (B,) or a profile per case (B, n).

    ``bottom``/``top`` move along x (they set u; a profile has one value per u column);
    ``left``/``right`` move along y (they set v; one value per v row). A lid-driven cavity
    has ``top`` = lid speed and zeros elsewhere.
    """

    bottom: Tensor
    top: Tensor
    left: Tensor
    right: Tensor

    @classmethod
    def still(cls, batch: int, dtype: torch.dtype, device: torch.device | str) -> "WallVelocity":
        zero = torch.zeros(batch, dtype=dtype, device=device)
        return cls(zero, zero.clone(), zero.clone(), zero.clone())


def _column(values: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1), for broadcasting a per-case scalar over a field."""
    return values.reshape(-1, 1, 1)


def _wall_values(values: Tensor, dim: int) -> Tensor:
    """Wall velocity shaped as the ghost layer along ``dim``: a scalar or a profile per case."""
    return _column(values) if values.ndim == 1 else values.unsqueeze(dim)


class StaggeredGrid:
    """Uniform MAC grid of ``ny`` x ``nx`` cells per case over a per-case window ``lx`` x ``ly``."""

    def __init__(
        self,
        nx: int,
        ny: int,
        lx: Tensor,
        ly: Tensor,
        bc_x: str = "wall",
        bc_y: str = "wall",
    ):
        if bc_x not in BOUNDARY_TYPES or bc_y not in BOUNDARY_TYPES:
            raise CfdbenchError(f"boundary types must be one of {BOUNDARY_TYPES}, got {bc_x!r}, {bc_y!r}")
        if bc_y == "channel":
            raise CfdbenchError("an inlet/outlet ('channel') boundary is supported along x only")
        if nx < 2 or ny < 2:
            raise CfdbenchError(f"a grid needs at least 2x2 cells, got {nx}x{ny}")
        if bool((lx <= 0).any()) or bool((ly <= 0).any()):
            raise CfdbenchError("domain sizes must be positive")
        self.nx, self.ny = nx, ny
        self.bc_x, self.bc_y = bc_x, bc_y
        self.lx, self.ly = lx, ly
        self.dx = _column(lx / nx)
        self.dy = _column(ly / ny)

    # ------------------------------------------------------------------ shapes and coordinates
    @property
    def batch(self) -> int:
        return self.lx.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.lx.dtype

    @property
    def device(self) -> torch.device:
        return self.lx.device

    @property
    def u_shape(self) -> tuple[int, int, int]:
        return (self.batch, self.ny, self.nx + (self.bc_x != "periodic"))

    @property
    def v_shape(self) -> tuple[int, int, int]:
        return (self.batch, self.ny + (self.bc_y == "wall"), self.nx)

    @property
    def p_shape(self) -> tuple[int, int, int]:
        return (self.batch, self.ny, self.nx)

    def zeros(self, shape: tuple[int, int, int]) -> Tensor:
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    def _line(self, count: int, offset: float) -> Tensor:
        return torch.arange(count, dtype=self.dtype, device=self.device) + offset

    def u_coordinates(self) -> tuple[Tensor, Tensor]:
        """(x, y) of the u points, each (B, ny, nu)."""
        x = self._line(self.u_shape[2], 0.0).reshape(1, 1, -1) * self.dx
        y = self._line(self.ny, 0.5).reshape(1, -1, 1) * self.dy
        return torch.broadcast_tensors(x, y)

    def v_coordinates(self) -> tuple[Tensor, Tensor]:
        """(x, y) of the v points, each (B, nv, nx)."""
        x = self._line(self.nx, 0.5).reshape(1, 1, -1) * self.dx
        y = self._line(self.v_shape[1], 0.0).reshape(1, -1, 1) * self.dy
        return torch.broadcast_tensors(x, y)

    def cell_coordinates(self) -> tuple[Tensor, Tensor]:
        """(x, y) of the cell centres, each (B, ny, nx)."""
        x = self._line(self.nx, 0.5).reshape(1, 1, -1) * self.dx
        y = self._line(self.ny, 0.5).reshape(1, -1, 1) * self.dy
        return torch.broadcast_tensors(x, y)

    # ------------------------------------------------------------------ ghost layers
    @staticmethod
    def _pad(a: Tensor, dim: int, bc: str, staggered: bool, wall_lo=None, wall_hi=None) -> Tensor:
        """One ghost layer at both ends of ``dim``.

        periodic: wrap around. Wall, cell-centred along ``dim`` (the wall is half a cell
        beyond the last value): ghost = 2 * wall value - neighbour, so the average on the wall
        equals the wall value (no slip). Wall, staggered along ``dim`` (the array contains
        the wall faces): linear extrapolation; it only feeds the fixed boundary faces.
        Channel: the inlet end is a wall; the outlet ghost copies the last value (zero gradient).
        """
        first, last = a.narrow(dim, 0, 1), a.narrow(dim, a.shape[dim] - 1, 1)
        if bc == "periodic":
            return torch.cat([last, a, first], dim=dim)
        second, before_last = a.narrow(dim, 1, 1), a.narrow(dim, a.shape[dim] - 2, 1)
        if staggered:
            lo = 2 * first - second
            hi = last if bc == "channel" else 2 * last - before_last
        else:
            lo = 2 * _wall_values(wall_lo, dim) - first
            hi = last if bc == "channel" else 2 * _wall_values(wall_hi, dim) - last
        return torch.cat([lo, a, hi], dim=dim)

    def pad_u(self, u: Tensor, walls: WallVelocity) -> Tensor:
        """u with one ghost layer on every side: (B, ny + 2, nu + 2)."""
        u = self._pad(u, 1, self.bc_y, False, walls.bottom, walls.top)
        return self._pad(u, 2, self.bc_x, True)

    def pad_v(self, v: Tensor, walls: WallVelocity) -> Tensor:
        """v with one ghost layer on every side: (B, nv + 2, nx + 2)."""
        v = self._pad(v, 2, self.bc_x, False, walls.left, walls.right)
        return self._pad(v, 1, self.bc_y, True)

    # ------------------------------------------------------------------ operators
    def divergence(self, u: Tensor, v: Tensor) -> Tensor:
        """Cell-centred divergence (B, ny, nx)."""
        du = (u[..., 1:] - u[..., :-1]) if self.bc_x != "periodic" else (torch.roll(u, -1, 2) - u)
        dv = (v[:, 1:] - v[:, :-1]) if self.bc_y == "wall" else (torch.roll(v, -1, 1) - v)
        return du / self.dx + dv / self.dy

    def gradient(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """Pressure gradient on the u and v faces; zero on wall and inlet faces (their velocity is
        prescribed); at a channel outlet p = 0 on the boundary face, so the gradient is -2 p / dx."""
        if self.bc_x == "wall":
            gx = torch.nn.functional.pad((p[..., 1:] - p[..., :-1]) / self.dx, (1, 1))
        elif self.bc_x == "channel":
            inner = torch.nn.functional.pad((p[..., 1:] - p[..., :-1]) / self.dx, (1, 0))
            gx = torch.cat([inner, -2 * p[..., -1:] / self.dx], dim=2)
        else:
            gx = (p - torch.roll(p, 1, 2)) / self.dx
        if self.bc_y == "wall":
            gy = torch.nn.functional.pad((p[:, 1:] - p[:, :-1]) / self.dy, (0, 0, 1, 1))
        else:
            gy = (p - torch.roll(p, 1, 1)) / self.dy
        return gx, gy

    def laplacian(self, padded: Tensor) -> Tensor:
        """Five-point Laplacian of a padded face field, returned on the unpadded points."""
        centre = padded[:, 1:-1, 1:-1]
        d2x = (padded[:, 1:-1, 2:] - 2 * centre + padded[:, 1:-1, :-2]) / self.dx**2
        d2y = (padded[:, 2:, 1:-1] - 2 * centre + padded[:, :-2, 1:-1]) / self.dy**2
        return d2x + d2y

    def advection(self, up: Tensor, vp: Tensor) -> tuple[Tensor, Tensor]:
        """Convective terms ∇·(u u) in conservative form on the u and v faces.

        On the MAC grid this central form conserves kinetic energy when the velocity is
        discretely divergence-free (Morinishi et al. 1998). ``up``/``vp`` are padded fields.
        """
        # u-momentum: d(uu)/dx from cell-centre averages, d(uv)/dy from corner averages.
        uc = 0.5 * (up[:, 1:-1, 1:] + up[:, 1:-1, :-1])
        duu = (uc[..., 1:] ** 2 - uc[..., :-1] ** 2) / self.dx
        u_corner = 0.5 * (up[:, 1:, 1:-1] + up[:, :-1, 1:-1])  # (B, ny + 1, nu)
        v_corner = 0.5 * (vp[..., 1:] + vp[..., :-1])  # (B, nv + 2, nx + 1)
        v_corner = self._rows_at_y_faces(v_corner)[..., : u_corner.shape[2]]
        uv = u_corner * v_corner
        duv = (uv[:, 1:] - uv[:, :-1]) / self.dy
        # v-momentum: d(vv)/dy from cell-centre averages, d(uv)/dx from corner averages.
        vc = 0.5 * (vp[:, 1:, 1:-1] + vp[:, :-1, 1:-1])
        dvv = (vc[:, 1:] ** 2 - vc[:, :-1] ** 2) / self.dy
        v_corner_x = 0.5 * (vp[:, 1:-1, 1:] + vp[:, 1:-1, :-1])  # (B, nv, nx + 1)
        u_corner_y = 0.5 * (up[:, 1:] + up[:, :-1])  # (B, ny + 1, nu + 2)
        u_corner_y = self._cols_at_x_faces(u_corner_y)[:, : v_corner_x.shape[1]]
        vu = v_corner_x * u_corner_y
        dvu = (vu[..., 1:] - vu[..., :-1]) / self.dx
        return duu + duv, dvv + dvu

    def _rows_at_y_faces(self, a: Tensor) -> Tensor:
        """Rows of a padded v-derived array at the y-faces 0..ny (ny + 1 rows)."""
        return a[:, 1:-1] if self.bc_y == "wall" else a[:, 1:]

    def _cols_at_x_faces(self, a: Tensor) -> Tensor:
        """Columns of a padded u-derived array at the x-faces 0..nx (nx + 1 columns)."""
        return a[..., 1:-1] if self.bc_x != "periodic" else a[..., 1:]

    # ------------------------------------------------------------------ interpolation
    def to_cells(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Face velocities averaged to cell centres, each (B, ny, nx)."""
        uc = 0.5 * (u[..., 1:] + u[..., :-1]) if self.bc_x != "periodic" else 0.5 * (u + torch.roll(u, -1, 2))
        vc = 0.5 * (v[:, 1:] + v[:, :-1]) if self.bc_y == "wall" else 0.5 * (v + torch.roll(v, -1, 1))
        return uc, vc

    def interior_u(self, u: Tensor) -> Tensor:
        """The unknown u values (wall and inlet faces excluded; a channel outlet face is unknown)."""
        return {"wall": u[..., 1:-1], "channel": u[..., 1:], "periodic": u}[self.bc_x]

    def interior_v(self, v: Tensor) -> Tensor:
        return v[:, 1:-1] if self.bc_y == "wall" else v

    def embed_u(self, interior: Tensor, boundary: Tensor) -> Tensor:
        """Put interior u values back between the (fixed) wall faces of ``boundary``."""
        if self.bc_x == "periodic":
            return interior
        if self.bc_x == "channel":
            return torch.cat([boundary[..., :1], interior], dim=2)
        return torch.cat([boundary[..., :1], interior, boundary[..., -1:]], dim=2)

    def embed_v(self, interior: Tensor, boundary: Tensor) -> Tensor:
        if self.bc_y == "periodic":
            return interior
        return torch.cat([boundary[:, :1], interior, boundary[:, -1:]], dim=1)
