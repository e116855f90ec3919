"""Run a batch of cases of one flow from rest and return their frames in SI units.

One loop for every flow: build the batched grid, bodies and inflow from each case's
:class:`~cfdbench.solvers.flows.FlowSetup`, advance to each frame time in equal CFL-limited
steps, resample velocities and pressure to the stored frame grid, stop with the case's name
and parameters if anything blows up, and convert back to SI.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cfdbench.errors import CfdbenchError, SimulationDivergedError
from cfdbench.solvers.flows import Flow, FlowSetup, get_flow
from cfdbench.solvers.geometry import is_fluid_cell
from cfdbench.solvers.grid import StaggeredGrid, WallVelocity
from cfdbench.solvers.navier_stokes import FlowState, NavierStokesSolver
from cfdbench.solvers.obstacles import GridAlignedObstacle, InterpolatedDisc
from cfdbench.solvers.resample import FrameResampler
from cfdbench.solvers.threads import ThreadChooser


@dataclass(frozen=True)
class FlowCase:
    """One case to simulate: id (for messages), SI parameters and their set-up."""

    label: str
    params: dict[str, float]
    setup: FlowSetup
    reynolds: float | None = None  # the dataset's own definition; else Re on the flow's scale length

    def describe(self) -> str:
        values = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"'{self.label}' ({values}, Re={self.reynolds or 1 / self.setup.nu:.4g})"


@dataclass
class SimulatedFrames:
    """Frames of one batch in SI units: u, v, p (B, T, ny, nx) on the frame grid, and per case the
    frame coordinates, fluid mask and fluid fraction, frame interval and (with bodies) the force
    history. A stored cell is fluid when at least half of it is (``fluid_fraction >= 0.5``)."""

    u: np.ndarray
    v: np.ndarray
    p: np.ndarray
    x: list[np.ndarray]
    y: list[np.ndarray]
    mask: list[np.ndarray]
    dt: np.ndarray
    fluid_fraction: list[np.ndarray] = field(default_factory=list)  # (ny, nx) share of each cell outside bodies
    body_force: list[np.ndarray] = field(default_factory=list)  # (T, 2) N/m, fluid on body
    solver_fields: list[dict[str, np.ndarray]] = field(default_factory=list)
    steps: np.ndarray | None = None  # (B,) solver steps of each case


def make_cases(flow: Flow, labelled_params: Sequence[tuple[str, dict[str, float]]]) -> list[FlowCase]:
    """Check every case and build its set-up; the first ill-posed case stops everything."""
    return [FlowCase(label, dict(params), flow.setup_checked(params, label)) for label, params in labelled_params]


def grid_cells(setup: FlowSetup, cells_per_length: float | None, cells_x: int, cells_y: int) -> tuple[int, int]:
    """Cells of a case: a fixed count, or square cells at ``cells_per_length`` per scale length."""
    if cells_per_length is None:
        return cells_x, cells_y
    return max(2, round(setup.length_x * cells_per_length)), max(2, round(setup.length_y * cells_per_length))


def _check_same(values, what: str):
    if len(set(values)) > 1:
        raise CfdbenchError(f"cases of one batch must share {what}, got {sorted(set(values))}")
    return values[0]


def build_solver(
    cases: Sequence[FlowCase], cells_x: int, cells_y: int, dtype: torch.dtype, device, compile: bool = False
) -> tuple[NavierStokesSolver, FlowState]:
    """The batched solver for cases sharing cell counts, and their rest state with inflow (``compile``:
    the step through ``torch.compile``, see :class:`~cfdbench.solvers.navier_stokes.NavierStokesSolver`)."""
    setups = [c.setup for c in cases]
    as_tensor = lambda values: torch.tensor(values, dtype=dtype, device=device)  # noqa: E731
    bc_x = _check_same([s.bc_x for s in setups], "the x boundary type")
    lengths_x, lengths_y = as_tensor([s.length_x for s in setups]), as_tensor([s.length_y for s in setups])
    grid = StaggeredGrid(cells_x, cells_y, lengths_x, lengths_y, bc_x, "wall")
    walls = WallVelocity.still(len(cases), dtype, device)
    walls.top = as_tensor([s.lid_speed for s in setups])
    obstacle = _obstacle(grid, cases)
    solver = NavierStokesSolver(grid, as_tensor([s.nu for s in setups]), walls, obstacle, compile=compile)
    inflow = None
    if bc_x == "channel":
        _, y = grid.cell_coordinates()
        tops = as_tensor([s.inlet_top if s.inlet_top is not None else math.inf for s in setups]).reshape(-1, 1)
        inflow = (y[:, :, 0] < tops).to(dtype)
    state = solver.rest_state(inflow)
    if any(s.disc is not None for s in setups):
        state = _break_symmetry(solver, state)
    return solver, state


def _break_symmetry(solver: NavierStokesSolver, state: FlowState, amplitude: float = 0.01) -> FlowState:
    """A 1 % transverse velocity bump, projected divergence-free, so a symmetric wake starts shedding
    within the spin-up instead of waiting for round-off to grow."""
    g = solver.grid
    x, _ = g.v_coordinates()
    v = amplitude * torch.sin(torch.pi * x / g.lx.reshape(-1, 1, 1))
    v[:, 0], v[:, -1] = 0, 0  # wall faces
    u, v, _ = solver.project(state.u, v)
    return FlowState(u, v, state.p, state.time)


def flow_solver(
    problem: str,
    params: Sequence[dict[str, float]],
    cells: tuple[int, int],
    dtype: torch.dtype = torch.float64,
    device="cpu",
    compile: bool = False,
) -> tuple[NavierStokesSolver, FlowState]:
    """Solver and rest state for SI parameter sets of a named flow (validation, benchmarks, scripts)."""
    cases = make_cases(get_flow(problem), [(f"case-{i}", p) for i, p in enumerate(params)])
    return build_solver(cases, cells[0], cells[1], dtype, device, compile)


def _obstacle(grid: StaggeredGrid, cases: Sequence[FlowCase]):
    setups = [c.setup for c in cases]
    kinds = _check_same([(s.block is not None, s.disc is not None) for s in setups], "the kind of body")
    if kinds == (True, False):
        for case in cases:
            _check_block_on_grid(case, grid)
        x, y = (c.cpu().numpy() for c in grid.cell_coordinates())
        solid = np.stack([s.solid_at(x[b], y[b]) for b, s in enumerate(setups)])
        return GridAlignedObstacle(grid, torch.as_tensor(solid, device=grid.device))
    if kinds == (False, True):
        as_tensor = lambda values: torch.tensor(values, dtype=grid.dtype, device=grid.device)  # noqa: E731
        cx, cy, r = (as_tensor([s.disc[i] for s in setups]) for i in range(3))
        return InterpolatedDisc(grid, cx, cy, r)
    if kinds != (False, False):
        raise CfdbenchError("a case can have a grid-aligned block or a disc, not both")
    return None


def _check_block_on_grid(case: FlowCase, grid: StaggeredGrid) -> None:
    """A block must sit on cell faces and span at least two cells each way to be represented exactly."""
    x0, x1, y0, y1 = case.setup.block
    hx, hy = case.setup.length_x / grid.nx, case.setup.length_y / grid.ny
    for name, value, h in (("x start", x0, hx), ("x end", x1, hx), ("y start", y0, hy), ("y end", y1, hy)):
        if abs(value / h - round(value / h)) > 1e-6:
            raise CfdbenchError(
                f"case {case.describe()}: the obstacle's {name} is not on a cell face of the {grid.nx}x{grid.ny} grid "
                f"(spacing {h:.4g} scale lengths); choose a resolution whose spacing divides the obstacle geometry"
            )
    if (x1 - x0) / hx < 1.5 or (y1 - y0) / hy < 1.5:
        raise CfdbenchError(f"case {case.describe()}: the obstacle spans fewer than 2 cells; raise the resolution")


def _check_finite(solver: NavierStokesSolver, state: FlowState, cases: Sequence[FlowCase]) -> None:
    bad = solver.diverged(state)
    if bool(bad.any()):
        index = int(torch.nonzero(bad)[0])
        raise SimulationDivergedError(
            f"simulation diverged (NaN/Inf or blow-up) at t={state.time:.4g} L/U in case {cases[index].describe()}"
        )


def simulate(
    flow: Flow,
    cases: Sequence[FlowCase],
    cells: tuple[int, int],
    frame_interval: float,
    n_frames: int,
    frame_shape: tuple[int, int],
    cfl: float = 0.5,
    spinup: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    solver_grid_every: int = 0,
    on_frame: Callable[[int], None] | None = None,
    compile: bool = False,
) -> SimulatedFrames:
    """Run ``cases`` (sharing ``cells`` = (nx, ny)) from rest; store ``n_frames`` frames every
    ``frame_interval`` scale times, the first after ``spinup`` (the rest state when 0).
    ``solver_grid_every = k > 0`` also keeps the native solver-grid fields of every k-th frame."""
    if n_frames < 1 or frame_interval <= 0 or cfl <= 0 or spinup < 0:
        raise CfdbenchError("n_frames, frame_interval and cfl must be positive and spinup non-negative")
    solver, state = build_solver(cases, cells[0], cells[1], dtype, device, compile)
    steps = torch.zeros(len(cases), dtype=torch.int64, device=state.u.device)
    native, resampled, forces = [], [], []
    with ThreadChooser(device) as threads:  # on a CPU shared with other work: the cores left idle
        for frame in range(n_frames):
            duration = spinup if frame == 0 else frame_interval
            if duration > 0:
                with threads.frame():
                    state = solver.advance(state, duration, cfl)
                steps += state.steps
                _check_finite(solver, state, cases)
            resampled.append(frame_fields(solver, state, frame_shape))
            if state.body_force is not None:
                forces.append(state.body_force.double().cpu().numpy())
            elif solver.obstacle is not None:
                forces.append(np.zeros((len(cases), 2)))
            if solver_grid_every > 0 and frame % solver_grid_every == 0:
                native.append((state.u.clone(), state.v.clone(), solver.gauge_pressure(state.p)))
            if on_frame is not None:
                on_frame(frame)
    return _to_si(flow, cases, resampled, native, forces, frame_interval, frame_shape, steps)


def frame_fields(solver: NavierStokesSolver, state: FlowState, frame_shape: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """u, v, p of a state on the stored frame grid (B, ny, nx), in scale units: velocities from the
    solver's face fluxes, so that mass stays conserved on the stored grid (:mod:`cfdbench.solvers.resample`)."""
    g = solver.grid
    periodic = (g.bc_y == "periodic", g.bc_x == "periodic")
    resampler = FrameResampler((g.ny, g.nx), tuple(frame_shape), periodic, g.dtype, g.device)
    u, v = resampler.velocity(state.u, state.v)
    return u, v, resampler.pressure(solver.gauge_pressure(state.p))


