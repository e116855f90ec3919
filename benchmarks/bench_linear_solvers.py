"""Iterations and time to one relative tolerance: DCDM against CG, Jacobi-PCG and AMG-PCG.

Usage: ``python benchmarks/bench_linear_solvers.py [--sizes 16 32 64] [--train-size 32] [--steps 400]``

The systems are the suite's own: the masked pressure Poisson problem of a walled box with a
grid-aligned block (all-Neumann, singular), right-hand side the divergence of a random velocity
field. DCDM's network is trained once, at ``--train-size``, on Ritz right-hand sides of that
grid's system, then applied at every size (the paper's claim: iteration counts largely
independent of size). Every solver stops on the same true relative residual (1e-4 and 1e-6).
CG is the reference measured in the same run; the table gives each method's iterations and
its time relative to CG.

Writes the Markdown table with the environment to ``benchmarks/results/linear-solvers.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402

from cfdbench.solvers.krylov import (  # noqa: E402
    algebraic_multigrid,
    conjugate_directions,
    conjugate_gradient,
    consistent_rhs,
    jacobi,
)
from cfdbench.solvers.pressure import box_with_block_system as pressure_system  # noqa: E402
from cfdbench.training.dcdm import proposal, train_dcdm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "linear-solvers.md"
TOLERANCES = (1e-4, 1e-6)


def measure(sizes: list[int], train_size: int, steps: int) -> tuple[list[dict], float]:
    started = time.perf_counter()
    network, _ = train_dcdm(pressure_system(True, n=train_size), steps=steps)
    training_seconds = time.perf_counter() - started
    rows = []
    for n in sizes:
        system = pressure_system(True, n=n)
        rhs = consistent_rhs(system.matrix, system.rhs, system.singular)
        solvers = {
            "CG": lambda tol: conjugate_gradient(system.matrix, rhs, tol, max_iterations=5000),
            "Jacobi-PCG": lambda tol: conjugate_gradient(system.matrix, rhs, tol, 5000, jacobi(system.matrix)),
            "AMG-PCG": lambda tol: conjugate_gradient(system.matrix, rhs, tol, 5000, algebraic_multigrid(system.matrix)),
            "DCDM": lambda tol: conjugate_directions(system.matrix, rhs, proposal(network, system.mask), tol, 1000),
        }
        for tol in TOLERANCES:
            results = {name: solve(tol) for name, solve in solvers.items()}
            for name, result in results.items():
                rows.append(
                    {"n": n, "unknowns": system.matrix.shape[0], "tol": tol, "solver": name, "iterations": result.iterations,
                     "converged": result.converged, "seconds": result.seconds, "cg_seconds": results["CG"].seconds}
                )  # fmt: skip
                print(f"  {n}² tol {tol:g} {name:10s}: {result.iterations:5d} iterations, {result.seconds * 1e3:.1f} ms")
    return rows, training_seconds


def report(rows: list[dict], train_size: int, steps: int, training_seconds: float) -> str:
    header = [
        "# Linear solvers: iterations and time to a relative residual, the suite's pressure systems (CPU)",
        "",
        *environment_lines("cpu", False),
        f"- DCDM: trained at {train_size}² for {steps} Adam steps ({training_seconds:.1f} s), applied at every size",
        "",
        "| grid | unknowns | tolerance | solver | iterations | converged | ms | time / CG |",
        "|---|---:|---:|---|---:|---|---:|---:|",
    ]
    body = [
        f"| {r['n']}² | {r['unknowns']} | {r['tol']:g} | {r['solver']} | {r['iterations']} | {'yes' if r['converged'] else 'no'} "
        f"| {r['seconds'] * 1e3:.1f} | {r['seconds'] / r['cg_seconds']:.2f} |"
        for r in rows
    ]
    notes = [
        "",
        "System: walled box with a block (all-Neumann, singular; right-hand side projected to zero mean).",
        "Stop: true relative residual ‖b − Ax‖/‖b‖ for every solver. DCDM's time includes its network",
        "calls on the CPU (no GPU), which dominate at these sizes.",
    ]
    return "\n".join(header + body + notes) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--train-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    rows, training_seconds = measure(args.sizes, args.train_size, args.steps)
    publish(report(rows, args.train_size, args.steps, training_seconds), RESULTS)


if __name__ == "__main__":
    main()
