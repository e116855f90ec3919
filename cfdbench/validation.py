"""Reference flows that validate the generators: Schäfer–Turek's cylinder benchmarks (DFG 1996).

The tests call these functions on the CPU; the periodic case 2D-2 is GPU-sized and runs in one
command on any machine::

    python -m cfdbench.validation schafer-turek --case 2D-2 --cells-per-diameter 40 --device cuda

Geometry (Schäfer & Turek 1996): channel [0, 2.2] x [0, 0.41], cylinder of diameter 0.1 centred at
(0.2, 0.2), parabolic inflow of peak U_m, nu = 1e-3, zero-gradient outflow with p = 0.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from cfdbench.solvers.grid import StaggeredGrid
from cfdbench.solvers.navier_stokes import NavierStokesSolver
from cfdbench.solvers.obstacles import InterpolatedDisc

CHANNEL = (2.2, 0.41)
CENTRE, DIAMETER, NU = (0.2, 0.2), 0.1, 1e-3
PEAK_INFLOW = {"2D-1": 0.3, "2D-2": 1.5}
# Reference intervals (Schäfer & Turek 1996, Table 4) as (lower, upper).
REFERENCE = {
    "2D-1": {
        "drag": (5.57, 5.59),
        "lift": (0.0104, 0.0110),
        "recirculation_length": (0.0842, 0.0852),
        "pressure_drop": (0.1172, 0.1176),
    },
    "2D-2": {"drag_max": (3.22, 3.24), "lift_max": (0.99, 1.01), "strouhal": (0.295, 0.305)},
}


DEFAULT_DURATION = {"2D-1": 6.0, "2D-2": 14.0}


@dataclass
class CylinderResult:
    case: str
    cells_per_diameter: int
    grid: str
    steps: int
    seconds: float
    values: dict[str, float]

    def relative_errors(self) -> dict[str, float]:
        """Distance from the midpoint of each reference interval, relative to it."""
        out = {}
        for key, (low, high) in REFERENCE[self.case].items():
            mid = 0.5 * (low + high)
            out[key] = abs(self.values[key] - mid) / abs(mid)
        return out


def _on_line(rows: np.ndarray, row_y: np.ndarray, y: float) -> np.ndarray:
    """Values along the horizontal line at height ``y`` of a field given on rows at heights ``row_y``:
    the quadratic through the three rows nearest ``y``, column by column (third order, so that the
    curvature of a wake or of a stagnation pressure across the line does not bias it)."""
    j = int(np.clip(np.argmin(np.abs(row_y - y)), 1, len(row_y) - 2))
    (y0, y1, y2), (f0, f1, f2) = row_y[j - 1 : j + 2], rows[j - 1 : j + 2]
    return (
        f0 * (y - y1) * (y - y2) / ((y0 - y1) * (y0 - y2))
        + f1 * (y - y0) * (y - y2) / ((y1 - y0) * (y1 - y2))
        + f2 * (y - y0) * (y - y1) / ((y2 - y0) * (y2 - y1))
    )


def _surface_pressure(p: np.ndarray, spacing: tuple[float, float], x: float, y: float, outward: int) -> float:
    """Pressure on the cylinder's surface at (x, y), its outward normal along ±x: the quadratic through
    the three cells on the line whose centres are 1.5 to 4.5 cells out along the normal, at the wall.
    Cells nearer the wall may have every face forced by the body, which leaves their pressure without
    a physical meaning."""
    dx, dy = spacing
    line = _on_line(p, (np.arange(p.shape[0]) + 0.5) * dy, y)
    centres = (np.arange(p.shape[1]) + 0.5) * dx
    away = outward * (centres - x)
    nodes = np.nonzero(away >= 1.5 * dx)[0]
    nodes = nodes[np.argsort(away[nodes])][:3]
    xs, fs = centres[nodes], line[nodes]
    return float(sum(fs[k] * np.prod([(x - xs[m]) / (xs[k] - xs[m]) for m in range(3) if m != k]) for k in range(3)))


def _recirculation_length(u: np.ndarray, spacing: tuple[float, float], centre_y: float) -> float:
    """Distance from the cylinder's rear point (0.25, centre) to where u on the centre line turns
    positive: u on the line from its own faces (quadratic across rows), the crossing linear between
    faces."""
    dx, dy = spacing
    line = _on_line(u, (np.arange(u.shape[0]) + 0.5) * dy, centre_y)
    faces = np.arange(u.shape[1]) * dx
    rear = CENTRE[0] + DIAMETER / 2
    behind = np.nonzero(faces > rear)[0]
    crossing = [k for k in behind[:-1] if line[k] < 0 <= line[k + 1]]
    if not crossing:
        return 0.0
    k = crossing[0]
    return float(faces[k] + dx * (-line[k]) / (line[k + 1] - line[k]) - rear)


def build_cylinder_channel(cells_per_diameter: int, peak_inflow: float, dtype=torch.float64, device="cpu", shift: float = 0.0):
    """The benchmark's solver and its rest state with the parabolic inflow.

    The channel is exactly 2.2 x 0.41 for any resolution: ``cells_per_diameter`` sets the cell
    counts (rounded), each axis its own spacing. ``shift`` moves the cylinder up by that share of a
    cell (a test of the sub-cell geometry)."""
    nx, ny = round(CHANNEL[0] / DIAMETER * cells_per_diameter), round(CHANNEL[1] / DIAMETER * cells_per_diameter)
    as_tensor = lambda value: torch.tensor([value], dtype=dtype, device=device)  # noqa: E731
    grid = StaggeredGrid(nx, ny, as_tensor(CHANNEL[0]), as_tensor(CHANNEL[1]), "channel", "wall")
    centre_y = CENTRE[1] + shift * CHANNEL[1] / ny
    body = InterpolatedDisc(grid, as_tensor(CENTRE[0]), as_tensor(centre_y), as_tensor(DIAMETER / 2))
    solver = NavierStokesSolver(grid, as_tensor(NU), obstacle=body)
    _, y = grid.cell_coordinates()
    height = CHANNEL[1]
    inflow = 4 * peak_inflow * y[:, :, 0] * (height - y[:, :, 0]) / height**2
    return solver, solver.rest_state(inflow), (CHANNEL[0] / nx, CHANNEL[1] / ny)


def schafer_turek(
    case: str = "2D-1",
    cells_per_diameter: int = 16,
    duration: float | None = None,
    cfl: float = 0.9,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
    shift: float = 0.0,
) -> CylinderResult:
    """Run case 2D-1 (steady, Re 20) or 2D-2 (periodic, Re 100) and measure the benchmark quantities.

    Forces come from the forcing's momentum bookkeeping; the mean velocity is 2 U_m / 3.
    ``shift`` moves the cylinder up by that share of a cell (for the sub-cell geometry test).
    """
    peak = PEAK_INFLOW[case]
    mean_velocity = 2 * peak / 3
    duration = duration or DEFAULT_DURATION[case]
    solver, state, spacing = build_cylinder_channel(cells_per_diameter, peak, dtype, device, shift)
    centre_y = CENTRE[1] + shift * spacing[1]
    coefficient = 2 / (mean_velocity**2 * DIAMETER)
    times, drag, lift = [], [], []
    start, steps = time.perf_counter(), 0
    while state.time < duration:
        state = solver.step(state, solver.stable_dt(state, cfl, peak))
        steps += 1
        force = state.body_force[0] * coefficient
        times.append(state.time)
        drag.append(float(force[0]))
        lift.append(float(force[1]))
    if case == "2D-1":
        p, u = state.p[0].double().cpu().numpy(), state.u[0].double().cpu().numpy()
        front, back = CENTRE[0] - DIAMETER / 2, CENTRE[0] + DIAMETER / 2
        values = {
            "drag": drag[-1],
            "lift": lift[-1],
            "pressure_drop": _surface_pressure(p, spacing, front, centre_y, -1) - _surface_pressure(p, spacing, back, centre_y, 1),
            "recirculation_length": _recirculation_length(u, spacing, centre_y),
        }
    else:
        values = _periodic_values(np.array(times), np.array(drag), np.array(lift), mean_velocity)
    grid = f"{solver.grid.nx}x{solver.grid.ny}"
    return CylinderResult(case, cells_per_diameter, grid, steps, time.perf_counter() - start, values)


def _periodic_values(times: np.ndarray, drag: np.ndarray, lift: np.ndarray, mean_velocity: float) -> dict[str, float]:
    """Max drag and lift and the Strouhal number over the last third of the run (shedding settled)."""
    late = times >= times[-1] - (times[-1] - times[0]) / 3
    t, cl = times[late], lift[late]
    upward = np.nonzero((cl[:-1] < 0) & (cl[1:] >= 0))[0]
    crossings = t[upward] - cl[upward] * (t[upward + 1] - t[upward]) / (cl[upward + 1] - cl[upward])
    period = float(np.mean(np.diff(crossings))) if crossings.size >= 2 else float("nan")
    return {
        "drag_max": float(drag[late].max()),
        "lift_max": float(cl.max()),
        "strouhal": DIAMETER / (period * mean_velocity),
        "periods_measured": float(max(crossings.size - 1, 0)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("benchmark", choices=["schafer-turek"])
    parser.add_argument("--case", choices=sorted(REFERENCE), default="2D-2")
    parser.add_argument("--cells-per-diameter", type=int, default=40)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--cfl", type=float, default=0.9)
    parser.add_argument("--shift", type=float, default=0.0, help="move the cylinder up by this share of a cell")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    result = schafer_turek(args.case, args.cells_per_diameter, args.duration, args.cfl, device=args.device, shift=args.shift)
    print(
        json.dumps({**asdict(result), "reference": REFERENCE[args.case], "relative_errors": result.relative_errors()}, indent=2)
    )


if __name__ == "__main__":
    main()