def frames_to_si(flow: Flow, cases: Sequence[FlowCase], resampled: list, frame_interval: float, frame_shape) -> SimulatedFrames:
    """Frames from :func:`frame_fields`, one tuple per time, as the stored SI frames (fluid mask applied)."""
    return _to_si(flow, cases, resampled, [], [], frame_interval, frame_shape, None)


def _to_si(flow, cases, resampled, native, forces, frame_interval, frame_shape, steps) -> SimulatedFrames:
    """Stack frames over time; scale velocity by U, pressure by rho U^2, time and lengths by L."""
    length, velocity = np.array([flow.scales(c.params) for c in cases]).T
    density = np.array([c.params["density"] for c in cases])
    vel, pressure = velocity.reshape(-1, 1, 1, 1), (density * velocity**2).reshape(-1, 1, 1, 1)
    stack = lambda i: torch.stack([f[i] for f in resampled], dim=1).double().cpu().numpy()  # noqa: E731
    u, v, p = stack(0) * vel, stack(1) * vel, stack(2) * pressure
    ny, nx = frame_shape
    xs, ys = [], []
    for case in cases:
        x0, y0, width, height = case.setup.window_si
        xs.append(x0 + (np.arange(nx) + 0.5) * width / nx)
        ys.append(y0 + (np.arange(ny) + 0.5) * height / ny)
    fractions = [case.setup.fluid_fraction(frame_shape) for case in cases]
    masks = [is_fluid_cell(fraction) for fraction in fractions]
    u, v, p = (np.where(np.stack(masks)[:, None], f, 0.0).astype(np.float32) for f in (u, v, p))
    body_force = []
    if forces:
        history = np.stack(forces, axis=1)  # (B, T, 2), scale units per unit density
        body_force = [history[b] * density[b] * velocity[b] ** 2 * length[b] for b in range(len(cases))]
    solver_fields = []
    if native:
        for b in range(len(cases)):
            scales = {"u_faces": velocity[b], "v_faces": velocity[b], "p_cells": density[b] * velocity[b] ** 2}
            solver_fields.append(
                {
                    name: (torch.stack([f[i][b] for f in native]).double().cpu().numpy() * scales[name]).astype(np.float32)
                    for i, name in enumerate(scales)
                }
            )
    dt = frame_interval * (length / velocity)
    steps = None if steps is None else steps.cpu().numpy()
    return SimulatedFrames(u, v, p, xs, ys, masks, dt, fractions, body_force, solver_fields, steps)
