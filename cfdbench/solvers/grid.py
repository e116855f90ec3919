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
        self.inv_dx, self.inv_dy = 1 / self.dx, 1 / self.dy
        self.inv_dx2, self.inv_dy2 = self.inv_dx**2, self.inv_dy**2
        self.centre_weight = -2 * (self.inv_dx2 + self.inv_dy2)  # the five-point Laplacian's diagonal

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
    def pad_u(self, u: Tensor, walls: WallVelocity) -> Tensor:
        """u with one ghost layer on every side: (B, ny + 2, nu + 2).

        Along y (u is cell-centred there) a wall ghost is 2 * wall speed - neighbour, so the mean on
        the wall is the wall speed (no slip, or a moving lid). Along x (u is staggered there, the
        array holds the wall faces) the ghost extrapolates linearly; it only feeds the fixed boundary
        faces. A channel outlet ghost copies the last face (zero gradient). Periodic axes wrap."""
        return self._face_ghosts(self._cell_ghosts(u, 1, self.bc_y, walls.bottom, walls.top), 2, self.bc_x)

    def pad_v(self, v: Tensor, walls: WallVelocity) -> Tensor:
        """v with one ghost layer on every side: (B, nv + 2, nx + 2) (the rules of :meth:`pad_u`, axes swapped)."""
        return self._face_ghosts(self._cell_ghosts(v, 2, self.bc_x, walls.left, walls.right), 1, self.bc_y)

    @staticmethod
    def _cell_ghosts(a: Tensor, dim: int, bc: str, wall_lo: Tensor, wall_hi: Tensor) -> Tensor:
        """``a`` with a ghost at both ends of its cell-centred axis ``dim``."""
        n = a.shape[dim]
        first, last = a.narrow(dim, 0, 1), a.narrow(dim, n - 1, 1)
        if bc == "periodic":
            return torch.cat([last, a, first], dim=dim)
        lo = 2 * _wall_values(wall_lo, dim) - first
        hi = last if bc == "channel" else 2 * _wall_values(wall_hi, dim) - last
        return torch.cat([lo, a, hi], dim=dim)

    @staticmethod
    def _face_ghosts(a: Tensor, dim: int, bc: str) -> Tensor:
        """``a`` with a ghost at both ends of its staggered axis ``dim`` (the array holds the boundary faces)."""
        n = a.shape[dim]
        first, second, before_last, last = (a.narrow(dim, i, 1) for i in (0, 1, n - 2, n - 1))
        if bc == "periodic":
            return torch.cat([last, a, first], dim=dim)
        lo = 2 * first - second
        hi = last if bc == "channel" else 2 * last - before_last
        return torch.cat([lo, a, hi], dim=dim)

    # ------------------------------------------------------------------ operators
    def divergence(self, u: Tensor, v: Tensor) -> Tensor:
        """Cell-centred divergence (B, ny, nx)."""
        return self.scaled_divergence(u, v, self.inv_dx, self.inv_dy)

    def scaled_divergence(self, u: Tensor, v: Tensor, weight_x: Tensor, weight_y: Tensor) -> Tensor:
        """``weight_x`` Δx(u) + ``weight_y`` Δy(v): the divergence with per-case factors folded in."""
        du = (u[..., 1:] - u[..., :-1]) if self.bc_x != "periodic" else (torch.roll(u, -1, 2) - u)
        dv = (v[:, 1:] - v[:, :-1]) if self.bc_y == "wall" else (torch.roll(v, -1, 1) - v)
        return torch.addcmul(du * weight_x, dv, weight_y)

    def gradient(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """Pressure gradient on the u and v faces; zero on wall and inlet faces (their velocity is
        prescribed); at a channel outlet p = 0 on the boundary face, so the gradient is -2 p / dx."""
        return self.gradient_differences(p, self.inv_dx, self.inv_dy)

    def gradient_differences(self, p: Tensor, weight_x: Tensor, weight_y: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`gradient` with ``weight_x``, ``weight_y`` in place of 1/dx, 1/dy."""
        pad = torch.nn.functional.pad
        if self.bc_x == "wall":
            gx = pad((p[..., 1:] - p[..., :-1]) * weight_x, (1, 1))
        elif self.bc_x == "channel":
            inner = pad((p[..., 1:] - p[..., :-1]) * weight_x, (1, 0))
            gx = torch.cat([inner, p[..., -1:] * (-2 * weight_x)], dim=2)
        else:
            gx = (p - torch.roll(p, 1, 2)) * weight_x
        if self.bc_y == "wall":
            gy = pad((p[:, 1:] - p[:, :-1]) * weight_y, (0, 0, 1, 1))
        else:
            gy = (p - torch.roll(p, 1, 1)) * weight_y
        return gx, gy

    def laplacian(self, padded: Tensor) -> Tensor:
        """Five-point Laplacian of a padded face field, returned on the unpadded points."""
        horizontal = padded[:, 1:-1, 2:] + padded[:, 1:-1, :-2]
        vertical = padded[:, 2:, 1:-1] + padded[:, :-2, 1:-1]
        lap = torch.addcmul(horizontal * self.inv_dx2, vertical, self.inv_dy2)
        return torch.addcmul(lap, padded[:, 1:-1, 1:-1], self.centre_weight)

    def advection(self, up: Tensor, vp: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """``scale`` times the convective terms ∇·(u u) in conservative form, on the u and v faces.

        On the MAC grid this central form conserves kinetic energy when the velocity is discretely
        divergence-free (Morinishi et al. 1998). ``up``/``vp`` are padded fields. Face sums stand for
        twice the averages (the factors of 1/2 are folded into one 1/4), and the corner product u v
        is shared by both components."""
        quarter = 0.25 * scale
        # u-momentum: d(uu)/dx from sums at cell centres, d(uv)/dy from corner products.
        centre_u = up[:, 1:-1, 1:] + up[:, 1:-1, :-1]  # (B, ny, nu + 1)
        centre_u = centre_u * centre_u
        u_at_corners = up[:, 1:] + up[:, :-1]  # (B, ny + 1, nu + 2): at the y-faces
        v_at_corners = vp[..., 1:] + vp[..., :-1]  # (B, nv + 2, nx + 1): at the x-faces
        corner = self._cols_at_x_faces(u_at_corners) * self._rows_at_y_faces(v_at_corners)  # (B, ny + 1, nx + 1)
        nu_, nv_ = self.u_shape[2], self.v_shape[1]
        adv_u = torch.mul(centre_u[..., 1:] - centre_u[..., :-1], quarter * self.inv_dx)
        adv_u = torch.addcmul(adv_u, corner[:, 1:, :nu_] - corner[:, :-1, :nu_], quarter * self.inv_dy)
        # v-momentum: d(vv)/dy from sums at cell centres, d(uv)/dx from the same corner products.
        centre_v = vp[:, 1:, 1:-1] + vp[:, :-1, 1:-1]  # (B, nv + 1, nx)
        centre_v = centre_v * centre_v
        adv_v = torch.mul(centre_v[:, 1:] - centre_v[:, :-1], quarter * self.inv_dy)
        adv_v = torch.addcmul(adv_v, corner[:, :nv_, 1:] - corner[:, :nv_, :-1], quarter * self.inv_dx)
        return adv_u, adv_v

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
