"""The 3D channel DNS: exactness (Poiseuille, projection), agreement with the 2D solver, the
Orr–Sommerfeld growth rate, checkpoints and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cfdbench.errors import CfdbenchError, SimulationDivergedError
from cfdbench.metrics.channel import wall_shear_rate
from cfdbench.solvers.channel import (
    ChannelGrid,
    ChannelSolver,
    load_checkpoint,
    save_checkpoint,
    wall_normal_operators,
)
from cfdbench.solvers.grid import StaggeredGrid
from cfdbench.solvers.navier_stokes import NavierStokesSolver
from cfdbench.solvers.orr_sommerfeld import least_stable_mode

# validation.md §4: least-stable mode of plane Poiseuille flow at Re = 7500, α = 1.
OS_GROWTH_RATE = 0.00223497


def test_wall_normal_operators_are_exact_for_quadratics_on_a_stretched_grid():
    grid = ChannelGrid(4, 24, 4, 1.0, 1.0, stretching=2.0)
    ops = wall_normal_operators(grid)
    y = grid.y_centres()
    profile = 1 - y**2  # zero on both walls
    assert np.allclose(ops["centre"] @ profile, -2.0, rtol=0, atol=1e-10)
    # The pressure operator annihilates constants (zero-flux walls) and is W⁻¹S with S symmetric.
    assert np.allclose(ops["pressure"] @ np.ones(24), 0.0, atol=1e-10)
    symmetric = np.diff(grid.y_faces())[:, None] * ops["pressure"]
    assert np.allclose(symmetric, symmetric.T)


@pytest.mark.parametrize("forcing", [{"pressure_gradient": 1.0}, {"bulk_velocity": 2.0 / 3.0 * 90.0}])
def test_laminar_poiseuille_is_a_steady_state_to_round_off(forcing):
    grid = ChannelGrid(6, 20, 4, 2.0, 1.0, stretching=1.8)
    solver = ChannelSolver(grid, nu=1 / 180, **forcing)
    start = solver.laminar_state(batch=2)
    end = solver.advance(start, 0.02, 0.001)
    scale = float(start.u.abs().max())
    assert float((end.u - start.u).abs().max()) < 1e-12 * scale
    assert float(end.v.abs().max()) < 1e-12 * scale and float(end.w.abs().max()) < 1e-12 * scale
    assert float(solver.bulk(end.u)[0]) == pytest.approx(60.0, rel=1e-2)  # U_b = G/(3ν) by the cells' midpoint rule
    if "pressure_gradient" in forcing:  # the wall shear balances the driving gradient: u_τ = 1
        shear = wall_shear_rate(end.u[0].mean(dim=(0, 2)).numpy(), grid.y_centres())
        assert math.sqrt(solver.nu * shear) / solver.nu == pytest.approx(180.0, rel=1e-10)


def test_projection_leaves_a_divergence_free_field_to_round_off():
    grid = ChannelGrid(12, 16, 8, 3.0, 1.5, stretching=1.5)
    solver = ChannelSolver(grid, nu=0.01, pressure_gradient=1.0)
    generator = torch.Generator().manual_seed(3)
    state = solver.zeros(batch=2)
    u, w = (
        torch.randn(state.u.shape, generator=generator, dtype=torch.float64),
        torch.randn(state.w.shape, generator=generator, dtype=torch.float64),
    )
    v = torch.randn(state.v.shape, generator=generator, dtype=torch.float64)
    v[:, :, 0] = v[:, :, -1] = 0
    u, v, w, _ = solver.project(u, v, w)
    assert float(solver.divergence(u, v, w).abs().max()) < 1e-11
    assert float(v[:, :, [0, -1]].abs().max()) == 0.0
    # Projecting twice changes nothing: the projection is exact, not approximate.
    u2, v2, w2, _ = solver.project(u, v, w)
    assert float((u2 - u).abs().max()) < 1e-11 and float((w2 - w).abs().max()) < 1e-11


def _z_invariant_vortex(nx: int, ny: int, nu: float, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Decaying cells ψ = A sin(πx)(1 - y²)² between the walls, by the 3D solver with nz = 2;
    returns the kinetic energy over time and checks that w stays zero and the flow z-invariant."""
    grid = ChannelGrid(nx, ny, 2, 2.0, 0.5)
    solver = ChannelSolver(grid, nu=nu, pressure_gradient=0.0)
    state = solver.zeros()
    xf, xc, yc, yf = grid.x_faces(), grid.x_centres(), grid.y_centres(), grid.y_faces()
    state.u[:] = torch.as_tensor(np.sin(np.pi * xf)[:, None] * (-4 * yc * (1 - yc**2))[None, :])[None, :, :, None]
    state.v[:] = torch.as_tensor(-np.pi * np.cos(np.pi * xc)[:, None] * ((1 - yf**2) ** 2)[None, :])[None, :, :, None]
    state.u, state.v, state.w, _ = solver.project(state.u, state.v, state.w)
    energies = []
    for _ in range(4):
        state = solver.advance(state, duration / 4, 0.01)
        energies.append(float(0.5 * ((state.u**2).mean(dim=(1, 3)) * torch.as_tensor(np.diff(yf))).sum()))
    assert float(state.w.abs().max()) < 1e-13
    assert float((state.u - state.u[..., :1]).abs().max()) < 1e-13
    return np.array(energies)


