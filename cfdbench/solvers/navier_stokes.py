"""Incompressible Navier–Stokes on the batched MAC grid: low-storage RK3 with a projection per sub-step.

Scheme (Le & Moin 1991, with Wray's low-storage RK3 coefficients): explicit convection and an
incremental pressure projection after each of the three sub-steps. Second order in space and
time; the velocity is divergence-free to round-off.

The viscous term is chosen per case for cost at equal accuracy. Where RK3 is stable with it
explicit at the convective step (a cell Reynolds number of order one or more), it is advanced
with the convection and a step costs three Poisson solves. Where viscosity would limit the
step (creeping cases, fine grids), it is Crank–Nicolson, solved directly (two Helmholtz solves
per sub-step), so those cases keep the convective step. The choice depends on the case alone,
never on the cases batched with it.

Every case advances with its own time step (:meth:`NavierStokesSolver.advance` counts steps
per case and holds cases that have arrived), so a case's numbers do not depend on which batch,
shard or rank computed it.

Everything is non-dimensional: ``nu`` is 1/Re of each case. The batch dimension carries a
parameter sweep: cells are shared; spacing, viscosity, wall speeds and step sizes are per case.

Bodies in the flow (:mod:`cfdbench.solvers.obstacles`) act in every sub-step, before the
projection; a grid-aligned body also switches the projection to the masked Poisson problem on
the fluid cells (:mod:`cfdbench.solvers.pressure`). The force on the bodies is the momentum the
forcing removes per unit time.
"""

from __future__ import annotations

import warnings
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
# Largest ν dt λ_max (λ_max = 4/dx² + 4/dy²) at which RK3 with explicit viscosity stays stable up to a
# convective CFL of 1.5 (a von Neumann scan of the 2D central scheme gives 2.21 there, 2.51 at CFL 0).
EXPLICIT_VISCOUS_LIMIT = 2.0
EXPLICIT_VISCOUS_MAX_CFL = 1.5
RK3_CFL_LIMIT = 3**0.5  # RK3 on the imaginary axis: the convective limit
# A case goes explicit when that allows at least this share of its convective step: an explicit step
# costs three Poisson solves, an implicit one three Poisson and six Helmholtz solves.
EXPLICIT_STEP_SHARE = 0.6


@dataclass
class FlowState:
    """Face velocities and cell pressure of every case, plus the elapsed time."""

    u: Tensor
    v: Tensor
    p: Tensor
    time: float = 0.0
    body_force: Tensor | None = None  # (B, 2) force of the fluid on the bodies over the last step (per unit density)
    steps: Tensor | None = None  # (B,) steps each case took in the last advance


@dataclass
class StageWeights:
    """Per-case factors (B, 1, 1) of one RK3 sub-step, folded with the grid spacing."""

    gamma: Tensor  # gamma_k dt
    zeta: Tensor  # zeta_k dt
    pressure: Tensor  # 2 alpha_k dt: the sub-step's implicit weight (pressure, Crank–Nicolson, bodies)
    viscous: Tensor  # 2 alpha_k dt nu where viscosity is Crank–Nicolson, else 0
    gradient_x: Tensor  # 2 alpha_k dt / dx
    gradient_y: Tensor
    divergence_x: Tensor  # 1 / (2 alpha_k dt dx)
    divergence_y: Tensor


