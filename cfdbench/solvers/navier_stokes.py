"""Incompressible Navier–Stokes on the batched MAC grid: RK3 / Crank–Nicolson projection.

Scheme (Le & Moin 1991, with Wray's low-storage RK3 coefficients): explicit convection,
Crank–Nicolson viscosity solved directly by fast diagonalisation (so high-viscosity cases do
not force tiny steps), and an incremental pressure projection after each of the three
sub-steps. Second order in space and time; the velocity is divergence-free to round-off.

Everything is non-dimensional: ``nu`` is 1/Re of each case. The batch dimension carries a
parameter sweep: cells are shared, spacing, viscosity and wall speeds are per case.

Bodies in the flow (:mod:`cfdbench.solvers.obstacles`) act by direct forcing after each
viscous sub-step; a grid-aligned body also switches the projection to the masked Poisson
problem on the fluid cells (:mod:`cfdbench.solvers.pressure`, iterative), a penalised body
keeps the direct one. The force on the bodies is the momentum the forcing removes per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError
from cfdbench.solvers.fast_diagonalization import FastDiagonalSolver
from cfdbench.solvers.grid import StaggeredGrid, WallVelocity
from cfdbench.solvers.obstacles import Obstacle
from cfdbench.solvers.pressure import MaskedPoisson

# Wray's RK3: u_k = u_{k-1} + dt (gamma_k H_{k-1} + zeta_k H_{k-2}) + (2 alpha_k) dt (viscous, pressure)
RK3_GAMMA = (8 / 15, 5 / 12, 3 / 4)
RK3_ZETA = (0.0, -17 / 60, -5 / 12)
RK3_ALPHA = tuple((g + z) / 2 for g, z in zip(RK3_GAMMA, RK3_ZETA))


@dataclass
class FlowState:
    """Face velocities and cell pressure of every case, plus the elapsed time."""

    u: Tensor
    v: Tensor
    p: Tensor
    time: float = 0.0
    body_force: Tensor | None = None  # (B, 2) force of the fluid on the bodies over the last step (per unit density)


# Which 1D second-difference operator each unknown uses along an axis, by boundary type:
# (pressure, normal velocity, tangential velocity). A channel axis has an inlet at its low end
# and an outlet (p = 0, zero-gradient velocity) at its high end.
OPERATOR_KINDS = {
    "periodic": ("periodic", "periodic", "periodic"),
    "wall": ("neumann", "dirichlet_faces", "dirichlet_cells"),
    "channel": (("neumann", "dirichlet_cells"), ("dirichlet_faces", "neumann"), ("dirichlet_cells", "neumann")),
}
NORMAL_UNKNOWNS = {"periodic": 0, "wall": -1, "channel": 0}  # unknown normal faces minus cells


class NavierStokesSolver:
    """Advances a batch of 2D incompressible flows on one :class:`StaggeredGrid`.

    ``nu``: (B,) kinematic viscosity (1/Re in non-dimensional units).
    ``walls``: tangential wall speeds per case (ignored along periodic axes).
    ``obstacle``: bodies in the flow, or None.
    Inlet profiles and other prescribed normal velocities live in the boundary faces of the
    state (see :meth:`rest_state`); the solver never changes them.
    """

    def __init__(self, grid: StaggeredGrid, nu: Tensor, walls: WallVelocity | None = None, obstacle: Obstacle | None = None):
        if bool((nu <= 0).any()) or not bool(torch.isfinite(nu).all()):
            raise CfdbenchError("viscosity must be positive and finite for every case")
        self.grid = grid
        self.nu = nu.to(dtype=grid.dtype, device=grid.device)
        self.walls = walls or WallVelocity.still(grid.batch, grid.dtype, grid.device)
        g = grid
        kx, ky = OPERATOR_KINDS[g.bc_x], OPERATOR_KINDS[g.bc_y]
        nux, nvy = g.nx + NORMAL_UNKNOWNS[g.bc_x], g.ny + NORMAL_UNKNOWNS[g.bc_y]
        self.pressure = FastDiagonalSolver(kx[0], g.nx, ky[0], g.ny, g.dx, g.dy)
        self.helmholtz_u = FastDiagonalSolver(kx[1], nux, ky[2], g.ny, g.dx, g.dy)
        self.helmholtz_v = FastDiagonalSolver(kx[2], g.nx, ky[1], nvy, g.dx, g.dy)
        self._poisson_denominator = self.pressure.denominator(0.0, -1.0)
        self.obstacle = obstacle
        self.masked_pressure = None
        if obstacle is not None and obstacle.masked_pressure:
            self.masked_pressure = MaskedPoisson(g, obstacle.open_u, obstacle.open_v, obstacle.fluid_cells(), self.pressure)
        self._helmholtz_cache: dict[float, tuple[Tensor, Tensor]] = {}
        self._pressure_operator: MaskedPoisson | None = None
        self._replaced_pressure_solve: Callable[[Tensor], Tensor] | None = None

    # ------------------------------------------------------------------ pressure
    @property
    def pressure_operator(self) -> MaskedPoisson:
        """The projection's Poisson operator on the fluid cells as :class:`MaskedPoisson` (the masked
        one when a body closes faces, else every cell fluid and every face open): what learned
        solvers act on and what :meth:`MaskedPoisson.system` turns into matrices."""
        if self.masked_pressure is not None:
            return self.masked_pressure
        if self._pressure_operator is None:
            g = self.grid
            ones = lambda shape: torch.ones(shape, dtype=torch.bool, device=g.device)  # noqa: E731
            self._pressure_operator = MaskedPoisson(g, ones(g.u_shape), ones(g.v_shape), ones(g.p_shape), self.pressure)
        return self._pressure_operator

    def replace_pressure_solve(self, solve: Callable[[Tensor], Tensor]) -> None:
        """Project with ``solve(divergence) -> phi`` on :attr:`pressure_operator` instead of the exact
        solve (direct or PCG): a hybrid solver, e.g. DCDM with a tolerance or an iteration budget."""
        self._replaced_pressure_solve = solve

    # ------------------------------------------------------------------ state
    def rest_state(self, inflow: Tensor | None = None) -> FlowState:
        """Fluid at rest; ``inflow`` (B, ny) is the inlet u profile of a channel axis."""
        g = self.grid
        u = g.zeros(g.u_shape)
        if inflow is not None:
            if g.bc_x != "channel":
                raise CfdbenchError("an inflow profile needs a 'channel' x axis")
            u[..., 0] = inflow
        return FlowState(u, g.zeros(g.v_shape), g.zeros(g.p_shape))

    def max_speed(self, state: FlowState) -> Tensor:
        """Largest |u|/dx + |v|/dy combination per case, for the CFL condition: (B,)."""
        uc, vc = self.grid.to_cells(state.u, state.v)
        rate = uc.abs() / self.grid.dx + vc.abs() / self.grid.dy
        return rate.amax(dim=(1, 2))

    def stable_dt(self, state: FlowState, cfl: float, reference_speed: float = 1.0) -> float:
        """Largest step with CFL <= ``cfl`` for every case (at least the reference speed counts)."""
        g = self.grid
        floor = reference_speed * (1 / g.dx + 1 / g.dy).reshape(-1)
        rate = torch.maximum(self.max_speed(state), floor).max().item()
        return cfl / rate

    # ------------------------------------------------------------------ time stepping
    def _helmholtz_denominators(self, dt: float, stage: int) -> tuple[Tensor, Tensor]:
        key = (round(dt, 15), stage)
        if key not in self._helmholtz_cache:
            if len(self._helmholtz_cache) > 12:
                self._helmholtz_cache.clear()
            coef = RK3_ALPHA[stage] * dt * self.nu
            self._helmholtz_cache[key] = (
                self.helmholtz_u.denominator(1.0, coef),
                self.helmholtz_v.denominator(1.0, coef),
            )
        return self._helmholtz_cache[key]

    def _explicit_terms(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Convection (-∇·uu) and viscous Laplacian of the current velocity, on the faces."""
        g = self.grid
        up, vp = g.pad_u(u, self.walls), g.pad_v(v, self.walls)
        adv_u, adv_v = g.advection(up, vp)
        return -adv_u, -adv_v, g.laplacian(up), g.laplacian(vp)

    def step(self, state: FlowState, dt: float) -> FlowState:
        """One RK3 step of size ``dt``; returns a new state."""
        g = self.grid
        nu = self.nu.reshape(-1, 1, 1)
        u, v, p = state.u, state.v, state.p
        previous_u = previous_v = impulse = None
        for stage in range(3):
            gamma, zeta, alpha = RK3_GAMMA[stage], RK3_ZETA[stage], RK3_ALPHA[stage]
            conv_u, conv_v, lap_u, lap_v = self._explicit_terms(u, v)
            gx, gy = g.gradient(p)
            rhs_u = dt * (gamma * conv_u - 2 * alpha * gx + 2 * alpha * nu * lap_u)
            rhs_v = dt * (gamma * conv_v - 2 * alpha * gy + 2 * alpha * nu * lap_v)
            if previous_u is not None:
                rhs_u = rhs_u + dt * zeta * previous_u
                rhs_v = rhs_v + dt * zeta * previous_v
            previous_u, previous_v = conv_u, conv_v
            # Crank–Nicolson in delta form: (1 - alpha dt nu L) du = rhs, homogeneous walls.
            den_u, den_v = self._helmholtz_denominators(dt, stage)
            du = self.helmholtz_u.solve(g.interior_u(rhs_u), den_u)
            dv = self.helmholtz_v.solve(g.interior_v(rhs_v), den_v)
            u_star = g.embed_u(g.interior_u(u) + du, u)
            v_star = g.embed_v(g.interior_v(v) + dv, v)
            if self.obstacle is not None:
                u_star, v_star, removed = self.obstacle.apply_forcing(u_star, v_star)
                impulse = removed if stage == 0 else impulse + removed
            u, v, phi = self.project(u_star, v_star, 2 * alpha * dt)
            p = p + phi
        if self.pressure.singular:
            p = p - self._mean_pressure(p)
        body_force = impulse / dt if self.obstacle is not None else None
        return FlowState(u, v, p, state.time + dt, body_force)

    def _mean_pressure(self, p: Tensor) -> Tensor:
        """Mean over the fluid cells: the free constant of a pressure without a p = 0 boundary."""
        if self.masked_pressure is None:
            return p.mean(dim=(1, 2), keepdim=True)
        fluid = self.masked_pressure.fluid
        return (p * fluid).sum(dim=(1, 2), keepdim=True) / fluid.sum(dim=(1, 2), keepdim=True) * fluid

    def project(self, u: Tensor, v: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """Remove the divergent part: u - scale ∇phi with ∇²phi = ∇·u / scale (on the fluid cells only
        when a grid-aligned body closes faces)."""
        g = self.grid
        divergence = g.divergence(u, v) / scale
        if self._replaced_pressure_solve is not None:
            operator = self.pressure_operator
            phi = self._replaced_pressure_solve(divergence)
            gx, gy = g.gradient(phi)
            gx, gy = gx * operator.open_u, gy * operator.open_v
        elif self.masked_pressure is None:
            phi = self.pressure.solve(divergence, self._poisson_denominator)
            gx, gy = g.gradient(phi)
        else:
            mp = self.masked_pressure
            phi = mp.solve(divergence)
            gx, gy = g.gradient(phi)
            gx, gy = gx * mp.open_u, gy * mp.open_v
        return u - scale * gx, v - scale * gy, phi

    def advance(self, state: FlowState, duration: float, cfl: float, reference_speed: float = 1.0) -> FlowState:
        """Advance by exactly ``duration`` in equal steps no larger than the CFL limit."""
        dt_max = self.stable_dt(state, cfl, reference_speed)
        n_steps = max(1, math.ceil(duration / dt_max - 1e-9))
        dt = duration / n_steps
        for _ in range(n_steps):
            state = self.step(state, dt)
        return state

    def diverged(self, state: FlowState, limit: float = 1e3) -> Tensor:
        """Per-case flag: NaN/Inf anywhere or a velocity beyond ``limit`` reference speeds."""
        bad = torch.zeros(self.grid.batch, dtype=torch.bool, device=self.grid.device)
        for field in (state.u, state.v, state.p):
            finite = torch.isfinite(field).flatten(1).all(dim=1)
            bad |= ~finite
        for field in (state.u, state.v):
            bad |= field.abs().flatten(1).amax(dim=1) > limit
        return bad