def _two_d_vortex(n: int, nu: float, duration: float) -> np.ndarray:
    """The same cells by the suite's 2D solver (periodic x, walls in y) on an n x n grid."""
    one = torch.ones(1, dtype=torch.float64)
    grid = StaggeredGrid(n, n, 2.0 * one, 2.0 * one, bc_x="periodic", bc_y="wall")
    solver = NavierStokesSolver(grid, nu * one)
    state = solver.rest_state()
    x, y = grid.u_coordinates()
    y = y - 1.0
    state.u = torch.sin(np.pi * x) * (-4 * y * (1 - y**2))
    x, y = grid.v_coordinates()
    y = y - 1.0
    state.v = -np.pi * torch.cos(np.pi * x) * (1 - y**2) ** 2
    state.u, state.v, _ = solver.project(state.u, state.v)
    energies = []
    for _ in range(4):
        state = solver.advance(state, duration / 4, cfl=0.5)
        energies.append(float(0.5 * (state.u**2).mean() * 2.0))
    return np.array(energies)


def test_z_invariant_flow_reproduces_the_2d_solver():
    nu, duration = 0.05, 1.0
    reference = _two_d_vortex(128, nu, duration)
    errors = [np.abs(_z_invariant_vortex(n, n, nu, duration) / reference - 1).max() for n in (16, 32)]
    assert errors[1] < 5e-3, errors
    assert errors[0] / errors[1] > 3.0, errors  # second order: the two codes converge to one solution


def test_orr_sommerfeld_reference_mode():
    mode = least_stable_mode(7500, 1.0, n=100)
    assert mode.growth_rate == pytest.approx(OS_GROWTH_RATE, rel=1e-5)
    assert least_stable_mode(10000, 1.0, n=100).c == pytest.approx(0.23752649 + 0.00373967j, abs=1e-7)  # Orszag 1971


