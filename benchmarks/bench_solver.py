"""CPU speed of the batched cavity solver: per step against the same scheme in NumPy, and to a steady
state against an independent explicit NumPy/SciPy solver.

Usage: ``python benchmarks/bench_solver.py [--quick] [--grids 64 128 256] [--steady-grids ...] [--threads 1]``

Every comparison measures both sides in the same run, alternating them (A B A B ...) and taking
medians, on one thread per side unless ``--threads`` says otherwise (then both sides get that many:
torch's intra-op threads, and NumPy's BLAS through the environment of a fresh process).

1. **Agreement.** ``numpy_reference_solver.NumpyCavitySolver`` and the torch solver (float64) must
   agree after 20 steps at 32², Re 100 (viscosity explicit) and Re 2 (Crank–Nicolson); otherwise the
   run aborts, because a speed ratio between two different schemes means nothing.
2. **Cell-updates per second** (cells x cases x RK3 steps / seconds), float32, for 1 and 16 cases in one
   batch, eager and through ``torch.compile``, against the same-scheme NumPy solver on one case (it
   runs cases one after another, so its per-case rate is its 16-case rate too).
3. **Wall time per case to the steady cavity** (max |Δu|/Δt < 1e-4 U/L, checked every 10 steps on both
   sides, each at its largest stable step) at Re 100 and 400: 16 float32 cases in one batch (eager and compiled) against the explicit
   NumPy/SciPy solver of ``explicit_numpy_solver.py`` (AB2, DCT pressure, float64: NumPy's own
   precision; float32 cannot resolve 1e-4 U/L at its step on the finer grids). Compiled runs take
   their kernels from the compile cache of step 2 (a first compile adds ~15 s per grid and batch).
Writes ``benchmarks/results/solver.md`` (``--quick``: ``benchmarks/results/quick/``, not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cfdbench.solvers.navier_stokes import steady_residual
from cfdbench.solvers.simulate import flow_solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402
from explicit_numpy_solver import ExplicitCavity  # noqa: E402
from numpy_reference_solver import NumpyCavitySolver  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
AGREEMENT_TOLERANCE = 1e-10
STEADY_TOLERANCE = 1e-4
CFL = 1.0  # per-step rates
# To a steady state each side takes its largest stable step: the explicit NumPy solver its own, RK3 with
# Crank–Nicolson viscosity CFL 1.5 (the explicit-viscous scan's limit; √3 is pure advection's).
STEADY_CFL = 1.5


def cavity(reynolds: float) -> dict[str, float]:
    """SI parameters of a unit-square cavity with unit lid speed at the given Reynolds number."""
    return dict(vel_top=1.0, density=1.0, viscosity=1.0 / reynolds, height=1.0, width=1.0)


# ---------------------------------------------------------------------------- agreement
def max_difference(n: int, steps: int, dt: float, reynolds: float) -> float:
    """Largest |u| or |v| difference between the two float64 solvers after ``steps`` steps from rest."""
    torch_solver, state = flow_solver("cavity", [cavity(reynolds)], (n, n), torch.float64)
    for _ in range(steps):
        state = torch_solver.step(state, dt)
    u, v, _ = NumpyCavitySolver(n, n, reynolds, np.float64).run(steps, dt)
    return max(np.abs(u - state.u[0].numpy()).max(), np.abs(v - state.v[0].numpy()).max())


def check_agreement() -> None:
    for reynolds in (100.0, 2.0):
        difference = max_difference(32, 20, 0.005, reynolds)
        print(f"agreement (32², Re {reynolds:g}, dt 0.005, 20 steps, float64): max |Δu|,|Δv| = {difference:.3e}")
        if not difference < AGREEMENT_TOLERANCE:
            sys.exit(f"ABORT: NumPy reference and torch solver differ by {difference:.3e} >= {AGREEMENT_TOLERANCE:g}")


# ---------------------------------------------------------------------------- per-step rates
def torch_stepper(n: int, batch: int, compile: bool) -> Callable[[int], None]:
    """Advances a float32 batch of cavities (Re 400-600, viscosity explicit) by k steps of the stable step."""
    cases = [cavity(float(re)) for re in np.geomspace(400, 600, batch)]
    solver, state = flow_solver("cavity", cases, (n, n), torch.float32, compile=compile)
    step = solver.time_step(solver.stable_dt(state, CFL))

    def advance(steps: int) -> None:
        nonlocal state
        for _ in range(steps):
            state = solver.step(state, step)

    return advance


def numpy_stepper(n: int) -> Callable[[int], None]:
    """Advances one float32 same-scheme NumPy cavity (Re 400) by k steps of the same step."""
    solver = NumpyCavitySolver(n, n, 400.0, np.float32)
    state = solver.rest_state()
    dt = CFL / (2 * n)

    def advance(steps: int) -> None:
        nonlocal state
        state = solver.run(steps, dt, state)

    return advance


def seconds(advance: Callable[[int], None], steps: int) -> float:
    start = time.perf_counter()
    advance(steps)
    return time.perf_counter() - start


def alternate(sides: dict[str, Callable[[int], None]], target: float, repeats: int) -> dict[str, float]:
    """Seconds per step of each side: warm up, size each repeat to ~``target`` s, then time the sides in
    turn (A B C A B C ...) and take each side's median."""
    steps = {}
    for name, advance in sides.items():
        advance(3)  # first calls: allocations, compilation, thread pools
        per_step = seconds(advance, 3) / 3
        steps[name] = max(2, round(target / per_step))
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, advance in sides.items():
            times[name].append(seconds(advance, steps[name]) / steps[name])
    return {name: statistics.median(values) for name, values in times.items()}


