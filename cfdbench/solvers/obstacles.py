"""Bodies inside the flow: exact grid-aligned blocks and sharp discs by interpolated direct forcing.

Both act in every RK3 sub-step, after the velocity update and before the projection. The
momentum they remove per unit time is the force the fluid exerts on the body (pressure and
viscous parts together: the discretisation is conservative, so the sum is the control-volume
balance), so drag and lift come out of the same bookkeeping for every body.

- :class:`GridAlignedObstacle` (a dam barrier): whole cells are solid, every face touching a
  solid cell is closed (its velocity set to 0), and the pressure projection runs on the fluid
  cells only (``masked_pressure``), so no-penetration and mass conservation hold to solver
  tolerance.
- :class:`InterpolatedDisc` (a cylinder): points inside the disc are set to 0 and the first points
  outside to the value that the velocity, continued quadratically along the wall normal, has there;
  the wall sits where the geometry puts it, within a cell. The projection stays the fast direct one
  on the whole rectangle and enforces continuity in every cell with a free face.

Setting values after a Crank–Nicolson solve would make a steady state depend on the step (the
solve couples the forced faces to their neighbours), so a disc runs with the viscous term explicit
(``requires_explicit_viscosity``), and the implicit cases of a grid-aligned body solve with the
closed faces' right-hand side zeroed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError
from cfdbench.solvers.geometry import fluid_fraction, is_fluid_cell
from cfdbench.solvers.grid import StaggeredGrid


class Obstacle:
    """A body: which faces it forces and to what, the force bookkeeping, and its fluid cells.

    With ``masked_pressure`` the projection corrects only the ``open_u``/``open_v`` faces (those the
    body does not force) and enforces continuity on the ``pressure_cells()`` (cells with an open
    face): the forced values survive the projection, so a steady flow is a fixed point of the step
    and the pressure correction vanishes there."""

    masked_pressure = False
    requires_explicit_viscosity = False

    def __init__(self, grid: StaggeredGrid):
        self.grid = grid

    def apply_forcing(self, u: Tensor, v: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Velocities with the body's forcing applied over a sub-step of implicit weight ``weight``
        (B, 1, 1), and the removed momentum per case (B, 2)."""
        g = self.grid
        self.weight = weight
        u_forced, v_forced = self.force(u, v)
        cell_area = (g.dx * g.dy).reshape(-1)
        removed_x = (u - u_forced).sum(dim=-1).sum(dim=-1)  # rows first: the same order whatever the batch
        removed_y = (v - v_forced).sum(dim=-1).sum(dim=-1)
        return u_forced, v_forced, torch.stack([removed_x * cell_area, removed_y * cell_area], dim=1)

    def force(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Both components forced (by default each on its own)."""
        return self.force_u(u), self.force_v(v)

    def force_u(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def force_v(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def fluid_cells(self) -> Tensor:
        """(B, ny, nx) bool: cells counted as fluid (for masks and statistics)."""
        raise NotImplementedError

    def pressure_cells(self) -> Tensor:
        """(B, ny, nx) bool: the unknowns of a masked projection."""
        return self.fluid_cells()

    def continuity_cells(self) -> Tensor | None:
        """(B, ny, nx) 0/1 in the grid's dtype: the cells where the projection enforces continuity, or
        None for all of them."""
        return None


class GridAlignedObstacle(Obstacle):
    """Solid cells given exactly; faces touching a solid cell are closed."""

    masked_pressure = True

    def __init__(self, grid: StaggeredGrid, solid: Tensor):
        if solid.shape != grid.p_shape or solid.dtype != torch.bool:
            raise CfdbenchError(f"solid must be a bool tensor of the cell shape {grid.p_shape}")
        super().__init__(grid)
        self.solid = solid
        self.open_u, self.open_v = self._open_faces(grid, solid)
        self._keep_u, self._keep_v = self.open_u.to(grid.dtype), self.open_v.to(grid.dtype)

    @staticmethod
    def _open_faces(grid: StaggeredGrid, solid: Tensor) -> tuple[Tensor, Tensor]:
        """A face is open when no cell beside it is solid (domain-boundary faces keep their own rule)."""
        if grid.bc_x == "periodic" or grid.bc_y == "periodic":
            raise CfdbenchError("grid-aligned obstacles need bounded axes")
        # Pad with fluid beyond the domain so boundary faces only look at their inner cell.
        padded_x = torch.nn.functional.pad(solid, (1, 1), value=False)
        padded_y = torch.nn.functional.pad(solid, (0, 0, 1, 1), value=False)
        open_u = ~(padded_x[..., 1:] | padded_x[..., :-1])
        open_v = ~(padded_y[:, 1:] | padded_y[:, :-1])
        return open_u, open_v

    def force_u(self, u: Tensor) -> Tensor:
        return u * self._keep_u

    def force_v(self, v: Tensor) -> Tensor:
        return v * self._keep_v

    def fluid_cells(self) -> Tensor:
        return ~self.solid


class InterpolatedDisc(Obstacle):
    """Discs (centre and radius per case, each (B,)) by direct forcing with interpolation along the
    wall normal: a sharp, sub-cell boundary (Fadlun et al. 2000; Balaras 2004).

    For each velocity component, points inside a disc are set to 0 and the *forcing points* (outside,
    with a neighbour inside) to the value of the quadratic that is 0 on the wall and passes through the
    velocity at two *image points*, Δ and 2Δ further out along the wall normal (Δ = √(dx² + dy²), so no
    image stencil reaches inside the body; each image value bilinear in its four surrounding points):
    ``u_f = 2d/(d+Δ) u(image 1) - d/(d+2Δ) u(image 2)``, ``d`` the forcing point's distance to the wall.
    The quadratic is exact for the wall-normal component, which leaves a wall quadratically.
    Image stencils may hold other forcing points, so each case's forcing values solve a small linear
    system ``u_F = S_F u_F + S_r u_r`` exactly (its rows of ``S_F`` sum to at most 2d/(d+Δ) < 1).

    The projection stays the fast direct one on the whole rectangle, enforcing continuity in every
    cell with a free face (:meth:`continuity_cells`). At a steady state the pressure correction then
    vanishes, so the forced values hold exactly and the state does not depend on the time step;
    moving the disc within a cell moves the wall it imposes, not a staircase. Each case is planned
    and solved on its own, so its bytes do not depend on the cases batched with it.
    """

    requires_explicit_viscosity = True

    def __init__(self, grid: StaggeredGrid, cx: Tensor, cy: Tensor, radius: Tensor):
        if grid.bc_x == "periodic" or grid.bc_y == "periodic":
            raise CfdbenchError("a disc needs bounded axes (walls or an inlet and outlet)")
        super().__init__(grid)
        self.discs = torch.stack([cx, cy, radius], dim=1).double().cpu().numpy()
        self._u = _NormalInterpolation(grid, grid.u_coordinates(), self.discs)
        self._v = _NormalInterpolation(grid, grid.v_coordinates(), self.discs)
        self._fluid = torch.as_tensor(np.stack([_disc_fluid_cells(grid, b, disc) for b, disc in enumerate(self.discs)]), device=grid.device)
        free_u, free_v = self._u.keep, self._v.keep
        self._continuity = torch.clamp(free_u[..., 1:] + free_u[..., :-1] + free_v[:, 1:] + free_v[:, :-1], max=1.0)
        closed = self._continuity == 0
        self._outward_u = _outward_faces(closed, dim=2).to(grid.dtype)
        self._outward_v = _outward_faces(closed, dim=1).to(grid.dtype)
        lengths = _face_sum(self._outward_u.abs(), self._outward_v.abs(), grid)
        self._layer_perimeter = lengths.clamp(min=1e-300).reshape(-1, 1, 1)

    def continuity_cells(self) -> Tensor:
        """Cells with a free face. Where the body forces all four faces, the forced values need not
        conserve mass; projecting that divergence away would undo the forcing at every sub-step and
        leave the steady state a cycle of forcing and projection."""
        return self._continuity

    def force(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Each component forced, then the mass the forced values let through the wall layer (the
        cells whose every face is forced, where continuity is not enforced) taken back by one uniform
        normal velocity over the layer's outer faces: left in, that leak is a source of a fraction
        of a percent of the inflow, which shifts the drag by as much through the outlet's momentum."""
        u, v = self._u.apply(u), self._v.apply(v)
        leak = _face_sum(u * self._outward_u, v * self._outward_v, self.grid)
        correction = leak.reshape(-1, 1, 1) / self._layer_perimeter
        return u - correction * self._outward_u, v - correction * self._outward_v

    def force_u(self, u: Tensor) -> Tensor:
        return self._u.apply(u)

    def force_v(self, v: Tensor) -> Tensor:
        return self._v.apply(v)

    def fluid_cells(self) -> Tensor:
        """Cells at least half outside the disc, as the stored masks count them."""
        return self._fluid


def _outward_faces(closed: Tensor, dim: int) -> Tensor:
    """(B, ...) +1 on the faces (0..n along ``dim``, a bounded axis) with a ``closed`` cell below them
    and an open one above, -1 for the converse, 0 elsewhere: the closed region's outward orientation."""
    below = torch.nn.functional.pad(closed, (1, 0) if dim == 2 else (0, 0, 1, 0), value=False)
    above = torch.nn.functional.pad(closed, (0, 1) if dim == 2 else (0, 0, 0, 1), value=False)
    return (below & ~above).to(torch.int8) - (~below & above).to(torch.int8)


def _face_sum(on_u: Tensor, on_v: Tensor, grid: StaggeredGrid) -> Tensor:
    """Σ over u faces of ``on_u`` dy plus Σ over v faces of ``on_v`` dx, per case (B,): a flux, rows first
    (the same order whatever the batch)."""
    return on_u.sum(dim=-1).sum(dim=-1) * grid.dy.reshape(-1) + on_v.sum(dim=-1).sum(dim=-1) * grid.dx.reshape(-1)


def _disc_fluid_cells(grid: StaggeredGrid, case: int, disc: np.ndarray) -> np.ndarray:
    """(ny, nx) bool: the cells of case ``case`` at least half outside its disc (cx, cy, radius)."""
    lx, ly = float(grid.lx.reshape(-1)[case]), float(grid.ly.reshape(-1)[case])
    edges_x, edges_y = np.linspace(0.0, lx, grid.nx + 1), np.linspace(0.0, ly, grid.ny + 1)
    return is_fluid_cell(fluid_fraction(edges_x, edges_y, disc=tuple(disc)))


class _NormalInterpolation:
    """The direct forcing of one velocity component on its own points (see :class:`InterpolatedDisc`).

    Planned once in float64 on the CPU. Per case: which points keep their value, the flat indices of
    the forcing points, each one's two image stencils on free points (eight indices and weights, the
    quadratic's factors included) and the inverse of ``I - S_F``."""

    def __init__(self, grid: StaggeredGrid, points: tuple[Tensor, Tensor], discs: np.ndarray):
        x, y = (c.double().cpu().numpy() for c in points)
        dx, dy = (d.reshape(-1).double().cpu().numpy() for d in (grid.dx, grid.dy))
        plans = [_forcing_plan(x[b], y[b], dx[b], dy[b], discs[b]) for b in range(x.shape[0])]
        as_t = lambda a, kind=grid.dtype: torch.as_tensor(a, dtype=kind, device=grid.device)  # noqa: E731
        self.keep = as_t(np.stack([p["keep"] for p in plans]))
        self.cases = [
            (as_t(p["forcing"], torch.long), as_t(p["stencil"], torch.long), as_t(p["weights"]), as_t(p["solve"])) for p in plans
        ]

    def apply(self, field: Tensor) -> Tensor:
        forced = (field * self.keep).flatten(1)  # solid and forcing points zeroed
        for b, (forcing, stencil, weights, solve) in enumerate(self.cases):
            if len(forcing):
                free = forced[b]
                forced[b, forcing] = solve @ (free[stencil] * weights).sum(dim=-1)
        return forced.reshape(field.shape)


def _forcing_plan(x: np.ndarray, y: np.ndarray, dx: float, dy: float, disc: np.ndarray) -> dict:
    """Solid and forcing points of one component's (rows, cols) points for one case's disc."""
    cx, cy, radius = disc
    distance = np.hypot(x - cx, y - cy) - radius  # signed distance to the wall
    solid = distance < 0
    padded = np.pad(solid, 1, constant_values=False)
    forcing_mask = ~solid & (padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:])
    rows, cols = x.shape
    forcing = np.flatnonzero(forcing_mask)
    position = {int(p): k for k, p in enumerate(forcing)}
    reach = float(np.hypot(dx, dy))
    stencil, weights = np.zeros((len(forcing), 8), dtype=np.int64), np.zeros((len(forcing), 8))
    coupling = np.zeros((len(forcing), len(forcing)))
    for k, flat in enumerate(forcing):
        d = distance.flat[flat]
        normal = np.array([x.flat[flat] - cx, y.flat[flat] - cy]) / (d + radius)
        # The quadratic through 0 on the wall and the values at distances d + Δ and d + 2Δ, at d.
        images = [(reach, 2 * d / (d + reach)), (2 * reach, -d / (d + 2 * reach))]
        for n_image, (offset, scale) in enumerate(images):
            fx = (x.flat[flat] + offset * normal[0] - x[0, 0]) / dx
            fy = (y.flat[flat] + offset * normal[1] - y[0, 0]) / dy
            i, j = int(np.floor(fx)), int(np.floor(fy))
            if not (0 <= i < cols - 1 and 0 <= j < rows - 1):
                raise CfdbenchError("a disc reaches within a few cells of the domain's edge: move it inward or refine the grid")
            a, c = fx - i, fy - j
            corners = ((j, i, (1 - a) * (1 - c)), (j, i + 1, a * (1 - c)), (j + 1, i, (1 - a) * c), (j + 1, i + 1, a * c))
            for m, (jj, ii, w) in enumerate(corners):
                point = jj * cols + ii
                if solid.flat[point]:
                    raise CfdbenchError("internal: an image stencil reaches inside the disc")
                if point in position:
                    coupling[k, position[point]] += scale * w
                else:
                    stencil[k, 4 * n_image + m], weights[k, 4 * n_image + m] = point, scale * w
    return {
        "keep": (~solid & ~forcing_mask).astype(np.float64),
        "forcing": forcing,
        "stencil": stencil,
        "weights": weights,
        "solve": np.linalg.inv(np.eye(len(forcing)) - coupling),
    }
