"""The NumPy speed baseline (benchmarks/numpy_reference_solver.py) runs the same scheme as the torch solver.

If the solver's discretisation changes, this fails, so the benchmark never compares
against a different method.
"""

import importlib.util
from pathlib import Path

import numpy as np
import torch

from cfdbench.solvers.simulate import flow_solver

REFERENCE = Path(__file__).resolve().parents[1] / "benchmarks" / "numpy_reference_solver.py"


def load_reference():
    """Import the benchmark module by path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("numpy_reference_solver", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


import pytest


@pytest.mark.parametrize("reynolds", [100.0, 2.0])  # viscosity explicit at dt = 0.01, and Crank–Nicolson
def test_numpy_reference_matches_torch_solver_float64(reynolds):
    n, steps, dt = 16, 5, 0.01
    params = dict(vel_top=1.0, density=1.0, viscosity=1.0 / reynolds, height=1.0, width=1.0)
    solver, state = flow_solver("cavity", [params], (n, n), torch.float64)
    for _ in range(steps):
        state = solver.step(state, dt)

    u, v, p = load_reference().NumpyCavitySolver(n, n, reynolds, np.float64).run(steps, dt)

    assert np.abs(state.u[0].numpy()).max() > 0.05  # the flow is not trivially at rest
    np.testing.assert_allclose(u, state.u[0].numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(v, state.v[0].numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(p, solver.gauge_pressure(state.p)[0].numpy(), rtol=0, atol=1e-10)
    assert bool(solver.time_step(dt).explicit.all()) == (reynolds > 10)
