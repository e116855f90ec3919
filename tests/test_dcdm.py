"""DCDM's network (the reference's parameter counts), its line-search loss, and the learned-linear-solver track."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_entry_point

from cfdbench.errors import CfdbenchError
from cfdbench.models.dcdm import DEPTHS, DCDMNetwork, dcdm_loss
from cfdbench.solvers.pressure_systems import box_with_block_system
from cfdbench.tracks.linear_solvers import check_track_entry

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: DCDM runs faster on one thread


def test_network_has_the_reference_parameter_counts_and_shapes():
    """models.md C.1: 97,457 (N = 64) and 152,881 (N = 128) parameters in 3D."""
    for size, expected in ((64, 97_457), (128, 152_881)):
        assert sum(p.numel() for p in DCDMNetwork(3, depths=DEPTHS[size]).parameters()) == expected
    assert DCDMNetwork(3)(torch.randn(2, 1, 8, 8, 8)).shape == (2, 1, 8, 8, 8)
    assert DCDMNetwork(2)(torch.randn(2, 1, 16, 12)).shape == (2, 1, 16, 12)
    with pytest.raises(ValueError, match="even grid sizes"):
        DCDMNetwork(2)(torch.randn(1, 1, 15, 16))


def test_loss_is_the_residual_after_one_exact_line_search():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(12, 12))
    a = m @ m.T + 12 * np.eye(12)  # SPD
    matrix = torch.tensor(a)
    apply = lambda p: (matrix @ p.reshape(p.shape[0], -1).T).T.reshape(p.shape)  # noqa: E731
    b = torch.tensor(rng.normal(size=(3, 1, 3, 4)))
    b = b / b.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    p = torch.tensor(rng.normal(size=(3, 1, 3, 4)))
    expected = []
    for bi, pi in zip(b.flatten(1).numpy(), p.flatten(1).numpy()):
        step = (pi @ bi) / (pi @ a @ pi)
        expected.append(np.sum((bi - step * a @ pi) ** 2))
    assert float(dcdm_loss(apply, b, p)) == pytest.approx(np.mean(expected), rel=1e-12)
    assert float(dcdm_loss(apply, b, 7.5 * p)) == pytest.approx(np.mean(expected), rel=1e-12)  # scale-invariant
    exact = torch.linalg.solve(matrix, b.flatten(1).T).T.reshape(b.shape)
    assert float(dcdm_loss(apply, b, exact)) < 1e-20  # A⁻¹b leaves nothing


def test_trained_network_beats_cg_on_a_held_out_right_hand_side():
    """Issue: on a small 2D system DCDM reaches 1e-6 in fewer iterations than unpreconditioned CG.
    Trained on Ritz combinations of a walled box with a block (24 x 24), tested on the divergence
    of a random velocity field, which it never saw."""
    from cfdbench.solvers.krylov import conjugate_directions, conjugate_gradient, consistent_rhs
    from cfdbench.training.dcdm import proposal, train_dcdm

    system = box_with_block_system(24, singular=True)
    network, losses = train_dcdm(system, steps=150)
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:5])
    rhs = consistent_rhs(system.matrix, system.rhs, system.singular)
    learned = conjugate_directions(system.matrix, rhs, proposal(network, system.mask), 1e-6, max_iterations=300)
    plain = conjugate_gradient(system.matrix, rhs, 1e-6)
    assert learned.converged and learned.iterations < plain.iterations, (learned.iterations, plain.iterations)


def test_linear_solver_track_writes_its_table_json_and_plot(tmp_path):
    args = ["evaluate", "--track", "linear-solvers", "--size", "8", "--size", "12", "--train-size", "8", "--train-steps", "20"]
    done = run_entry_point(*args, "--run-dir", str(tmp_path / "track"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "track" / "linear_solvers.json").read_text())
    check_track_entry(report, "track")
    assert report["system"] == "box" and report["dcdm"]["train_steps"] == 20
    assert {(r["size"], r["tolerance"], r["solver"]) for r in report["rows"]} == {
        (n, tol, solver) for n in (8, 12) for tol in (1e-4, 1e-6) for solver in ("CG", "Jacobi-PCG", "AMG-PCG", "DCDM")
    }
    assert all(r["converged"] for r in report["rows"] if r["solver"] != "DCDM")  # a 20-step network may not converge
    assert (tmp_path / "track" / "iterations.png").stat().st_size > 0 and "| 12x12 (" in done.stdout
    refused = run_entry_point("evaluate", "--track", "linear-solvers", "--size", "9", cwd=tmp_path)
    assert refused.returncode == 2 and "must be even" in refused.stderr
    refused = run_entry_point("evaluate", "--track", "linear-solvers", "--system", "dam", "--size", "12", cwd=tmp_path)
    assert refused.returncode == 2 and "multiple of 8" in refused.stderr
    assert run_entry_point("evaluate", "--track", "linear-solvers", "--system", "pipe", cwd=tmp_path).returncode == 2
    assert run_entry_point("evaluate", "--track", "pipes", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("family", ["cavity", "dam"])
def test_the_flows_own_systems_train_on_one_geometry_and_test_on_another(family):
    """The track's flow families: the training and held-out systems are the flow's own (the dam's
    barrier cells removed, an outlet row; the cavity all-Neumann) and differ in geometry."""
    from cfdbench.tracks.linear_solvers import SYSTEMS

    train, test = SYSTEMS[family].build(16, False), SYSTEMS[family].build(16, True)
    assert train.singular == test.singular == (family == "cavity")
    assert np.isfinite(test.rhs).all() and np.linalg.norm(test.rhs) > 0
    if family == "dam":
        assert train.mask.shape == test.mask.shape == (16, 60) and test.mask.sum() < train.mask.sum()  # a bigger barrier
    else:
        assert train.matrix.shape == test.matrix.shape and (train.matrix != test.matrix).nnz > 0  # the 2:1 cells


def test_published_track_entries_render_and_a_malformed_one_is_refused(tmp_path):
    from cfdbench.tracks.linear_solvers import SolverRow, render_track, track_entry

    rows = [SolverRow(8, "8x8", 64, 1e-4, s, 5, True, 0.01) for s in ("CG", "Jacobi-PCG", "AMG-PCG", "DCDM")]
    entry = track_entry(rows, "box", 8, 20, 1.0)
    (tmp_path / f"{entry['entry_id']}.json").write_text(json.dumps(entry))
    page = render_track(tmp_path).read_text()
    assert "## box:" in page and "| 8x8 (64) | 0.0001 | 5 | 5 | 5 | 5 | 1.00 |" in page
    (tmp_path / "bad.json").write_text(json.dumps({**entry, "rows": [{"solver": "SOR"}]}))
    with pytest.raises(CfdbenchError, match="every row needs"):
        render_track(tmp_path)


def test_the_track_runs_its_3d_family_with_the_3d_network(tmp_path):
    """The cube family: a 3D masked Laplacian (symmetric, constants in its null space), DCDM's 3D
    network trained on one block position and run on another."""
    from cfdbench.solvers.pressure_systems import cube_with_block_system
    from cfdbench.tracks.linear_solvers import compare_linear_solvers

    system = cube_with_block_system(8)
    assert system.singular and abs(system.matrix - system.matrix.T).max() == 0
    assert np.abs(system.matrix @ np.ones(system.matrix.shape[0])).max() == 0 and system.mask.shape == (8, 8, 8)
    rows, _ = compare_linear_solvers([8], train_size=8, train_steps=2, tolerances=(1e-4,), system="cube")
    assert {r.solver for r in rows} == {"CG", "Jacobi-PCG", "AMG-PCG", "DCDM"} and rows[0].grid == "8x8x8"
    assert all(r.converged for r in rows if r.solver != "DCDM")
