"""Bodies inside the flow: exact grid-aligned blocks and volume-penalised discs.

Both act in every RK3 sub-step, after the velocity update and before the projection. The
momentum they remove per unit time is the force the fluid exerts on the body (pressure and
viscous parts together: the discretisation is conservative, so the sum is the control-volume
balance), so drag and lift come out of the same bookkeeping for every body.

- :class:`GridAlignedObstacle` (a dam barrier): whole cells are solid, every face touching a
  solid cell is closed (its velocity set to 0), and the pressure projection runs on the fluid
  cells only (``masked_pressure``), so no-penetration and mass conservation hold to solver
  tolerance.
- :class:`PenalizedDisc` (a cylinder): Brinkman penalisation, the term -(χ/η) u of a porous body
  of vanishing permeability, with χ each face's volume fraction inside the disc; the projection
  stays the fast direct one on the whole rectangle. The penalty is integrated implicitly with the
  sub-step's own weight, so it is a term of the equations (not a factor per step) and a steady
  flow and its forces do not depend on the time step. The interface is smeared over a cell: the
  wall error is first order (docs/benchmarks.md has the Schäfer–Turek numbers).

Setting values after a Crank–Nicolson solve would make a steady state depend on the step (the
solve couples the forced faces to their neighbours), so a penalised disc runs with the viscous
term explicit (``requires_explicit_viscosity``), and the implicit cases of a grid-aligned body
solve with the closed faces' right-hand side zeroed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError
from cfdbench.solvers.grid import StaggeredGrid


# η as a share of the cell crossing time h / U: 1 % of the flow left inside the body.
PERMEABILITY_PER_CELL_TIME = 0.01


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
        u_forced, v_forced = self.force_u(u), self.force_v(v)
        cell_area = (g.dx * g.dy).reshape(-1)
        removed_x = (u - u_forced).sum(dim=-1).sum(dim=-1)  # rows first: the same order whatever the batch
        removed_y = (v - v_forced).sum(dim=-1).sum(dim=-1)
        return u_forced, v_forced, torch.stack([removed_x * cell_area, removed_y * cell_area], dim=1)

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


class PenalizedDisc(Obstacle):
    """Discs (centre and radius per case, each (B,)) by implicit Brinkman penalisation.

    Each sub-step multiplies the velocity by 1 / (1 + w χ/η): the implicit update of du/dt = -(χ/η) u
    over the sub-step's weight w. ``permeability`` η is a time, per case (B,) or one for all; the
    velocity left inside the body is about η / (h / U) of the flow's, so η should be a small share of
    the time the flow takes to cross a cell (:data:`PERMEABILITY_PER_CELL_TIME`)."""

    requires_explicit_viscosity = True

    def __init__(self, grid: StaggeredGrid, cx: Tensor, cy: Tensor, radius: Tensor, permeability: Tensor | float, samples: int = 8):
        super().__init__(grid)
        self.discs = torch.stack([cx, cy, radius], dim=1).double().cpu().numpy()
        shape = (-1, 1, 1)
        inside = lambda x, y: (x - cx.reshape(shape)) ** 2 + (y - cy.reshape(shape)) ** 2 <= radius.reshape(shape) ** 2  # noqa: E731
        rate = 1 / torch.as_tensor(permeability, dtype=grid.dtype, device=grid.device).reshape(-1, 1, 1)
        self.chi_u = _fraction(grid, grid.u_coordinates(), inside, samples) * rate
        self.chi_v = _fraction(grid, grid.v_coordinates(), inside, samples) * rate
        self.fraction_cells = _fraction(grid, grid.cell_coordinates(), inside, samples)
        self.weight: Tensor | None = None

    def force_u(self, u: Tensor) -> Tensor:
        return u / (1 + self.weight * self.chi_u)

    def force_v(self, v: Tensor) -> Tensor:
        return v / (1 + self.weight * self.chi_v)

    def fluid_cells(self) -> Tensor:
        return self.fraction_cells < 0.5


def _fraction(grid: StaggeredGrid, points: tuple[Tensor, Tensor], inside, samples: int) -> Tensor:
    """Share of each point's dx x dy control volume inside the body, by samples x samples sub-points."""
    x, y = points
    offsets = (torch.arange(samples, dtype=grid.dtype, device=grid.device) + 0.5) / samples - 0.5
    total = torch.zeros_like(x)
    for oy in offsets:
        for ox in offsets:
            total += inside(x + ox * grid.dx, y + oy * grid.dy).to(grid.dtype)
    return total / samples**2
