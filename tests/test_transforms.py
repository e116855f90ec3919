"""The axis transforms diagonalise their second-difference operators, for every end condition and
every method (matrix, folded matrix, FFT), and the fast-diagonal solve agrees with a dense solve."""

import pytest
import torch

from cfdbench.errors import CfdbenchError
from cfdbench.solvers.fast_diagonalization import FastDiagonalSolver
from cfdbench.solvers.transforms import FOLD_MIN, AxisTransform, second_difference

KINDS = [
    "neumann",
    "dirichlet_cells",
    "dirichlet_faces",
    "periodic",
    ("neumann", "dirichlet_cells"),
    ("dirichlet_cells", "neumann"),
    ("dirichlet_faces", "neumann"),
]


def _as_matrix(transform: AxisTransform, n: int) -> torch.Tensor:
    """The forward transform applied to the identity: row k is mode k (in the transform's order)."""
    return transform.forward(torch.eye(n, dtype=torch.float64), dim=0)


@pytest.mark.parametrize("kind", KINDS, ids=str)
@pytest.mark.parametrize("n", [7, 16, FOLD_MIN, FOLD_MIN + 1, 150])
@pytest.mark.parametrize("method", ["matrix", "fft"])
def test_transform_diagonalises_its_operator(kind, n, method):
    transform = AxisTransform(kind, n, torch.float64, "cpu", method=method)
    modes = _as_matrix(transform, n)  # (modes, points)
    operator = second_difference(n, kind)
    inverse = transform.inverse(torch.eye(n, dtype=torch.float64), dim=0)  # (points, modes)
    # modes @ A @ inverse is diagonal with the eigenvalues in the transform's order
    diagonal = modes @ operator @ inverse
    assert torch.allclose(diagonal, torch.diag(transform.eigenvalues), atol=1e-9)
    assert torch.allclose(inverse @ modes, torch.eye(n, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("n", [FOLD_MIN, 128])
def test_folded_axes_agree_with_the_plain_matrix_along_every_dimension(n):
    folded = AxisTransform("dirichlet_faces", n, torch.float64, "cpu")
    assert folded._folded is not None, "axes of FOLD_MIN or more unknowns fold"
    natural_basis = folded._matrix  # rows are modes in natural order
    x = torch.randn(n, 3, n, dtype=torch.float64)
    for dim in (0, 2, -1):
        natural = torch.movedim(torch.movedim(x, dim, -1) @ natural_basis.T, -1, dim)
        assert torch.allclose(folded.forward(x, dim), natural.index_select(dim, folded._folded.order), atol=1e-12)
        assert torch.allclose(folded.inverse(folded.forward(x, dim), dim), x, atol=1e-12)


@pytest.mark.parametrize("kinds", [("neumann", "neumann"), ("dirichlet_faces", "dirichlet_cells"), (("neumann", "dirichlet_cells"), "neumann")], ids=str)
@pytest.mark.parametrize("shape", [(12, 9), (70, 66)])
def test_fast_diagonal_solve_matches_a_dense_solve(kinds, shape):
    nx, ny = shape
    dx, dy = torch.tensor([0.1, 0.3], dtype=torch.float64), torch.tensor([0.2, 0.05], dtype=torch.float64)
    solver = FastDiagonalSolver(kinds[0], nx, kinds[1], ny, dx, dy)
    rhs = torch.randn(2, ny, nx, dtype=torch.float64)
    shift, coef = 1.0, torch.tensor([0.01, 0.002], dtype=torch.float64)
    x = solver.solve(rhs, solver.denominator(shift, coef))
    for case in range(2):
        ax = second_difference(nx, kinds[0]) / dx[case] ** 2
        ay = second_difference(ny, kinds[1]) / dy[case] ** 2
        laplacian = torch.kron(torch.eye(ny, dtype=torch.float64), ax) + torch.kron(ay, torch.eye(nx, dtype=torch.float64))
        system = torch.eye(nx * ny, dtype=torch.float64) - coef[case] * laplacian
        dense = torch.linalg.solve(system, rhs[case].reshape(-1))
        assert torch.allclose(x[case].reshape(-1), dense, atol=1e-10)


def test_unsupported_end_conditions_and_short_axes_are_refused():
    with pytest.raises(CfdbenchError, match="no transform for the end conditions"):
        AxisTransform(("periodic", "neumann"), 8, torch.float64, "cpu")
    with pytest.raises(CfdbenchError, match="at least 2 unknowns"):
        AxisTransform("neumann", 1, torch.float64, "cpu")
