"""The learned-linear-solver track: DCDM against CG, Jacobi-PCG and AMG-PCG on the suite's
pressure systems, every solver stopped on the same true relative residual.

DCDM's network is trained once, at one grid size, and applied at every size: the method's claim
is an iteration count largely independent of problem size. Results: one row per (size,
tolerance, solver) with iterations, convergence and wall time, a Markdown table and a plot of
iterations against the number of unknowns (``cfdbench evaluate --track linear-solvers``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cfdbench.errors import CfdbenchError  # noqa: E402
from cfdbench.solvers.krylov import (  # noqa: E402
    algebraic_multigrid,
    conjugate_directions,
    conjugate_gradient,
    consistent_rhs,
    jacobi,
)
from cfdbench.solvers.pressure import box_with_block_system  # noqa: E402
from cfdbench.training.dcdm import proposal, train_dcdm  # noqa: E402

SOLVERS = ("CG", "Jacobi-PCG", "AMG-PCG", "DCDM")
TOLERANCES = (1e-4, 1e-6)


@dataclass(frozen=True)
class SolverRow:
    size: int
    unknowns: int
    tolerance: float
    solver: str
    iterations: int
    converged: bool
    seconds: float


def compare_linear_solvers(
    sizes: list[int], train_size: int = 32, train_steps: int = 400, tolerances: tuple[float, ...] = TOLERANCES, seed: int = 0
) -> tuple[list[SolverRow], float]:
    """(rows, DCDM training seconds) for box-with-block systems of every size (even, >= 8)."""
    if any(n < 8 or n % 2 for n in [*sizes, train_size]):
        raise CfdbenchError(f"grid sizes must be even and at least 8 (DCDM pools once), got {sizes} and {train_size}")
    started = time.perf_counter()
    network, _ = train_dcdm(box_with_block_system(train_size, seed=seed), steps=train_steps, seed=seed)
    training_seconds = time.perf_counter() - started
    rows = []
    for n in sizes:
        system = box_with_block_system(n, seed=seed)
        matrix, rhs = system.matrix, consistent_rhs(system.matrix, system.rhs, system.singular)
        solve = {
            "CG": lambda tol: conjugate_gradient(matrix, rhs, tol, 10 * matrix.shape[0]),
            "Jacobi-PCG": lambda tol: conjugate_gradient(matrix, rhs, tol, 10 * matrix.shape[0], jacobi(matrix)),
            "AMG-PCG": lambda tol: conjugate_gradient(matrix, rhs, tol, 1000, algebraic_multigrid(matrix)),
            "DCDM": lambda tol: conjugate_directions(matrix, rhs, proposal(network, system.mask), tol, 1000),
        }
        for tol in tolerances:
            for name in SOLVERS:
                result = solve[name](tol)
                rows.append(SolverRow(n, matrix.shape[0], tol, name, result.iterations, result.converged, result.seconds))
    return rows, training_seconds


def markdown_table(rows: list[SolverRow]) -> str:
    """One line per grid and tolerance: each solver's iterations, and its time relative to CG."""
    lines = [
        "| grid (unknowns) | tolerance | " + " | ".join(f"{s} iterations" for s in SOLVERS) + " | DCDM time / CG |",
        "|---|---:|" + "---:|" * (len(SOLVERS) + 1),
    ]
    for size, tol in dict.fromkeys((r.size, r.tolerance) for r in rows):
        group = {r.solver: r for r in rows if (r.size, r.tolerance) == (size, tol)}
        counts = " | ".join(f"{group[s].iterations}{'' if group[s].converged else ' (not converged)'}" for s in SOLVERS)
        ratio = group["DCDM"].seconds / max(group["CG"].seconds, 1e-12)
        lines.append(f"| {size}² ({group['CG'].unknowns}) | {tol:g} | {counts} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def plot_iterations(rows: list[SolverRow], path: Path) -> Path:
    """Iterations against unknowns, one line per solver, at the tightest tolerance."""
    tightest = min(r.tolerance for r in rows)
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for solver in SOLVERS:
        points = sorted((r.unknowns, r.iterations) for r in rows if r.solver == solver and r.tolerance == tightest)
        axis.plot(*zip(*points), marker="o", label=solver)
    axis.set(xscale="log", yscale="log", xlabel="unknowns", ylabel=f"iterations to {tightest:g}", title="pressure systems")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def rows_as_dicts(rows: list[SolverRow]) -> list[dict]:
    return [asdict(r) for r in rows]