def rates(grids: list[int], target: float, repeats: int) -> list[dict]:
    rows = []
    for n in grids:
        sides = {
            "numpy": numpy_stepper(n),
            "eager 1": torch_stepper(n, 1, False),
            "eager 16": torch_stepper(n, 16, False),
            "compiled 1": torch_stepper(n, 1, True),
            "compiled 16": torch_stepper(n, 16, True),
        }
        per_step = alternate(sides, target, repeats)
        row = {"grid": n, **{name: (16 if name.endswith("16") else 1) * n * n / t for name, t in per_step.items()}}
        rows.append(row)
        print(f"  {n}²: " + ", ".join(f"{k} {v:.3e}" for k, v in row.items() if k != "grid"), flush=True)
    return rows


# ---------------------------------------------------------------------------- time to steady
def torch_to_steady(n: int, reynolds: float, batch: int, compile: bool) -> tuple[float, int]:
    """(wall seconds per case, steps) for ``batch`` float32 cavities to the steady tolerance."""
    start = time.perf_counter()
    solver, state = flow_solver("cavity", [cavity(reynolds)] * batch, (n, n), torch.float32, compile=compile)
    step = solver.time_step(solver.stable_dt(state, STEADY_CFL))
    steps = 0
    while True:
        for _ in range(9):
            state = solver.step(state, step)
        after = solver.step(state, step)
        steps += 10
        steady = float(steady_residual(state, after, step.dt).max()) < STEADY_TOLERANCE
        state = after
        if steady:
            return (time.perf_counter() - start) / batch, steps


def numpy_to_steady(n: int, reynolds: float) -> tuple[float, int]:
    """(wall seconds, steps) of one explicit NumPy/SciPy cavity to the steady tolerance (checked every 10 steps)."""
    start = time.perf_counter()
    solver = ExplicitCavity(n, reynolds, np.float64)
    steps = 0
    while True:
        for _ in range(9):
            solver.step()
        steps += 10
        if solver.step() < STEADY_TOLERANCE:
            return time.perf_counter() - start, steps


