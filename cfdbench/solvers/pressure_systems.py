"""The pressure systems of the learned-solver track (DCDM against CG and multigrid): masked Poisson
problems as SciPy matrices, taken from a real flow's first projection or built as test problems.

Apart from :mod:`cfdbench.solvers.pressure` because building a flow's system runs the flow solver,
which itself projects with that module.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from cfdbench.solvers.grid import StaggeredGrid
from cfdbench.solvers.navier_stokes import NavierStokesSolver
from cfdbench.solvers.obstacles import GridAlignedObstacle
from cfdbench.solvers.pressure import PressureSystem
from cfdbench.solvers.simulate import flow_solver


def flow_pressure_system(problem: str, params: dict[str, float], cells: tuple[int, int]) -> PressureSystem:
    """The pressure system of a flow's first projection from rest (the impulsive start): its own
    mask, boundary conditions and a right-hand side the solver really meets."""
    solver, state = flow_solver(problem, [params], cells, torch.float64)
    operator, seen = solver.pressure_operator, []
    solver.replace_pressure_solve(lambda b: (seen.append(b), operator.solve(b))[1])
    solver.step(state, solver.stable_dt(state, 0.5))
    return operator.system(seen[0], 0)


def box_with_block_system(
    n: int, singular: bool = True, seed: int = 0, block: tuple[float, float, float, float] = (0.4, 0.6, 0.0, 0.5)
) -> PressureSystem:
    """A test system of the learned-solver track: the masked Poisson problem of an n x n box with a
    grid-aligned block (x0, x1, y0, y1 in the unit square), walled all round (singular, all-Neumann)
    or with an outlet (regular), and the divergence of a seeded random velocity field as right-hand side."""
    one = torch.ones(1, dtype=torch.float64)
    grid = StaggeredGrid(n, n, one, one, "wall" if singular else "channel", "wall")
    x, y = grid.cell_coordinates()
    x0, x1, y0, y1 = block
    body = GridAlignedObstacle(grid, (x > x0) & (x < x1) & (y > y0) & (y < y1))
    solver = NavierStokesSolver(grid, 0.01 * one, obstacle=body)
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(grid.u_shape, dtype=torch.float64, generator=generator) * body.open_u
    v = torch.randn(grid.v_shape, dtype=torch.float64, generator=generator) * body.open_v
    u[..., 0] = 0
    v[:, 0] = v[:, -1] = 0
    if singular:
        u[..., -1] = 0
    return solver.masked_pressure.system(grid.divergence(u, v), 0)


def cube_with_block_system(n: int, block: tuple[tuple[float, float], ...] = ((0.4, 0.6), (0.0, 0.5), (0.3, 0.7)), seed: int = 0):
    """A 3D system of the learned-solver track (DCDM's own problem class): the 7-point Laplacian of
    the fluid cells of a walled unit cube (all-Neumann, singular) with a solid block ((x0, x1),
    (y0, y1), (z0, z1)), cell order (z, y, x), and a seeded random zero-mean right-hand side."""
    centres = (np.arange(n) + 0.5) / n
    z, y, x = np.meshgrid(centres, centres, centres, indexing="ij")
    (x0, x1), (y0, y1), (z0, z1) = block
    fluid = ~((x > x0) & (x < x1) & (y > y0) & (y < y1) & (z > z0) & (z < z1))
    index = -np.ones(fluid.shape, dtype=np.int64)
    index[fluid] = np.arange(int(fluid.sum()))
    rows, cols = [], []
    for axis in range(3):
        here = [slice(None)] * 3
        there = [slice(None)] * 3
        here[axis], there[axis] = slice(None, -1), slice(1, None)
        both = fluid[tuple(here)] & fluid[tuple(there)]
        a, b = index[tuple(here)][both], index[tuple(there)][both]
        rows += [a, b]
        cols += [b, a]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    unknowns = int(fluid.sum())
    off = sp.coo_matrix((-np.ones(rows.size) * n**2, (rows, cols)), shape=(unknowns, unknowns)).tocsr()
    matrix = (off - sp.diags(np.asarray(off.sum(axis=1)).ravel())).tocsr()
    rhs = np.random.default_rng(seed).standard_normal(unknowns)
    return PressureSystem(matrix, rhs - rhs.mean(), fluid, True)
