"""Iterative solvers on the suite's own pressure systems: one relative-residual rule for all."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from cfdbench.errors import CfdbenchError
from cfdbench.solvers.krylov import (
    algebraic_multigrid,
    conjugate_directions,
    conjugate_gradient,
    consistent_rhs,
    jacobi,
)
from cfdbench.solvers.pressure_systems import box_with_block_system


@pytest.mark.parametrize("singular", [True, False])
def test_every_solver_reaches_the_same_relative_residual(singular):
    system = box_with_block_system(32, singular)
    rhs = consistent_rhs(system.matrix, system.rhs, system.singular)
    tol = 1e-6
    results = {
        "cg": conjugate_gradient(system.matrix, rhs, tol),
        "jacobi": conjugate_gradient(system.matrix, rhs, tol, preconditioner=jacobi(system.matrix)),
        "amg": conjugate_gradient(system.matrix, rhs, tol, preconditioner=algebraic_multigrid(system.matrix)),
    }
    for name, result in results.items():
        assert result.converged, name
        true = np.linalg.norm(rhs - system.matrix @ result.x) / np.linalg.norm(rhs)
        assert true <= tol and result.residuals[-1] == pytest.approx(true), name
    assert results["amg"].iterations < results["jacobi"].iterations <= results["cg"].iterations
    if not singular:  # a unique solution: every solver finds it
        exact = spla.spsolve(system.matrix.tocsc(), rhs)
        for result in results.values():
            assert np.abs(result.x - exact).max() <= 1e-4 * np.abs(exact).max()


def test_conjugate_directions_with_a_good_proposal_converge_in_few_iterations():
    """DCDM's loop: with a proposal close to A⁻¹ (an AMG V-cycle standing in for the network) it
    converges to 1e-6 in far fewer iterations than CG; with the identity as proposal it is CG
    itself (A-orthogonalising the residual against the last direction is CG's recurrence)."""
    system = box_with_block_system(32, singular=True)
    rhs = consistent_rhs(system.matrix, system.rhs, system.singular)
    amg = conjugate_directions(system.matrix, rhs, algebraic_multigrid(system.matrix), 1e-6)
    cg = conjugate_gradient(system.matrix, rhs, 1e-6)
    assert amg.converged and amg.iterations < cg.iterations / 3
    plain = conjugate_directions(system.matrix, rhs, lambda r: r, 1e-6, max_iterations=500)
    assert plain.converged and abs(plain.iterations - cg.iterations) <= 2
    np.testing.assert_allclose(plain.residuals[:40], cg.residuals[:40], rtol=1e-6)


def test_an_inconsistent_singular_rhs_is_refused_and_a_round_off_one_projected():
    system = box_with_block_system(32, singular=True)
    with pytest.raises(CfdbenchError, match="inconsistent with the singular"):
        consistent_rhs(system.matrix, system.rhs + 1.0, singular=True)
    nudged = system.rhs + 1e-9 * np.abs(system.rhs).max()
    assert abs(consistent_rhs(system.matrix, nudged, singular=True).mean()) < 1e-15
    with pytest.raises(CfdbenchError, match="does not match"):
        consistent_rhs(system.matrix, system.rhs[:-1], singular=False)
