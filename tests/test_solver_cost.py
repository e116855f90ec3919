"""The solver's cost per case: measured once per dataset, batched as generation runs, recorded beside the
card, and read (never re-measured) by every evaluation for the entry's speed-up."""

from __future__ import annotations

import json

import pytest
from conftest import run_entry_point, write_card

from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.cost import recorded_cost, solver_block


@pytest.fixture
def tiny_home(tmp_path, monkeypatch):
    """A project folder holding the tiny cavity card, as CFDBENCH_HOME."""
    folder = tmp_path / "datasets" / "cavity-tiny"
    folder.mkdir(parents=True)
    write_card(folder)
    monkeypatch.setenv("CFDBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("CFDBENCH_DATA", str(tmp_path / "data"))
    return tmp_path


def test_data_cost_records_the_batched_cost_per_case_beside_the_card(tiny_home):
    result = run_entry_point("data", "cost", "cavity-tiny", "--device", "cpu", cwd=tiny_home)
    assert result.returncode == 0, result.stderr
    recorded = json.loads((tiny_home / "datasets" / "cavity-tiny" / "solver-cost.json").read_text())
    cost = recorded["cavity-tiny"]["cpu"]
    assert cost["cases"] == 5 and cost["frame_intervals"] == 7 and cost["batch_size"] == 16
    assert cost["seconds_per_frame_interval"] > 0 and cost["device"] == "cpu" and "torch threads" in cost["hardware"]
    assert not (tiny_home / "data").exists()  # measured in a scratch folder
    block = solver_block("cavity-tiny", "cpu", 20)
    assert block["seconds_per_rollout"] == pytest.approx(20 * cost["seconds_per_frame_interval"])
    assert solver_block("cavity-tiny", "cuda", 20) is None  # never compared across device types
    assert recorded_cost("no-such-data", "cpu") is None  # converted data, a new card: no speed-up


def test_the_committed_cavity_mini_cost_is_read_not_measured():
    cost = recorded_cost("cavity-mini", "cpu")
    assert cost["cases"] == 24 and cost["batch_size"] == 16 and cost["seconds_per_frame_interval"] > 0


def test_evaluation_reads_the_recorded_cost_and_never_runs_the_solver(tiny_dataset, tiny_home, tmp_path, monkeypatch):
    from cfdbench.data import generate
    from cfdbench.data.loader import AutoregressiveDataset
    from cfdbench.entries.entry import speedup_vs_solver
    from cfdbench.models.registry import build_model, save_checkpoint
    from cfdbench.pipeline import evaluate_checkpoint, operator_meta

    recorded = {"seconds_per_frame_interval": 0.5, "cases": 5, "frame_intervals": 7, "batch_size": 16, "device": "cpu",
                "hardware": "test", "measured": "2026-12-07T00:00:00Z"}  # fmt: skip
    (tiny_home / "datasets" / "cavity-tiny" / "solver-cost.json").write_text(json.dumps({"cavity-tiny": {"cpu": recorded}}))
    samples = AutoregressiveDataset(tiny_dataset, "train")
    checkpoint = save_checkpoint(
        build_model("identity", operator_meta(samples)), tmp_path / "identity.pt", normalization=samples.normalization.to_dict()
    )

    def no_solver(*args, **kwargs):
        raise AssertionError("the solver ran during an evaluation")

    monkeypatch.setattr(generate, "simulate_records", no_solver)
    _, entry = evaluate_checkpoint(checkpoint, str(tiny_dataset.path), steps=3, device="cpu", plots=False)
    cost = entry["cost"]
    assert cost["solver"]["seconds_per_rollout"] == pytest.approx(3 * 0.5) and cost["solver"]["batch_size"] == 16
    assert cost["speedup_vs_solver"] == speedup_vs_solver(cost) == pytest.approx(1.5 / cost["seconds_per_rollout"])


def test_a_cost_for_a_dataset_without_a_card_is_refused_in_one_line(tmp_path):
    from cfdbench.evaluation.cost import record_solver_cost

    with pytest.raises(CfdbenchError, match="has no generator card"):
        record_solver_cost("no-such-data", {"device": "cpu"})
