"""Pressure Poisson problems on domains with solid cells: batched PCG, and the systems as matrices.

On the fluid cells of a masked MAC grid the projection solves ``-div(open * grad phi) = -b``,
where ``open`` closes every face touching a solid cell. The operator is symmetric positive
(semi-)definite but not separable, so it is solved iteratively: conjugate gradients
preconditioned by the fast direct solver of the unobstructed rectangle (device-agnostic,
a few tens of iterations). :meth:`MaskedPoisson.system` exposes each case's problem as a
SciPy sparse matrix, right-hand side and mask, the form that pyamg and learned solvers use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError
from cfdbench.solvers.fast_diagonalization import FastDiagonalSolver
from cfdbench.solvers.grid import StaggeredGrid

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


@dataclass
class PressureSystem:
    """One case's Poisson problem ``matrix @ x = rhs`` on its fluid cells (row-major (y, x) order)."""

    matrix: sp.csr_matrix  # SPD (or semi-definite with a constant null space when ``singular``)
    rhs: np.ndarray  # (n_fluid,)
    mask: np.ndarray  # (ny, nx) bool, True on the fluid cells that are unknowns
    singular: bool


class MaskedPoisson:
    """``-div(open grad phi) = -b`` on fluid cells, ``phi = 0`` on solid cells, for a batch."""

    def __init__(self, grid: StaggeredGrid, open_u: Tensor, open_v: Tensor, fluid: Tensor, preconditioner: FastDiagonalSolver):
        self.grid = grid
        self.open_u = open_u.to(grid.dtype)
        self.open_v = open_v.to(grid.dtype)
        self.fluid = fluid.to(grid.dtype)
        self.preconditioner = preconditioner
        self._precondition_denominator = preconditioner.denominator(0.0, -1.0)
        self.singular = preconditioner.singular  # no p = 0 boundary: constants on the fluid are free
        self.iterations: list[int] = []  # per solve, for diagnostics and benchmarks
        self.residuals: list[float] = []  # worst final relative residual per DCDM solve

    def apply(self, phi: Tensor) -> Tensor:
        """The SPD operator: minus the masked Laplacian on fluid cells, identity on solid cells."""
        gx, gy = self.grid.gradient(phi * self.fluid)
        lap = self.grid.divergence(gx * self.open_u, gy * self.open_v)
        return -lap * self.fluid + phi * (1 - self.fluid)

    def _precondition(self, r: Tensor) -> Tensor:
        return -self.fluid * self.preconditioner.solve(r * self.fluid, self._precondition_denominator)

    def _remove_fluid_mean(self, a: Tensor) -> Tensor:
        if not self.singular:
            return a
        count = _case_sums(self.fluid).reshape(-1, 1, 1)
        mean = _case_sums(a * self.fluid).reshape(-1, 1, 1) / count
        return (a - mean) * self.fluid

    def solve(self, b: Tensor, max_iterations: int = 500) -> Tensor:
        """phi with ``masked Laplacian(phi) = b`` on the fluid cells (zero fluid mean if singular).

        Each case stops at its own convergence (its iterate is frozen while the rest of the batch
        finishes), so its solution does not depend on the cases solved with it."""
        rhs = self._remove_fluid_mean(-b * self.fluid)
        x = torch.zeros_like(rhs)
        r = rhs.clone()
        z = self._precondition(r)
        p = z.clone()
        rz = _case_sums(r * z)
        target = TOLERANCE.get(self.grid.dtype, 1e-6) * _case_norms(rhs)
        active = _case_norms(r) > target
        tiny = torch.finfo(rhs.dtype).tiny
        for iteration in range(1, max_iterations + 1):
            if not bool(active.any()):
                self.iterations.append(iteration - 1)
                return self._remove_fluid_mean(x)
            ap = self.apply(p)
            alpha = torch.where(active, rz / _case_sums(p * ap).clamp_min(tiny), torch.zeros_like(rz)).reshape(-1, 1, 1)
            x = torch.addcmul(x, alpha, p)
            r = torch.addcmul(r, alpha, ap, value=-1)
            active = active & (_case_norms(r) > target)
            z = self._precondition(r)
            rz_new = _case_sums(r * z)
            beta = torch.where(active, rz_new / rz.clamp_min(tiny), torch.zeros_like(rz)).reshape(-1, 1, 1)
            p = torch.addcmul(z, beta, p)
            rz = rz_new
        if not bool(active.any()):
            self.iterations.append(max_iterations)
            return self._remove_fluid_mean(x)
        residual = (_case_norms(r) / _case_norms(rhs).clamp_min(1e-300)).max().item()
        raise CfdbenchError(
            f"masked pressure solve did not converge in {max_iterations} iterations (relative residual {residual:.2e})"
        )

    def solve_conjugate_directions(
        self, b: Tensor, propose: Callable[[Tensor], Tensor], tolerance: float, max_iterations: int, memory: int = 2
    ) -> Tensor:
        """phi as :meth:`solve` defines it, by DCDM's iteration (the batched twin of
        :func:`cfdbench.solvers.krylov.conjugate_directions`): ``propose`` maps unit-norm residual
        images (B, 1, ny, nx) to search directions, which are A-orthogonalised against the last
        ``memory`` directions and line-searched exactly. Stops when every case's true relative
        residual is at most ``tolerance`` or after ``max_iterations`` (a fixed budget: no error);
        the iterations and the worst final residual are appended to ``iterations`` / ``residuals``."""
        rhs = self._remove_fluid_mean(-b * self.fluid)
        norm_b = _norms(rhs).clamp_min(torch.finfo(rhs.dtype).tiny)
        x, r = torch.zeros_like(rhs), rhs.clone()
        relative = _norms(r) / norm_b
        directions: list[tuple[Tensor, Tensor, Tensor]] = []  # (p, A p, pᵀ A p)
        iteration = 0
        while iteration < max_iterations and bool((relative > tolerance).any()):
            iteration += 1
            unit = r / _norms(r).clamp_min(torch.finfo(r.dtype).tiny).reshape(-1, 1, 1)
            q = self._remove_fluid_mean(propose(unit[:, None])[:, 0].to(r.dtype) * self.fluid)
            for p, ap, pap in directions:
                q = q - (_dots(q, ap) / pap).reshape(-1, 1, 1) * p
            aq = self.apply(q)
            qaq = _dots(q, aq)
            active = (relative > tolerance) & (qaq > 0)  # converged cases (and collapsed proposals) stay put
            step = torch.where(active, _dots(q, r) / torch.where(active, qaq, torch.ones_like(qaq)), torch.zeros_like(qaq))
            x = x + step.reshape(-1, 1, 1) * q
            r = rhs - self.apply(x)
            relative = _norms(r) / norm_b
            directions = [*directions, (q, aq, torch.where(active, qaq, torch.ones_like(qaq)))][-memory:]
        self.iterations.append(iteration)
        self.residuals.append(float(relative.max()))
        return self._remove_fluid_mean(x)

    # ------------------------------------------------------------------ explicit matrices
    def system(self, b: Tensor, case: int) -> PressureSystem:
        """Case ``case`` of ``masked Laplacian(phi) = b`` as a sparse SPD system on its fluid cells."""
        g = self.grid
        fluid = self.fluid[case].bool().cpu().numpy()
        ny, nx = fluid.shape
        index = -np.ones((ny, nx), dtype=np.int64)
        index[fluid] = np.arange(int(fluid.sum()))
        dx2, dy2 = float(g.dx[case].item()) ** 2, float(g.dy[case].item()) ** 2
        open_u = self.open_u[case].bool().cpu().numpy()
        open_v = self.open_v[case].bool().cpu().numpy()
        rows, cols, vals = [], [], []
        diagonal = np.zeros(index.max() + 1)

        def couple(a: np.ndarray, b_: np.ndarray, weight: float) -> None:
            """Open interior faces between fluid cells a and b (flat indices) add a Laplacian edge."""
            rows.extend([a, b_])
            cols.extend([b_, a])
            vals.extend([np.full(a.size, -weight)] * 2)
            np.add.at(diagonal, a, weight)
            np.add.at(diagonal, b_, weight)

        # x-faces between cells (j, i-1) and (j, i): u-face column i (after the inlet/wall face).
        inner_u = open_u[:, 1:nx] & fluid[:, 1:] & fluid[:, :-1]
        couple(index[:, :-1][inner_u], index[:, 1:][inner_u], 1 / dx2)
        inner_v = open_v[1:ny] & fluid[1:] & fluid[:-1]
        couple(index[:-1][inner_v], index[1:][inner_v], 1 / dy2)
        if g.bc_x == "channel":  # p = 0 on the outlet face, half a cell beyond the last cell
            outlet = fluid[:, -1] & open_u[:, -1]
            np.add.at(diagonal, index[:, -1][outlet], 2 / dx2)
        n = diagonal.size
        matrix = sp.coo_matrix(
            (np.concatenate(vals + [diagonal]), (np.concatenate(rows + [np.arange(n)]), np.concatenate(cols + [np.arange(n)]))),
            shape=(n, n),
        ).tocsr()
        rhs = -b[case].double().cpu().numpy()[fluid]
        return PressureSystem(matrix, rhs, fluid, self.singular)


def _case_sums(a: Tensor) -> Tensor:
    """Σ over each case's (ny, nx) cells, (B,): rows first, then the row sums, so the summation order
    is the same whatever the batch size or thread count (a one-stage reduction to one value may be
    split across threads)."""
    return a.sum(dim=-1).sum(dim=-1)


def _case_norms(a: Tensor) -> Tensor:
    return _case_sums(a * a).sqrt()


def _dots(a: Tensor, b: Tensor) -> Tensor:
    return _case_sums(a * b)


def _norms(a: Tensor) -> Tensor:
    return _case_norms(a)


def solve_with_amg(system: PressureSystem, tol: float = 1e-12) -> np.ndarray:
    """Reference CPU solve of a :class:`PressureSystem` by pyamg-preconditioned CG (zero mean if singular)."""
    import pyamg

    rhs = system.rhs - system.rhs.mean() if system.singular else system.rhs
    amg = pyamg.smoothed_aggregation_solver(system.matrix, symmetry="symmetric")
    x = amg.solve(rhs, tol=tol, accel="cg", maxiter=500)
    return x - x.mean() if system.singular else x
