"""The DPOT-compatible task (cfdbench/data/dpot.py) on fake releases laid out as CFDBench's: frames
0.1 s apart (every 1st, 10th, 100th released frame), CFDBench's autoregressive split, 10 input
frames -> 1 with the mask, and DPOT's per-field relative L2 error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_entry_point

from cfdbench.data.cfdbench_release import cfdbench_split
from cfdbench.data.convert import convert_release
from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.data.resolve import open_dataset
from cfdbench.errors import CfdbenchError
from cfdbench.metrics import evaluate_all

PARAMS = {
    "cavity": {"vel_top": 1.0, "density": 1.0, "viscosity": 1e-3, "height": 0.01, "width": 0.01},
    "tube": {"vel_in": 1.0, "density": 100.0, "viscosity": 0.1, "height": 0.1, "width": 1.0},
    "cylinder": {"vel_in": 1.0, "density": 10.0, "viscosity": 1e-3, "radius": 0.01,
                 "x_min": -0.06, "x_max": 0.16, "y_min": -0.06, "y_max": 0.06},
}  # fmt: skip
STRIDE = {"cavity": 1, "tube": 10, "cylinder": 100}  # the release's 0.1 s, 0.01 s, 0.001 s frames
CASES = {"prop": range(50, 54), "bc": range(0, 4), "geo": range(1, 3)}  # 10 cases: no split is empty
FRAMES_KEPT = 13  # 10 inputs and a target fit 3 times per case


def fake_release(root, problem):
    """CFDBench's layout; u in column 0 is the frame number plus the case's (so a stored frame tells
    which released frame it is)."""
    frames = (FRAMES_KEPT - 1) * STRIDE[problem] + 1
    for subset, numbers in CASES.items():
        for number in numbers:
            folder = root / problem / subset / f"case{number:04d}"
            folder.mkdir(parents=True)
            t, y, x = np.meshgrid(np.arange(frames, dtype=np.float64), np.arange(8), np.arange(8), indexing="ij")
            np.save(folder / "u.npy", t + number + 0.1 * np.sin(t) * x)  # t + number in column 0
            np.save(folder / "v.npy", np.cos(t) * y)
            (folder / "case.json").write_text(json.dumps(PARAMS[problem]))
    return root / problem


@pytest.mark.parametrize("problem", list(PARAMS))
def test_dpot_conversion_keeps_frames_0_1_s_apart_and_cfdbench_s_split(problem, tmp_path):
    raw = fake_release(tmp_path / "release", problem)
    out = tmp_path / f"cfdbench-{problem}-prop_bc_geo-dpot"
    convert_release(raw, problem, "prop_bc_geo", out, task="dpot")
    data = open_dataset(out)
    assert data.manifest["info"]["task"] == "dpot" and data.manifest["info"]["dataset"] == out.name
    for case_id in data.case_ids:
        with data.open_case(case_id) as case:
            u, dt = case.read(("u",), slice(None))[:, 0], case.dt
        number = int(case_id.split("-")[1])
        assert dt == pytest.approx(0.1) and len(u) == FRAMES_KEPT
        np.testing.assert_array_equal(u[:, 0, 0], np.arange(FRAMES_KEPT) * STRIDE[problem] + number)
    ordered = [f"{s}-{n:04d}" for s, numbers in CASES.items() for n in numbers]  # prop, bc, geo
    rounding = "round" if problem == "cavity" else "int"
    assert {k: data.split(k) for k in ("train", "valid", "test")} == cfdbench_split(ordered, rounding)
    samples = AutoregressiveDataset(data, "test", input_frames=10)  # the task: 10 frames -> the next
    assert len(samples) == 3 * len(data.split("test"))
    sample = samples[0]
    assert sample["input"].shape == (20, 8, 8) and sample["target"].shape == (2, 8, 8) and sample["mask"].shape == (1, 8, 8)


def test_dpot_task_refuses_the_dam_and_legacy_frames(tmp_path):
    with pytest.raises(CfdbenchError, match="omits the dam"):
        convert_release(tmp_path, "dam", "prop_bc_geo", tmp_path / "out", task="dpot")
    raw = fake_release(tmp_path / "release", "cavity")
    with pytest.raises(CfdbenchError, match="does not combine with --legacy"):
        convert_release(raw, "cavity", "prop_bc_geo", tmp_path / "out", task="dpot", legacy=True)


def test_dpot_convert_command_names_the_dataset(tmp_path):
    raw = fake_release(tmp_path / "release", "tube")
    result = run_entry_point("data", "convert", "cfdbench/tube", "--task", "dpot", "--raw", str(raw), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "cfdbench-tube-prop_bc_geo-dpot" / "manifest.json").is_file()


def test_l2re_is_dpot_s_relative_l2_per_field():
    """u off by 10 % everywhere, v exact: (0.1 + 0) / 2, each field against its own norm."""
    target = torch.ones(1, 2, 4, 4, dtype=torch.float64)
    target[:, 1] = 5.0
    pred = target.clone()
    pred[:, 0] *= 1.1
    values = evaluate_all(pred, target, torch.ones(1, 1, 4, 4, dtype=torch.float64))
    assert float(values["l2re"][0]) == pytest.approx(0.1 / 2 * 4 / (4 + 1e-8))
    assert float(values["rel_l2"][0]) == pytest.approx(0.1 / np.sqrt(26))  # cfdbench's pools the fields