@dataclass
class TimeStep:
    """One step size per case and everything a sub-step needs from it, computed once per size.

    ``explicit`` marks the cases whose viscous term is advanced explicitly; the others solve
    Crank–Nicolson Helmholtz problems with the per-case denominators ``helmholtz[stage]``.
    """

    dt: Tensor  # (B, 1, 1)
    explicit: Tensor  # (B, 1, 1) bool
    explicit_nu: Tensor  # (B, 1, 1): nu where explicit, 0 where implicit
    implicit_nu: Tensor  # (B, 1, 1): nu where implicit, 0 where explicit
    helmholtz: list[tuple[Tensor, Tensor]] | None  # per stage (u, v) denominators; None when all explicit
    stages: list[StageWeights]


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

    def __init__(
        self,
        grid: StaggeredGrid,
        nu: Tensor,
        walls: WallVelocity | None = None,
        obstacle: Obstacle | None = None,
        compile: bool = False,
    ):
        if bool((nu <= 0).any()) or not bool(torch.isfinite(nu).all()):
            raise CfdbenchError("viscosity must be positive and finite for every case")
        self.grid = grid
        self.compiled = compile
        self._stepper = _CompiledStep(self._rk3) if compile else self._rk3
        self.nu = nu.to(dtype=grid.dtype, device=grid.device).reshape(-1, 1, 1)
        self.walls = walls or WallVelocity.still(grid.batch, grid.dtype, grid.device)
        g = grid
        kx, ky = OPERATOR_KINDS[g.bc_x], OPERATOR_KINDS[g.bc_y]
        nux, nvy = g.nx + NORMAL_UNKNOWNS[g.bc_x], g.ny + NORMAL_UNKNOWNS[g.bc_y]
        self.pressure = FastDiagonalSolver(kx[0], g.nx, ky[0], g.ny, g.dx, g.dy)
        self._helmholtz_kinds = ((kx[1], nux, ky[2], g.ny), (kx[2], g.nx, ky[1], nvy))
        self._helmholtz_solvers: tuple[FastDiagonalSolver, FastDiagonalSolver] | None = None
        self._poisson_denominator = self.pressure.denominator(0.0, -1.0)
        self._singular = self.pressure.singular
        self.obstacle = obstacle
        self.masked_pressure = None
        if obstacle is not None and obstacle.masked_pressure:
            self.masked_pressure = MaskedPoisson(g, obstacle.open_u, obstacle.open_v, obstacle.pressure_cells(), self.pressure)
        self._pressure_operator: MaskedPoisson | None = None
        self._replaced_pressure_solve: Callable[[Tensor], Tensor] | None = None
        self._viscous_eigenvalue = (4 / g.dx**2 + 4 / g.dy**2).reshape(-1, 1, 1)
        self._explicit_viscosity_only = obstacle is not None and obstacle.requires_explicit_viscosity
        # Cells whose every face a body forces keep the divergence the forcing gives them (a mass
        # source inside the wall layer): the projection enforces continuity only where a face is free.
        self._continuity_cells = obstacle.continuity_cells() if obstacle is not None else None
        self._unknown_u = g.embed_u(torch.ones_like(g.interior_u(g.zeros(g.u_shape))), g.zeros(g.u_shape))
        self._unknown_v = g.embed_v(torch.ones_like(g.interior_v(g.zeros(g.v_shape))), g.zeros(g.v_shape))

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

    def stable_dt(self, state: FlowState, cfl: float, reference_speed: float = 1.0) -> Tensor:
        """Per-case step (B,): CFL <= ``cfl`` (at least the reference speed counts), shortened to the
        explicit-viscous limit where that costs less than an implicit step (see :class:`TimeStep`)."""
        g = self.grid
        if not 0 < cfl <= RK3_CFL_LIMIT:
            raise CfdbenchError(f"cfl must be in (0, {RK3_CFL_LIMIT:.3f}] (RK3 with central convection), got {cfl}")
        floor = reference_speed * (1 / g.dx + 1 / g.dy).reshape(-1)
        convective = cfl / torch.maximum(self.max_speed(state), floor)
        viscous = self._explicit_viscous_dt().reshape(-1)
        if self._explicit_viscosity_only:
            if cfl > EXPLICIT_VISCOUS_MAX_CFL:
                raise CfdbenchError(f"cfl {cfl:g} > {EXPLICIT_VISCOUS_MAX_CFL}: a disc needs explicit viscosity, stable up to that CFL")
            return torch.minimum(convective, viscous)
        go_explicit = (viscous >= EXPLICIT_STEP_SHARE * convective) & (cfl <= EXPLICIT_VISCOUS_MAX_CFL)
        return torch.where(go_explicit, torch.minimum(convective, viscous), convective)

    def _explicit_viscous_dt(self) -> Tensor:
        return EXPLICIT_VISCOUS_LIMIT / (self.nu * self._viscous_eigenvalue)

    def time_step(self, dt: Tensor | float) -> TimeStep:
        """Coefficients of a step of ``dt`` (a float, or one per case): which cases are explicit and the
        implicit ones' Helmholtz denominators."""
        g = self.grid
        dt = torch.as_tensor(dt, dtype=g.dtype, device=g.device).expand(g.batch).reshape(-1, 1, 1).clone()
        explicit = dt <= self._explicit_viscous_dt() * (1 + 1e-6)
        if self._explicit_viscosity_only and not bool(explicit.all()):
            raise CfdbenchError("a step beyond the explicit-viscous limit: a disc needs explicit viscosity (use stable_dt)")
        zero = torch.zeros_like(self.nu)
        explicit_nu, implicit_nu = torch.where(explicit, self.nu, zero), torch.where(explicit, zero, self.nu)
        helmholtz = None
        if not bool(explicit.all()):
            solvers = self._helmholtz()
            helmholtz = [tuple(s.denominator(1.0, RK3_ALPHA[k] * dt * implicit_nu) for s in solvers) for k in range(3)]
        stages = []
        for gamma, zeta, alpha in zip(RK3_GAMMA, RK3_ZETA, RK3_ALPHA):
            weight = 2 * alpha * dt
            stages.append(
                StageWeights(
                    gamma * dt,
                    zeta * dt,
                    weight,
                    weight * implicit_nu,
                    weight * g.inv_dx,
                    weight * g.inv_dy,
                    g.inv_dx / weight,
                    g.inv_dy / weight,
                )
            )
        return TimeStep(dt, explicit, explicit_nu, implicit_nu, helmholtz, stages)

    def _helmholtz(self) -> tuple[FastDiagonalSolver, FastDiagonalSolver]:
        if self._helmholtz_solvers is None:
            g = self.grid
            (kux, nux, kuy, nuy), (kvx, nvx, kvy, nvy) = self._helmholtz_kinds
            self._helmholtz_solvers = (
                FastDiagonalSolver(kux, nux, kuy, nuy, g.dx, g.dy),
                FastDiagonalSolver(kvx, nvx, kvy, nvy, g.dx, g.dy),
            )
        return self._helmholtz_solvers

    # ------------------------------------------------------------------ time stepping
    def step(self, state: FlowState, dt: float | Tensor | TimeStep) -> FlowState:
        """One RK3 step of size ``dt`` (a float, one per case (B,), or a :class:`TimeStep`)."""
        if not isinstance(dt, TimeStep):
            dt = self.time_step(dt)
        u, v, p, impulse = self._stepper(state.u, state.v, state.p, dt)
        body_force = impulse / dt.dt.reshape(-1, 1) if impulse is not None else None
        return FlowState(u, v, p, state.time + float(dt.dt.max()), body_force)

    def _rk3(self, u: Tensor, v: Tensor, p: Tensor, ts: TimeStep):
        """The three sub-steps; returns u, v, p and the momentum the bodies removed (or None)."""
        g = self.grid
        history_u = history_v = impulse = None
        for stage, w in enumerate(ts.stages):
            up, vp = g.pad_u(u, self.walls), g.pad_v(v, self.walls)
            minus_adv_u, minus_adv_v = g.advection(up, vp, scale=-1.0)
            lap_u, lap_v = g.laplacian(up), g.laplacian(vp)
            # H: what RK3 carries from sub-step to sub-step (convection, plus viscosity where explicit).
            h_u = torch.addcmul(minus_adv_u, ts.explicit_nu, lap_u)
            h_v = torch.addcmul(minus_adv_v, ts.explicit_nu, lap_v)
            gx, gy = g.gradient_differences(p, w.gradient_x, w.gradient_y)
            rhs_u = torch.addcmul(torch.sub(h_u * w.gamma, gx), lap_u, w.viscous)
            rhs_v = torch.addcmul(torch.sub(h_v * w.gamma, gy), lap_v, w.viscous)
            if history_u is not None:
                rhs_u = torch.addcmul(rhs_u, history_u, w.zeta)
                rhs_v = torch.addcmul(rhs_v, history_v, w.zeta)
            history_u, history_v = h_u, h_v
            if ts.helmholtz is not None:  # Crank–Nicolson in delta form: (1 - alpha dt nu L) du = rhs
                rhs_u, rhs_v = self._crank_nicolson(rhs_u, rhs_v, ts, stage)
            u_star = torch.addcmul(u, rhs_u, self._unknown_u)  # prescribed boundary faces keep their values
            v_star = torch.addcmul(v, rhs_v, self._unknown_v)
            if self.obstacle is not None:
                u_star, v_star, removed = self.obstacle.apply_forcing(u_star, v_star, w.pressure)
                impulse = removed if stage == 0 else impulse + removed
            u, v, phi = self._project(u_star, v_star, w)
            p = p + phi
        return u, v, p, impulse

    def _crank_nicolson(self, rhs_u: Tensor, rhs_v: Tensor, ts: TimeStep, stage: int) -> tuple[Tensor, Tensor]:
        """The implicit cases' increments on the unknown faces; the explicit cases keep ``rhs``."""
        g = self.grid
        solve_u, solve_v = self._helmholtz()
        den_u, den_v = ts.helmholtz[stage]
        if self.masked_pressure is not None:  # closed faces are set afterwards: keep them out of the solve
            rhs_u, rhs_v = rhs_u * self.masked_pressure.open_u, rhs_v * self.masked_pressure.open_v
        du, dv = g.interior_u(rhs_u), g.interior_v(rhs_v)
        du = torch.where(ts.explicit, du, solve_u.solve(du.contiguous(), den_u))
        dv = torch.where(ts.explicit, dv, solve_v.solve(dv.contiguous(), den_v))
        return g.embed_u(du, rhs_u), g.embed_v(dv, rhs_v)

    def _project(self, u: Tensor, v: Tensor, w: StageWeights) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`project` with the sub-step's precomputed factors."""
        g = self.grid
        if self._replaced_pressure_solve is not None or self.masked_pressure is not None:
            return self.project(u, v, w.pressure)
        divergence = g.scaled_divergence(u, v, w.divergence_x, w.divergence_y)
        if self._continuity_cells is not None:
            divergence = divergence * self._continuity_cells
        phi = self.pressure.solve(divergence, self._poisson_denominator)
        gx, gy = g.gradient_differences(phi, w.gradient_x, w.gradient_y)
        return u - gx, v - gy, phi

    def project(self, u: Tensor, v: Tensor, scale: float | Tensor = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """Remove the divergent part: u - scale ∇phi with ∇²phi = ∇·u / scale (on the fluid cells only
        when a grid-aligned body closes faces). ``scale`` is a float or one value per case (B, 1, 1)."""
        g = self.grid
        if not torch.is_tensor(scale):
            scale = torch.full((g.batch, 1, 1), float(scale), dtype=g.dtype, device=g.device)
        divergence = g.divergence(u, v) / scale
        if self._continuity_cells is not None:
            divergence = divergence * self._continuity_cells
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
        return torch.addcmul(u, scale, gx, value=-1), torch.addcmul(v, scale, gy, value=-1), phi

    def advance(self, state: FlowState, duration: float, cfl: float, reference_speed: float = 1.0) -> FlowState:
        """Advance every case by exactly ``duration``, each in its own equal steps no larger than its
        stable step; a case that has arrived is held while the others finish. The returned state's
        ``steps`` counts each case's steps and ``body_force`` is each case's force over its last step."""
        g = self.grid
        dt_max = self.stable_dt(state, cfl, reference_speed)
        steps = torch.clamp(torch.ceil(duration / dt_max - 1e-9), min=1)
        ts = self.time_step((duration / steps).to(g.dtype))
        u, v, p, force = state.u, state.v, state.p, None
        fewest, most = int(steps.min()), int(steps.max())
        for taken in range(most):
            new_u, new_v, new_p, impulse = self._stepper(u, v, p, ts)
            new_force = impulse / ts.dt.reshape(-1, 1) if impulse is not None else None
            if taken < fewest:  # every case is still moving
                u, v, p, force = new_u, new_v, new_p, new_force
                continue
            moving = (taken < steps).reshape(-1, 1, 1)
            u, v, p = torch.where(moving, new_u, u), torch.where(moving, new_v, v), torch.where(moving, new_p, p)
            if new_force is not None:
                force = torch.where(moving.reshape(-1, 1), new_force, force)
        return FlowState(u, v, p, state.time + duration, force, steps.to(torch.int64))

    def gauge_pressure(self, p: Tensor) -> Tensor:
        """``p`` with its free constant fixed: minus its fluid mean when no boundary holds p = 0 (a closed
        cavity), unchanged otherwise. The projections keep that mean at round-off; frames fix it exactly."""
        if not self._singular:
            return p
        if self.masked_pressure is None:
            return p - p.sum(dim=-1).sum(dim=-1).reshape(-1, 1, 1) / (p.shape[-1] * p.shape[-2])
        fluid = self.masked_pressure.fluid
        count = fluid.sum(dim=-1).sum(dim=-1).reshape(-1, 1, 1)
        return (p - (p * fluid).sum(dim=-1).sum(dim=-1).reshape(-1, 1, 1) / count) * fluid

    def diverged(self, state: FlowState, limit: float = 1e3) -> Tensor:
        """Per-case flag: NaN/Inf anywhere or a velocity beyond ``limit`` reference speeds."""
        bad = torch.zeros(self.grid.batch, dtype=torch.bool, device=self.grid.device)
        for field in (state.u, state.v, state.p):
            finite = torch.isfinite(field).flatten(1).all(dim=1)
            bad |= ~finite
        for field in (state.u, state.v):
            bad |= field.abs().flatten(1).amax(dim=1) > limit
        return bad


class _CompiledStep:
    """The RK3 step through ``torch.compile`` (fused element-wise kernels on CPU and CUDA), falling back
    to the eager step with a warning if this machine cannot compile (no C++ compiler, an unsupported
    backend). The fields agree with the eager step to round-off, not bit for bit."""

    def __init__(self, step):
        self.eager = step
        self.compiled = torch.compile(step, dynamic=False)
        self.failed = False

    def __call__(self, *args):
        if self.failed:
            return self.eager(*args)
        try:
            return self.compiled(*args)
        except Exception as error:  # noqa: BLE001 - any compiler failure: run eagerly instead
            warnings.warn(f"torch.compile failed ({type(error).__name__}: {str(error)[:200]}); the solver runs eagerly")
            self.failed = True
            return self.eager(*args)


def steady_residual(before: FlowState, after: FlowState, dt: Tensor | float) -> Tensor:
    """max |u_after - u_before| / dt over both velocity components, per case (B,): the steady-state residual."""
    dt = torch.as_tensor(dt, dtype=after.u.dtype, device=after.u.device).reshape(-1)
    du = (after.u - before.u).abs().flatten(1).amax(dim=1)
    dv = (after.v - before.v).abs().flatten(1).amax(dim=1)
    return torch.maximum(du, dv) / dt

