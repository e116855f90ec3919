"""Iterative solvers for the suite's pressure systems, all stopped by one rule.

The learned-solver track compares the deep conjugate-direction method (DCDM) with conjugate
gradients, unpreconditioned and preconditioned (Jacobi, algebraic multigrid from pyamg). Each
stops when the **true** relative residual ‖b − A x‖ / ‖b‖ falls below the same tolerance (the
reference code mixed absolute and relative tolerances; ``../shared/reference/models.md`` C.7–C.8).
Systems are :class:`cfdbench.solvers.pressure.PressureSystem`: SciPy sparse, SPD, or singular
with a constant null space (all-Neumann), whose right-hand side must then have zero mean.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from cfdbench.errors import CfdbenchError

Preconditioner = Callable[[np.ndarray], np.ndarray]
INCONSISTENCY_LIMIT = 1e-3  # relative size of a singular system's rhs mean that is refused, not projected


@dataclass
class SolveResult:
    """The solution and how it was reached: true relative residuals, from the start (index 0)."""

    x: np.ndarray
    residuals: list[float] = field(default_factory=list)
    converged: bool = False
    seconds: float = 0.0

    @property
    def iterations(self) -> int:
        return len(self.residuals) - 1


def consistent_rhs(matrix: sp.spmatrix, rhs: np.ndarray, singular: bool) -> np.ndarray:
    """The right-hand side a solver may use: unchanged for a regular system; for a singular
    (all-Neumann) one, projected onto the range (zero mean) when the mean is round-off-sized,
    refused with the reason when it is not (no solution exists)."""
    rhs = np.asarray(rhs, dtype=np.float64)
    if rhs.shape != (matrix.shape[0],):
        raise CfdbenchError(f"right-hand side of shape {rhs.shape} does not match a {matrix.shape} system")
    if not singular:
        return rhs
    mean = rhs.mean()
    if abs(mean) * np.sqrt(rhs.size) > INCONSISTENCY_LIMIT * np.linalg.norm(rhs):
        raise CfdbenchError(
            f"the right-hand side is inconsistent with the singular (all-Neumann) system: its mean {mean:.3g} "
            f"is {abs(mean) * np.sqrt(rhs.size) / np.linalg.norm(rhs):.2g} of its norm (limit {INCONSISTENCY_LIMIT:g})"
        )
    return rhs - mean


def jacobi(matrix: sp.spmatrix) -> Preconditioner:
    """Division by the diagonal."""
    inverse = 1.0 / matrix.diagonal()
    return lambda r: inverse * r


def algebraic_multigrid(matrix: sp.spmatrix) -> Preconditioner:
    """One V-cycle of pyamg's smoothed aggregation, symmetric: a CG preconditioner."""
    import pyamg

    hierarchy = pyamg.smoothed_aggregation_solver(sp.csr_matrix(matrix), symmetry="symmetric")
    cycle = hierarchy.aspreconditioner(cycle="V")
    return lambda r: cycle @ r


def conjugate_gradient(
    matrix: sp.spmatrix, rhs: np.ndarray, tol: float, max_iterations: int = 1000, preconditioner: Preconditioner | None = None
) -> SolveResult:
    """(Preconditioned) CG from x = 0 until ‖b − A x‖ / ‖b‖ ≤ ``tol``."""
    started = time.perf_counter()
    norm_b = max(np.linalg.norm(rhs), np.finfo(float).tiny)
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = preconditioner(r) if preconditioner else r
    p = z.copy()
    rz = r @ z
    result = SolveResult(x, [1.0])
    while result.iterations < max_iterations and result.residuals[-1] > tol:
        ap = matrix @ p
        alpha = rz / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        result.residuals.append(float(np.linalg.norm(rhs - matrix @ x) / norm_b))
        z = preconditioner(r) if preconditioner else r
        rz, previous = r @ z, rz
        p = z + (rz / previous) * p
    result.x, result.converged, result.seconds = x, result.residuals[-1] <= tol, time.perf_counter() - started
    return result


def conjugate_directions(
    matrix: sp.spmatrix, rhs: np.ndarray, propose: Preconditioner, tol: float, max_iterations: int = 100, memory: int = 2
) -> SolveResult:
    """DCDM's iteration: a direction proposed from the normalised true residual, A-orthogonalised
    against the last ``memory`` directions, an exact line search, then the true residual again."""
    started = time.perf_counter()
    norm_b = max(np.linalg.norm(rhs), np.finfo(float).tiny)
    x = np.zeros_like(rhs)
    r = rhs.copy()
    directions: list[tuple[np.ndarray, np.ndarray, float]] = []  # (p, A p, pᵀ A p)
    result = SolveResult(x, [1.0])
    while result.iterations < max_iterations and result.residuals[-1] > tol:
        q = propose(r / np.linalg.norm(r))
        for p, ap, pap in directions:
            q = q - (q @ ap) / pap * p
        aq = matrix @ q
        qaq = q @ aq
        if not qaq > 0:
            break  # a direction without curvature: the proposal has collapsed
        x = x + (q @ r) / qaq * q
        r = rhs - matrix @ x
        result.residuals.append(float(np.linalg.norm(r) / norm_b))
        directions = [*directions, (q, aq, qaq)][-memory:]
    result.x, result.converged, result.seconds = x, result.residuals[-1] <= tol, time.perf_counter() - started
    return result