def test_tollmien_schlichting_wave_grows_at_the_orr_sommerfeld_rate():
    """validation.md §4: seed the unstable mode (amplitude 1e-4) on U = 1 - y² at Re = 7500 and
    fit the growth of its amplitude; within 3 % of ω_i = 0.00223497."""
    mode = least_stable_mode(7500, 1.0, n=100)
    grid = ChannelGrid(32, 128, 1, 2 * math.pi, 0.1, stretching=2.5)
    nu = 1 / 7500
    solver = ChannelSolver(grid, nu, pressure_gradient=2 * nu)
    state = solver.laminar_state()
    du, _ = mode.velocity(grid.x_faces(), grid.y_centres(), grid.y_faces(), 1e-4)
    _, dv = mode.velocity(grid.x_centres(), grid.y_centres(), grid.y_faces(), 1e-4)
    state.u = state.u + torch.as_tensor(du)[None, :, :, None]
    state.v = state.v + torch.as_tensor(dv)[None, :, :, None]
    state.v[:, :, [0, -1]] = 0
    state.u, state.v, state.w, _ = solver.project(state.u, state.v, state.w)
    widths = torch.as_tensor(np.diff(grid.y_faces()))

    def amplitude() -> float:
        v_centres = 0.5 * (state.v[0, :, 1:, 0] + state.v[0, :, :-1, 0])
        return float(torch.sqrt((torch.fft.rfft(v_centres, dim=0)[1].abs() ** 2 * widths).sum()))

    times, logs = [], []
    for _ in range(50):
        state = solver.advance(state, 1.0, 0.05, check_every=20)
        times.append(state.time)
        logs.append(math.log(amplitude()))
    times, logs = np.array(times), np.array(logs)
    fitted = times >= 10
    rate = np.polyfit(times[fitted], logs[fitted], 1)[0]
    assert rate == pytest.approx(OS_GROWTH_RATE, rel=0.03)


def test_turbulent_start_runs_in_float32_and_keeps_mass_and_continuity():
    grid = ChannelGrid(8, 32, 8, 1.75, 0.65, stretching=1.6)
    solver = ChannelSolver(grid, nu=1 / 180, bulk_velocity=15.7, dtype=torch.float32)
    state = solver.turbulent_start(batch=1, amplitude=0.2, seed=0)
    assert state.u.dtype == torch.float32
    solver.check_time_step(state, 0.002)
    state = solver.advance(state, 0.04, 0.002)
    assert float(solver.bulk(state.u)[0]) == pytest.approx(15.7, rel=1e-5)
    assert float(solver.divergence(state.u, state.v, state.w).abs().max()) < 1e-3


def test_checkpoint_round_trip_and_refusals(tmp_path):
    grid = ChannelGrid(4, 16, 4, 1.0, 1.0, stretching=1.0)
    solver = ChannelSolver(grid, nu=0.01, pressure_gradient=0.02)
    state = solver.advance(solver.turbulent_start(seed=1), 0.02, 0.01)
    path = save_checkpoint(tmp_path / "state.pt", solver, state, {"phase": "spin-up"})
    restored, extra = load_checkpoint(path, solver)
    assert extra == {"phase": "spin-up"} and restored.steps == state.steps and restored.time == state.time
    # Continuing from the checkpoint gives the same flow as never stopping.
    assert torch.equal(solver.step(restored, 0.01).u, solver.step(state, 0.01).u)
    other = ChannelSolver(ChannelGrid(4, 16, 4, 1.0, 1.0, stretching=1.2), nu=0.01, pressure_gradient=0.02)
    with pytest.raises(CfdbenchError, match="other solver settings.*grid"):
        load_checkpoint(path, other)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CfdbenchError, match="cannot read channel checkpoint"):
        load_checkpoint(tmp_path / "junk.pt", solver)


def test_coarse_grids_and_unstable_steps_are_refused():
    ChannelGrid(16, 64, 16, 1.75, 0.65, stretching=1.6).check_resolution(180)
    with pytest.raises(CfdbenchError, match="too coarse.*first_centre_y_plus.*dx_plus"):
        ChannelGrid(8, 16, 16, 1.75, 0.65).check_resolution(180)
    solver = ChannelSolver(ChannelGrid(8, 16, 8, 2.0, 1.0), nu=1 / 180, pressure_gradient=1.0)
    state = solver.laminar_state()
    solver.check_time_step(state, 1e-4)
    with pytest.raises(CfdbenchError, match="beyond the stability bound: CFL"):
        solver.check_time_step(state, 0.01)
    with pytest.raises(SimulationDivergedError, match="diverged at t"):
        solver.advance(state, 0.1, 0.02, check_every=1)
    with pytest.raises(CfdbenchError, match="exactly one forcing"):
        ChannelSolver(solver.grid, nu=0.01)
