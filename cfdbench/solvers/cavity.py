"""Lid-driven cavity: CFDBench's parameters mapped onto the non-dimensional solver.

A case is (vel_top, density, viscosity, height, width) in SI units. The solver runs in units
of the width L and lid speed U: the window is [0, 1] x [0, height/width], the lid moves at
1 and ν = 1/Re with Re = ρUL/μ. Frames are converted back to SI (velocity × U, pressure × ρU²,
time × L/U). All cases of a batch share the cell counts; their spacing follows their window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError, SimulationDivergedError
from cfdbench.solvers.grid import StaggeredGrid, WallVelocity
from cfdbench.solvers.navier_stokes import FlowState, NavierStokesSolver
from cfdbench.solvers.resample import resample_cells

CAVITY_PARAMETERS = ("vel_top", "density", "viscosity", "height", "width")
# viscosity is dynamic (Re = density * vel_top * width / viscosity), as in CFDBench.
CAVITY_PARAMETER_UNITS = {"vel_top": "m/s", "density": "kg/m^3", "viscosity": "Pa s", "height": "m", "width": "m"}


@dataclass
class CavityCase:
    """One cavity in SI units (CFDBench's ``case.json`` keys)."""

    vel_top: float
    density: float
    viscosity: float
    height: float
    width: float
    label: str = "case"

    def __post_init__(self) -> None:
        for name in CAVITY_PARAMETERS:
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise CfdbenchError(f"cavity case '{self.label}': {name} must be positive, got {value}")

    @property
    def reynolds(self) -> float:
        return self.density * self.vel_top * self.width / self.viscosity

    @property
    def time_unit(self) -> float:
        """Seconds per non-dimensional time unit (L/U)."""
        return self.width / self.vel_top

    def describe(self) -> str:
        values = ", ".join(f"{k}={getattr(self, k):g}" for k in CAVITY_PARAMETERS)
        return f"'{self.label}' ({values}, Re={self.reynolds:.4g})"


@dataclass
class CavityFrames:
    """Output of one batch run. Arrays are SI, shape (B, T, ny, nx) on the frame grid."""

    u: np.ndarray
    v: np.ndarray
    p: np.ndarray
    dt: np.ndarray  # (B,) seconds between frames
    solver_fields: list[dict[str, np.ndarray]] = field(default_factory=list)  # per case, native grid
    steps: int = 0


def build_cavity_solver(
    cases: Sequence[CavityCase], cells_x: int, cells_y: int, dtype: torch.dtype, device: str | torch.device
) -> NavierStokesSolver:
    """A batched solver for the cavities: unit lid speed, window [0,1] x [0, h/w], ν = 1/Re."""
    as_tensor = lambda values: torch.tensor(values, dtype=dtype, device=device)  # noqa: E731
    lx = as_tensor([1.0] * len(cases))
    ly = as_tensor([c.height / c.width for c in cases])
    grid = StaggeredGrid(cells_x, cells_y, lx, ly, "wall", "wall")
    walls = WallVelocity.still(len(cases), dtype, device)
    walls.top = torch.ones(len(cases), dtype=dtype, device=device)
    return NavierStokesSolver(grid, as_tensor([1.0 / c.reynolds for c in cases]), walls)


def _check_finite(solver: NavierStokesSolver, state: FlowState, cases: Sequence[CavityCase]) -> None:
    bad = solver.diverged(state)
    if bool(bad.any()):
        index = int(torch.nonzero(bad)[0])
        raise SimulationDivergedError(
            f"simulation diverged (NaN/Inf or blow-up) at t={state.time:.4g} L/U in case {cases[index].describe()}"
        )


def simulate_cavities(
    cases: Sequence[CavityCase],
    cells_x: int,
    cells_y: int,
    frame_interval: float,
    n_frames: int,
    frame_shape: tuple[int, int],
    cfl: float = 0.5,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    keep_solver_fields: bool = False,
    on_frame: Callable[[int], None] | None = None,
) -> CavityFrames:
    """Run a batch of cavities from rest and return ``n_frames`` frames (the first is the rest state).

    ``frame_interval`` is in convective units L/U. Raises :class:`SimulationDivergedError`
    naming the first case that blows up.
    """
    if n_frames < 1 or frame_interval <= 0 or cfl <= 0:
        raise CfdbenchError("n_frames, frame_interval and cfl must be positive")
    solver = build_cavity_solver(cases, cells_x, cells_y, dtype, device)
    grid = solver.grid
    state = solver.rest_state()
    native: list[tuple[Tensor, Tensor, Tensor]] = []
    resampled: list[tuple[Tensor, Tensor, Tensor]] = []
    steps = 0
    for frame in range(n_frames):
        if frame > 0:
            dt_max = solver.stable_dt(state, cfl)
            n_steps = max(1, int(np.ceil(frame_interval / dt_max - 1e-9)))
            for _ in range(n_steps):
                state = solver.step(state, frame_interval / n_steps)
            steps += n_steps
            _check_finite(solver, state, cases)
        uc, vc = grid.to_cells(state.u, state.v)
        resampled.append(tuple(resample_cells(f, frame_shape) for f in (uc, vc, state.p)))
        if keep_solver_fields:
            native.append((state.u.clone(), state.v.clone(), state.p.clone()))
        if on_frame is not None:
            on_frame(frame)
    return _to_si(cases, resampled, native, frame_interval, steps)


def _to_si(cases, resampled, native, frame_interval, steps) -> CavityFrames:
    """Stack frames over time and convert non-dimensional values to SI per case."""
    vel = np.array([c.vel_top for c in cases]).reshape(-1, 1, 1, 1)
    pressure_scale = np.array([c.density * c.vel_top**2 for c in cases]).reshape(-1, 1, 1, 1)
    stack = lambda i: torch.stack([f[i] for f in resampled], dim=1).double().cpu().numpy()  # noqa: E731
    u, v, p = stack(0) * vel, stack(1) * vel, stack(2) * pressure_scale
    solver_fields = []
    if native:
        for b in range(len(cases)):
            solver_fields.append(
                {
                    name: (torch.stack([f[i][b] for f in native]).double().cpu().numpy() * scale[b, 0, 0, 0]).astype(np.float32)
                    for i, (name, scale) in enumerate((("u_faces", vel), ("v_faces", vel), ("p_cells", pressure_scale)))
                }
            )
    dt = np.array([frame_interval * c.time_unit for c in cases])
    return CavityFrames(u.astype(np.float32), v.astype(np.float32), p.astype(np.float32), dt, solver_fields, steps)
