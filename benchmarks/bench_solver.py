"""CPU speed of the batched torch cavity solver against a plain NumPy implementation of the same scheme.

Usage: ``python benchmarks/bench_solver.py [--quick]``

1. Checks that ``numpy_reference_solver.NumpyCavitySolver`` and
   ``cfdbench.solvers.simulate.flow_solver('cavity', ...)`` (float64) agree after 20 steps at 32x32,
   Re = 100, dt = 0.005; aborts otherwise, because a speed ratio between two different
   schemes means nothing.
2. Measures cell-updates per second (cells x cases x RK3 steps / seconds), float32 on the CPU,
   for 64², 128², 256² with 1 and 16 torch cases in one batch, after a warm-up, as the
   median of a few timed repeats sized to take ~1-3 s each (~0.2 s with ``--quick``).
   NumPy advances one case at a time, so its 16-case figure is the single-case rate
   (16 sequential cases take 16 times as long).
3. Prints a Markdown table with the environment and writes it to ``benchmarks/results/solver.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cfdbench.solvers.simulate import flow_solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402
from numpy_reference_solver import NumpyCavitySolver  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "solver.md"
GRIDS = (64, 128, 256)
BATCHES = (1, 16)
AGREEMENT_TOLERANCE = 1e-10


# ---------------------------------------------------------------------------- agreement
def cavity(reynolds: float) -> dict[str, float]:
    """SI parameters of a unit-square cavity with unit lid speed at the given Reynolds number."""
    return dict(vel_top=1.0, density=1.0, viscosity=1.0 / reynolds, height=1.0, width=1.0)


def max_difference(n: int, steps: int, dt: float, reynolds: float = 100.0) -> float:
    """Largest |u| or |v| difference between the two float64 solvers after ``steps`` steps from rest."""
    torch_solver, state = flow_solver("cavity", [cavity(reynolds)], (n, n), torch.float64)
    for _ in range(steps):
        state = torch_solver.step(state, dt)
    u, v, _ = NumpyCavitySolver(n, n, reynolds, np.float64).run(steps, dt)
    return max(np.abs(u - state.u[0].numpy()).max(), np.abs(v - state.v[0].numpy()).max())


def check_agreement() -> None:
    """Abort unless both implementations compute the same flow (32², Re 100, 20 steps, dt 0.005)."""
    difference = max_difference(32, 20, 0.005)
    print(f"agreement check (32x32, Re=100, dt=0.005, 20 steps, float64): max |Δu|,|Δv| = {difference:.3e}")
    if not difference < AGREEMENT_TOLERANCE:
        sys.exit(f"ABORT: NumPy reference and torch solver differ by {difference:.3e} >= {AGREEMENT_TOLERANCE:g}")


# ---------------------------------------------------------------------------- timing
def torch_stepper(n: int, batch: int, dt: float) -> Callable[[int], None]:
    """A function advancing a float32 batch of ``batch`` cavities (Re 100..1000) by k steps."""
    cases = [cavity(float(re)) for re in np.geomspace(100, 1000, batch)]
    solver, state = flow_solver("cavity", cases, (n, n), torch.float32)

    def advance(steps: int) -> None:
        nonlocal state
        for _ in range(steps):
            state = solver.step(state, dt)

    return advance


def numpy_stepper(n: int, dt: float) -> Callable[[int], None]:
    """A function advancing one float32 NumPy cavity (Re 100) by k steps."""
    solver = NumpyCavitySolver(n, n, 100.0, np.float32)
    state = solver.rest_state()

    def advance(steps: int) -> None:
        nonlocal state
        state = solver.run(steps, dt, state)

    return advance


def seconds(advance: Callable[[int], None], steps: int) -> float:
    start = time.perf_counter()
    advance(steps)
    return time.perf_counter() - start


def steps_per_second(advance: Callable[[int], None], target: float, repeats: int) -> float:
    """Warm up, size a repeat to take ~``target`` seconds, return the median steps/s of ``repeats``."""
    advance(2)  # first calls: allocations, caches, thread pools
    probe = 3
    per_step = seconds(advance, probe) / probe
    steps = max(2, round(target / per_step))
    times = [seconds(advance, steps) for _ in range(repeats)]
    return steps / statistics.median(times)


def measure(target: float, repeats: int) -> list[dict]:
    """Cell-updates/s of torch (1 and 16 cases) and NumPy (1 case) for every grid."""
    rows = []
    for n in GRIDS:
        dt = 0.25 / n  # CFL 0.5 at the lid speed, so no run blows up during timing
        numpy_rate = steps_per_second(numpy_stepper(n, dt), target, repeats) * n * n
        for batch in BATCHES:
            torch_rate = steps_per_second(torch_stepper(n, batch, dt), target, repeats) * n * n * batch
            rows.append({"grid": n, "cases": batch, "torch": torch_rate, "numpy": numpy_rate})
            print(f"  {n}² x {batch:2d}: torch {torch_rate:.3e}, numpy {numpy_rate:.3e} cell-updates/s", flush=True)
    return rows


# ---------------------------------------------------------------------------- report
def report(rows: list[dict], quick: bool) -> str:
    """The Markdown document: environment, table, notes."""
    header = [
        "# Cavity solver speed: torch (batched) vs plain NumPy, CPU, float32",
        "",
        *environment_lines("cpu", quick),
        "",
        "| grid | cases | torch cell-updates/s | NumPy cell-updates/s | torch / NumPy |",
        "|---|---:|---:|---:|---:|",
    ]
    body = [
        f"| {r['grid']}² | {r['cases']} | {r['torch']:.3e} | {r['numpy']:.3e}{'†' if r['cases'] > 1 else ''} "
        f"| {r['torch'] / r['numpy']:.2f} |"
        for r in rows
    ]
    notes = [
        "",
        "A cell-update is one cell advanced by one full RK3 step (three sub-steps, each with two",
        "Helmholtz solves and one Poisson solve). Median of the timed repeats, after a warm-up.",
        "† NumPy advances one case at a time: 16 cases are 16 sequential runs, so its per-case",
        "rate (the 1-case figure) applies.",
    ]
    return "\n".join(header + body + notes) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~0.2 s per repeat instead of ~1.5 s")
    args = parser.parse_args()
    check_agreement()
    target, repeats = (0.2, 3) if args.quick else (1.5, 3)
    print(f"timing (float32, {repeats} repeats of ~{target} s each) ...", flush=True)
    rows = measure(target, repeats)
    text = report(rows, args.quick)
    publish(text, RESULTS)


if __name__ == "__main__":
    main()