def steady(grids: list[int], reynolds_numbers: list[float], repeats: int) -> list[dict]:
    rows = []
    for reynolds in reynolds_numbers:
        for n in grids:
            sides = {
                "numpy": lambda: numpy_to_steady(n, reynolds),
                "eager": lambda: torch_to_steady(n, reynolds, 16, False),
                "compiled": lambda: torch_to_steady(n, reynolds, 16, True),
            }
            results: dict[str, list[tuple[float, int]]] = {name: [] for name in sides}
            for _ in range(repeats if n < 256 else 1):
                for name, run in sides.items():
                    results[name].append(run())
            row = {"re": reynolds, "grid": n}
            for name, values in results.items():
                row[name] = statistics.median(v[0] for v in values)
                row[f"{name} steps"] = values[0][1]
            rows.append(row)
            print(f"  Re {reynolds:g}, {n}²: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("re", "grid")), flush=True)
    return rows


# ---------------------------------------------------------------------------- report
def report(rate_rows: list[dict], steady_rows: list[dict], threaded: list[dict], quick: bool, threads: int) -> str:
    lines = [
        "# Cavity solver speed, CPU, float32",
        "",
        *environment_lines("cpu", quick),
        f"- one thread per side (torch {threads}, NumPy single-threaded); sides alternated, medians",
        "",
        "## Cell-updates per second (cells x cases x RK3 steps / s), against the same scheme in NumPy",
        "",
        "| grid | NumPy (1 case) | eager, 1 case | eager, 16 cases | compiled, 1 case | compiled, 16 cases | eager 16 / NumPy | compiled 16 / NumPy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rate_rows:
        lines.append(
            f"| {r['grid']}² | {r['numpy']:.3e} | {r['eager 1']:.3e} | {r['eager 16']:.3e} | {r['compiled 1']:.3e} | "
            f"{r['compiled 16']:.3e} | {r['eager 16'] / r['numpy']:.2f} | {r['compiled 16'] / r['numpy']:.2f} |"
        )
    if rate_rows:
        base = rate_rows[0]
        lines += [
            "",
            "Time per cell-update at 16 cases, relative to the smallest grid: "
            + ", ".join(
                f"{r['grid']}²: eager {base['eager 16'] / r['eager 16']:.2f}x, compiled {base['compiled 16'] / r['compiled 16']:.2f}x"
                for r in rate_rows
            )
            + ".",
        ]
    for t in threaded:
        lines += ["", f"With {t['threads']} threads on both sides, {t['grid']}²: " + ", ".join(f"{k} {v:.3e}" for k, v in t.items() if k not in ("grid", "threads"))]
    lines += [
        "",
        f"## Wall time per case to the steady cavity (max |Δu|/Δt < {STEADY_TOLERANCE:g} U/L)",
        "",
        f"16 float32 cases in one batch (CFL {STEADY_CFL:g}; viscosity explicit where RK3 allows it at that step) against one",
        "explicit AB2/DCT NumPy case (float64, its largest stable step); compiled kernels from the compile cache.",
        "",
        "| Re | grid | NumPy explicit s (steps) | eager s per case (steps) | compiled s per case | NumPy / eager | NumPy / compiled |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in steady_rows:
        lines.append(
            f"| {r['re']:g} | {r['grid']}² | {r['numpy']:.3g} ({r['numpy steps']}) | {r['eager']:.3g} ({r['eager steps']}) | "
            f"{r['compiled']:.3g} | {r['numpy'] / r['eager']:.2f} | {r['numpy'] / r['compiled']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def threaded_row(grid: int, threads: int, quick: bool) -> dict:
    """The per-step rates with ``threads`` threads on both sides, measured in a fresh process whose BLAS
    pools are sized by its environment."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--rates-only", str(grid), "--threads", str(threads)] + (["--quick"] if quick else [])
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return {"threads": threads, **json.loads(output.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids, short repeats (what the test runs)")
    parser.add_argument("--grids", type=int, nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steady-grids", type=int, nargs="+", default=None, help="grids of the time-to-steady rows (default: --grids)")
    parser.add_argument("--rates-only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    target, repeats = (0.05, 2) if args.quick else (1.0, 3)
    if args.rates_only is not None:
        print(json.dumps(rates([args.rates_only], target, repeats)[0]))
        return
    grids = args.grids or ([16, 32] if args.quick else [64, 128, 256])
    check_agreement()
    print(f"per-step rates ({repeats} alternated repeats of ~{target} s) ...", flush=True)
    rate_rows = rates(grids, target, repeats)
    threaded = [threaded_row(grids[0], 2, args.quick)] if args.threads == 1 else []
    print("time to steady ...", flush=True)
    steady_rows = steady(args.steady_grids or (grids[:1] if args.quick else grids), [100.0] if args.quick else [100.0, 400.0], 1 if args.quick else 2)
    text = report(rate_rows, steady_rows, threaded, args.quick, args.threads)
    publish(text, RESULTS / "solver.md", args.quick)


if __name__ == "__main__":
    main()
