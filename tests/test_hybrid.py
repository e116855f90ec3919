"""DCDM inside the flow solver: the batched conjugate-direction projection, the flows' own pressure
systems, the hybrid rollout scored by the evaluator, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import TINY_CARD, run_entry_point, write_card
from torch import nn

from cfdbench.cards import load_dataset_card
from cfdbench.data.generate import DatasetGenerator, generate_dataset
from cfdbench.data.resolve import open_dataset
from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.hybrid import score_hybrid, simulate_hybrid
from cfdbench.evaluation.rollout import RolloutTask
from cfdbench.leaderboard.render import render_leaderboard
from cfdbench.models.base import OperatorMeta
from cfdbench.models.dcdm import DCDMSolver
from cfdbench.solvers.simulate import flow_solver
from cfdbench.training.dcdm import lanczos, ritz_vectors
from cfdbench.training.hybrid import training_system

CAVITY = dict(vel_top=1.0, density=1.0, viscosity=0.01, height=1.0, width=1.0)
DAM = dict(velocity=1.0, density=100.0, viscosity=0.1, height=0.4, width=1.5, barrier_height=0.1, barrier_width=0.05)
META = OperatorMeta(("u", "v"), 1, 5, (16, 16))


def _random_velocity(solver, seed=0):
    g = solver.grid
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(g.u_shape, generator=generator, dtype=g.dtype)
    v = torch.randn(g.v_shape, generator=generator, dtype=g.dtype)
    v[:, 0] = v[:, -1] = 0
    if g.bc_x == "wall":
        u[..., 0] = u[..., -1] = 0
    return u, v


class ExactInverse(nn.Module):
    """A 'network' proposing A⁻¹ r for an unobstructed grid (the fast direct solve): DCDM must stop after one step."""

    def __init__(self, operator):
        super().__init__()
        self.operator = operator

    def forward(self, images):
        return self.operator._precondition(images[:, 0].to(self.operator.grid.dtype))[:, None]


@pytest.mark.parametrize("problem, params, cells", [("cavity", CAVITY, (16, 16)), ("dam", DAM, (60, 16))])
def test_projection_by_conjugate_directions_matches_the_exact_one(problem, params, cells):
    """The full-grid operator of a box (cavity) and the masked one of the dam: DCDM's batched
    projection, with the exact solve's preconditioner as proposal, gives the exact projection."""
    solver, _ = flow_solver(problem, [params, params], cells, torch.float64)
    u, v = _random_velocity(solver)
    exact_u, exact_v, _ = solver.project(u.clone(), v.clone())
    operator = solver.pressure_operator
    propose = ExactInverse(operator)
    solver.replace_pressure_solve(lambda b: operator.solve_conjugate_directions(b, propose, 1e-10, 60))
    hybrid_u, hybrid_v, _ = solver.project(u.clone(), v.clone())
    assert operator.residuals[-1] <= 1e-10
    if problem == "cavity":
        assert operator.iterations[-1] == 1  # the fast solver is A⁻¹ on the unobstructed box
    torch.testing.assert_close(hybrid_u, exact_u, rtol=0, atol=1e-8)
    torch.testing.assert_close(hybrid_v, exact_v, rtol=0, atol=1e-8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: DCDM runs faster on one thread


def test_an_iteration_budget_stops_without_error_and_records_the_residual():
    solver, _ = flow_solver("dam", [DAM], (60, 16), torch.float64)
    u, v = _random_velocity(solver)
    operator = solver.pressure_operator
    operator.solve_conjugate_directions(solver.grid.divergence(u, v), lambda r: r, 1e-12, 3)
    assert operator.iterations[-1] == 3 and 1e-12 < operator.residuals[-1] < 1


def test_lanczos_ritz_pairs_are_the_eigenpairs_when_run_to_the_end():
    solver, _ = flow_solver("dam", [DAM], (60, 16), torch.float64)
    matrix = solver.pressure_operator.system(torch.zeros(solver.grid.p_shape, dtype=torch.float64), 0).matrix
    values, vectors = lanczos(matrix, matrix.shape[0])
    exact = scipy.linalg.eigvalsh(matrix.toarray())
    np.testing.assert_allclose(values, exact, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(matrix @ vectors - vectors * values, axis=0), 0, atol=1e-6 * exact.max())
    few, _ = lanczos(matrix, 40)
    assert exact[0] - 1e-9 <= few[0] and few[-1] <= exact[-1] + 1e-9  # Ritz values lie inside the spectrum
    assert few[-1] == pytest.approx(exact[-1], rel=1e-2)  # and the extremes converge first
    dense_values, _ = ritz_vectors(matrix)
    assert dense_values.min() > 0  # a regular (outlet) system keeps every eigenpair


def test_a_network_for_another_flow_or_grid_is_refused():
    model = DCDMSolver(META, trained_on={"problem": "dam", "cells": [150, 40]})
    model.check_applicable("dam", (150, 40))
    with pytest.raises(CfdbenchError, match="trained on dam systems on a 150x40 grid; it cannot solve cavity"):
        model.check_applicable("cavity", (150, 40))
    with pytest.raises(CfdbenchError, match="cannot solve dam systems on a 300x80 grid"):
        model.check_applicable("dam", (300, 80))
    with pytest.raises(CfdbenchError, match="not been trained"):
        DCDMSolver(META).check_applicable("dam", (150, 40))
    with pytest.raises(CfdbenchError, match="hybrid solver"):
        model.predict(torch.zeros(1, 2, 16, 16), torch.ones(1, 1, 16, 16), torch.zeros(1, 5))


def test_the_hybrid_with_an_exact_proposal_reproduces_the_exact_solver(tiny_dataset):
    """The plumbing's oracle: with A⁻¹ as its 'network', the hybrid rollout is the exact solver's,
    scored by the rollout evaluator to round-off, while the identity is not."""
    generator = DatasetGenerator.of(tiny_dataset)
    description, system = training_system(generator, tiny_dataset)
    assert description["test_geometry_held_out"] and description["case"] == "geo-0000"  # the only other geometry
    assert system.singular and system.matrix.shape == (256, 256)
    test_case = generator.cases[tiny_dataset.split("test")[0]]
    solver, _ = flow_solver("cavity", [test_case.params], (16, 16), torch.float32)
    model = DCDMSolver(META, tolerance=1e-5, trained_on={"problem": "cavity", "cells": [16, 16]})
    model.network = ExactInverse(solver.pressure_operator)
    task = RolloutTask(steps=4)
    runs = simulate_hybrid(model, tiny_dataset, tiny_dataset.split("test"), task)
    result, one_step, reproduction = score_hybrid(runs, tiny_dataset, ("u", "v"), task)
    (case_id,) = result.case_ids
    scale = np.abs(runs.exact[case_id]).max()
    assert len(runs.rollout[case_id]) == task.frames_needed == 5 and len(runs.exact[case_id]) == 8
    np.testing.assert_allclose(runs.rollout[case_id], runs.exact[case_id][:5], rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(runs.one_step[case_id], runs.exact[case_id], rtol=0, atol=1e-4 * scale)
    summary = result.summary()
    assert summary["model"]["nmse"] == pytest.approx(reproduction, rel=0.1, abs=1e-9)
    assert summary["model"]["nmse"] < 1e-3 * summary["identity"]["nmse"]
    # An exact proposal converges at once (the tolerance sits above float32's round-off floor of ~1e-6).
    assert max(runs.iterations) <= 2 and np.mean(runs.divergence["hybrid"]) < 1e-3


def test_run_dcdm_writes_a_hybrid_entry_and_scores_a_blow_up_as_diverged(tmp_path):
    """`cfdbench run --model dcdm` end to end on a generated dataset (8 x 8 cavities, 4 frames), with a
    network trained for two steps and a two-iteration budget: whatever the rollout does, the entry
    is valid and says it, and `evaluate` of its checkpoint reproduces it."""
    solver = {**TINY_CARD["solver"], "cells_x": 8, "cells_y": 8, "n_frames": 4, "store_solver_grid": False}
    card = load_dataset_card(write_card(tmp_path, solver=solver, frames={"nx": 8, "ny": 8}))
    generate_dataset(card, tmp_path / card.name)
    tiny_dataset = open_dataset(tmp_path / card.name)
    args = ["run", "--model", "dcdm", "--dataset", str(tiny_dataset.path), "--steps", "3", "--runs-root", str(tmp_path)]
    settings = ["--set", "model.train_steps=2", "--set", "model.max_iterations=2", "--set", "model.lanczos_steps=20"]
    done = run_entry_point(*args, *settings, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (entry_path,) = tmp_path.glob("*/entry.json")
    entry = json.loads(entry_path.read_text())
    hybrid = entry["hybrid"]
    assert hybrid["iterations_max"] <= 2 and hybrid["trained_on"]["problem"] == "cavity"
    assert entry["model"]["name"] == "dcdm" and entry["training"]["steps"] == 2
    assert set(entry["diverged"]) <= set(entry["dataset"]["case_ids"])
    rerun_dir = tmp_path / "rerun"
    args = ["evaluate", "--checkpoint", str(entry_path.parent / "checkpoint.pt"), "--dataset", str(tiny_dataset.path)]
    done = run_entry_point(*args, "--steps", "3", "--run-dir", str(rerun_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rerun = json.loads((rerun_dir / "entry.json").read_text())
    assert "dcdm (hybrid: the dataset's solver projecting with DCDM" in render_leaderboard([entry])
    assert rerun["metrics"] == entry["metrics"] and rerun["hybrid"]["trained_on"] == hybrid["trained_on"]  # deterministic
    refused = run_entry_point("run", "--model", "dcdm", "--dataset", "channel180-tiny", cwd=tmp_path)
    assert refused.returncode != 0
