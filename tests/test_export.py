"""Export to CFDBench's raw layout and to The Well's; the round trip generate -> export -> convert;
CFDBench's legacy padding and parameter order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from peer_envs import venv_python

from cfdbench.cards import load_dataset_card
from cfdbench.data.cfdbench_release import read_case
from cfdbench.data.convert import convert_release
from cfdbench.data.export import export_dataset
from cfdbench.data.generate import generate_dataset
from cfdbench.data.legacy import legacy_frames
from cfdbench.data.resolve import open_dataset
from cfdbench.data.store import case_path
from cfdbench.data.well_format import check_well_data, check_well_dataset, check_well_file, outlier_steps
from cfdbench.errors import CfdbenchError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_cylinder(tmp_path_factory):
    """Three small cylinder cases (a bc pair and a geo box): obstacle mask and signed box bounds."""
    raw = yaml.safe_load((REPO / "datasets" / "cylinder" / "cylinder.yaml").read_text())
    raw["presets"]["tiny"]["solver"].update(spinup=1, n_frames=5)
    raw["presets"]["tiny"]["subsets"] = {
        "bc": {"vel_in": [0.5, 1.0]},
        "geo": [{"radius": 0.015, "x_min": 0.06, "x_max": 0.16, "y_min": 0.06, "y_max": 0.07}],
    }
    root = tmp_path_factory.mktemp("cylinder")
    (root / "cylinder.yaml").write_text(yaml.safe_dump(raw))
    card = load_dataset_card(root / "cylinder.yaml").variant("tiny")
    generate_dataset(card, root / "data")
    return open_dataset(root / "data")


def assert_same_dataset(original, converted):
    assert converted.case_ids == original.case_ids
    for split in ("train", "valid", "test"):
        assert converted.split(split) == original.split(split)
    for case_id in original.case_ids:
        with original.open_case(case_id) as a, converted.open_case(case_id) as b:
            ra, rb = a.to_record(include_solver_fields=False), b.to_record(include_solver_fields=False)
        assert ra.params == rb.params and ra.dt == rb.dt and ra.subset == rb.subset
        np.testing.assert_array_equal(ra.fluid_fraction, rb.fluid_fraction)
        np.testing.assert_allclose(ra.x, rb.x, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ra.y, rb.y, rtol=0, atol=1e-12)
        assert set(ra.fields) == set(rb.fields) == {"u", "v", "p"}
        for name in ra.fields:
            np.testing.assert_array_equal(ra.fields[name], rb.fields[name])


@pytest.mark.parametrize("which", ["cavity", "cylinder"])
def test_generate_export_raw_convert_round_trip(which, tiny_dataset, tiny_cylinder, tmp_path):
    original = tiny_dataset if which == "cavity" else tiny_cylinder
    report = export_dataset(original.path, tmp_path / "raw", "cfdbench-raw")
    problem = which
    assert sorted(report.written) == original.case_ids
    case_dir = tmp_path / "raw" / problem / original.case_ids[0].replace("-", "/case")
    assert sorted(p.name for p in case_dir.iterdir()) == ["case.json", "cfdbench.json", "p.npy", "u.npy", "v.npy"]
    meta = json.loads((case_dir / "case.json").read_text())
    if problem == "cylinder":  # CFDBench's signed box: the disc sits at the origin
        assert meta["x_min"] < 0 < meta["x_max"] and meta["y_min"] < 0 < meta["y_max"]
    converted = convert_release(
        tmp_path / "raw", problem, "bc_geo", tmp_path / "back", splits_file=tmp_path / "raw" / problem / "splits.json"
    )
    assert not converted.skipped and not converted.split_matches_release
    assert_same_dataset(original, open_dataset(tmp_path / "back"))
    again = export_dataset(original.path, tmp_path / "raw", "cfdbench-raw")  # resumable: nothing rewritten
    assert not again.written and sorted(again.reused) == original.case_ids


def test_convert_without_splits_file_uses_cfdbench_split(tiny_dataset, tmp_path):
    from cfdbench.data.cfdbench_release import cfdbench_split

    export_dataset(tiny_dataset.path, tmp_path / "raw", "cfdbench-raw")
    convert_release(tmp_path / "raw", "cavity", "bc_geo", tmp_path / "back")
    back = open_dataset(tmp_path / "back")
    assert {k: back.split(k) for k in ("train", "valid", "test")} == cfdbench_split(tiny_dataset.case_ids, "round")


def test_splits_file_must_cover_the_cases(tiny_dataset, tmp_path):
    export_dataset(tiny_dataset.path, tmp_path / "raw", "cfdbench-raw")
    splits_path = tmp_path / "raw" / "cavity" / "splits.json"
    splits = json.loads(splits_path.read_text())
    splits["train"] = splits["train"][1:]
    splits_path.write_text(json.dumps(splits))
    with pytest.raises(CfdbenchError, match="do not cover the converted cases exactly"):
        convert_release(tmp_path / "raw", "cavity", "bc_geo", tmp_path / "back", splits_file=splits_path)


def test_the_well_export_passes_the_schema_checker(tiny_cylinder, tmp_path):
    report = export_dataset(tiny_cylinder.path, tmp_path / "well", "the-well")
    root = tmp_path / "well" / "datasets" / tiny_cylinder.name
    assert report.out == root and sorted(report.written) == tiny_cylinder.case_ids
    assert check_well_dataset(root) == []
    for split in ("train", "valid", "test"):
        assert sorted(p.stem for p in (root / "data" / split).glob("*.hdf5")) == sorted(tiny_cylinder.split(split))
    meta = yaml.safe_load((root / f"{tiny_cylinder.name}.yaml").read_text())
    assert meta["spatial_resolution"] == [64, 64] and meta["field_names"] == {0: ["pressure"], 1: ["velocity"], 2: []}
    stats = yaml.safe_load((root / "stats.yaml").read_text())
    case_id = tiny_cylinder.split("train")[0]
    with h5py.File(root / "data" / "train" / f"{case_id}.hdf5", "r") as f:
        assert "solver_grid" not in f and "case_id" not in f.attrs  # nothing of cfdbench's
        velocity = f["t1_fields/velocity"][()]
        with tiny_cylinder.open_case(case_id) as case:
            np.testing.assert_array_equal(velocity[0, :, 5, 9, 0], case.read(("u",), slice(None))[:, 0, 9, 5])
    if len(tiny_cylinder.split("train")) == 1:  # stats over every cell of the training split
        assert stats["mean"]["velocity"][0] == pytest.approx(velocity[..., 0].astype(np.float64).mean(), rel=1e-6)
    assert (root / "README.md").read_text().startswith(f"# {tiny_cylinder.name}")
    assert stats["mean"]["mask"] < 1 and stats["std"]["mask"] > 0  # the disc: The Well normalises constant fields too


def test_the_well_export_meets_the_well_checkers(tiny_cylinder, tmp_path):
    """The rules The Well's check_thewell_formatting.py and check_thewell_data.py apply (its pip
    package ships neither): time is flagged time_varying, so its expected shape is (T,); bc_type
    is upper-case; no NaN or constant frames. A file in cfdbench's stored layout fails the first two."""
    export_dataset(tiny_cylinder.path, tmp_path / "well", "the-well")
    files = sorted((tmp_path / "well" / "datasets" / tiny_cylinder.name / "data").glob("*/*.hdf5"))
    for path in files:
        with h5py.File(path, "r") as f:
            time = f["dimensions/time"]
            assert time.attrs["time_varying"] and not time.attrs["sample_varying"] and time.shape == (time.shape[-1],)
            assert {str(bc.attrs["bc_type"]) for bc in f["boundary_conditions"].values()} == {"OPEN", "WALL"}
        assert check_well_file(path) == [] and check_well_data(path) == []
    stored = case_path(tiny_cylinder.path, tiny_cylinder.case_ids[0])  # cfdbench's own case file
    assert any("dimensions/time has shape" in p for p in check_well_file(stored))
    assert any("not upper-case" in p for p in check_well_data(stored))


def test_resumed_export_rewrites_files_the_checkers_reject(tiny_dataset, tmp_path):
    export_dataset(tiny_dataset.path, tmp_path / "well", "the-well")
    path = next((tmp_path / "well" / "datasets" / tiny_dataset.name / "data" / "train").glob("*.hdf5"))
    with h5py.File(path, "a") as f:
        f["dimensions/time"].attrs["time_varying"] = False  # as earlier exports wrote it
    again = export_dataset(tiny_dataset.path, tmp_path / "well", "the-well")
    assert again.written == [path.stem] and check_well_file(path) == []


def test_schema_checker_finds_broken_files(tiny_dataset, tmp_path):
    export_dataset(tiny_dataset.path, tmp_path / "well", "the-well")
    path = next((tmp_path / "well" / "datasets" / tiny_dataset.name / "data" / "train").glob("*.hdf5"))
    assert check_well_file(path) == []
    with h5py.File(path, "a") as f:
        f["t0_fields/pressure"].attrs["time_varying"] = False  # the shape no longer follows the flags
        del f["scalars/" + list(f.attrs["simulation_parameters"])[0]]
        f["dimensions"].attrs["spatial_dims"] = ["x"]
    problems = check_well_file(path)
    assert any("n_spatial_dims" in p for p in problems)
    with h5py.File(path, "a") as f:
        f["dimensions"].attrs["spatial_dims"] = ["x", "y"]
    problems = check_well_file(path)
    assert any("t0_fields/pressure has shape" in p for p in problems)
    assert any("is not a dataset in scalars/" in p for p in problems)
    assert check_well_dataset(path.parents[2])  # and the folder check reports them


def test_data_checker_finds_what_the_well_flags(tiny_dataset, tmp_path):
    """NaN frames, constant frames after the first and a lower-case bc_type are issues; a frame whose
    mean lies far from the others' is an outlier, which The Well reports without counting it."""
    export_dataset(tiny_dataset.path, tmp_path / "well", "the-well")
    first, second = sorted((tmp_path / "well" / "datasets" / tiny_dataset.name / "data" / "train").glob("*.hdf5"))[:2]
    with h5py.File(first, "a") as f:
        f["t0_fields/pressure"][0, 2] = np.nan
        f["t0_fields/pressure"][0, 3] = 7.0
        next(iter(f["boundary_conditions"].values())).attrs["bc_type"] = "wall"
    problems = check_well_data(first)
    assert len(problems) == 3 and any("not upper-case" in p for p in problems)
    assert "pressure[0] of trajectory 0: NaN in steps [2]" in problems
    assert "pressure[0] of trajectory 0: constant frames at steps [3]" in problems
    assert check_well_dataset(first.parents[2])
    with h5py.File(second, "a") as f:  # one pattern in every frame, step 5 shifted by 1
        pattern = np.random.default_rng(0).random(f["t0_fields/pressure"].shape[2:], dtype=np.float32)
        f["t0_fields/pressure"][0] = pattern + (np.arange(f["t0_fields/pressure"].shape[1]) == 5)[:, None, None]
    assert check_well_data(second) == []
    # 8 frames cannot hold a 5-sigma mean (at most (n - 1) / sqrt(n) = 2.5 sigma): ask for 2
    assert outlier_steps(second, sigmas=2.0)[("pressure", 0, 0)] == [5]
    assert ("pressure", 0, 0) not in outlier_steps(second)


def test_legacy_padding_and_parameter_order(tmp_path):
    """Dam: ghost inlet column only below the barrier top, zero rows above and below, 66 x 65, and
    CFDBench's five-parameter vector; cylinder: centre and size appended after its other keys."""
    folder = tmp_path / "dam" / "bc" / "case0003"
    folder.mkdir(parents=True)
    u = np.random.default_rng(0).random((4, 64, 64))
    np.save(folder / "u.npy", u)
    np.save(folder / "v.npy", u + 1)
    dam = {"case_no": 3.0, "velocity": 0.5, "density": 100.0, "viscosity": 0.1, "barrier_height": 0.1,
           "barrier_width": 0.05, "height": 0.4, "width": 1.5, "dx": 0.0234375, "dy": 0.00625}  # fmt: skip
    (folder / "case.json").write_text(json.dumps(dam))
    case = read_case(folder, "dam", "bc")
    frames = legacy_frames(case, {"u": case.u, "v": case.v})
    assert frames.fields["u"].shape == (4, 66, 65) and frames.mask.shape == (66, 65)
    np.testing.assert_array_equal(frames.fields["u"][:, 1:-1, 1:], u)
    np.testing.assert_array_equal(frames.fields["u"][:, 1:17, 0], 0.5)  # int(0.1 / 0.00625) = 16 rows
    np.testing.assert_array_equal(frames.fields["u"][:, 17:, 0], 0.0)
    np.testing.assert_array_equal(frames.fields["v"][:, :, 0], 0.0)
    assert frames.fields["u"][:, [0, -1]].sum() == 0 and frames.mask[[0, -1]].sum() == 0 and frames.mask[:, 0].sum() == 0
    assert frames.mask[1:-1, 1:].all()  # CFDBench masked no barrier
    assert list(frames.params) == ["velocity", "density", "viscosity", "height", "width"]
    assert np.allclose(np.diff(frames.x), frames.x[1] - frames.x[0]) and frames.y[0] < 0 < frames.y[1]

    folder = tmp_path / "cylinder" / "geo" / "case0001"
    folder.mkdir(parents=True)
    np.save(folder / "u.npy", u[:, :, :])
    np.save(folder / "v.npy", u)
    cylinder = {"vel_in": 1.0, "density": 10.0, "viscosity": 1e-3, "radius": 0.01, "x_min": -0.06, "x_max": 0.16,
                "y_min": -0.05, "y_max": 0.07}  # fmt: skip
    (folder / "case.json").write_text(json.dumps(cylinder))
    case = read_case(folder, "cylinder", "geo")
    assert case.params["x_min"] == 0.06  # the signed coordinate read as a distance
    params = legacy_frames(case, {"u": case.u, "v": case.v}).params
    assert params == pytest.approx({"vel_in": 1.0, "density": 10.0, "viscosity": 1e-3, "radius": 0.01,
                                    "center_x": 0.06, "center_y": 0.05, "height": 0.12, "width": 0.22})  # fmt: skip
    assert list(params) == ["vel_in", "density", "viscosity", "radius", "center_x", "center_y", "height", "width"]


def test_legacy_conversion_and_export_refusal(tiny_cylinder, tmp_path):
    export_dataset(tiny_cylinder.path, tmp_path / "raw", "cfdbench-raw")
    convert_release(tmp_path / "raw", "cylinder", "bc_geo", tmp_path / "legacy", legacy=True)
    legacy = open_dataset(tmp_path / "legacy")
    with legacy.open_case(legacy.case_ids[0]) as case:
        assert case.mask.shape == (66, 65) and case.attrs["legacy"]
        assert list(case.params)[-4:] == ["center_x", "center_y", "height", "width"]
    with pytest.raises(CfdbenchError, match="--legacy conversion"):
        export_dataset(tmp_path / "legacy", tmp_path / "again", "cfdbench-raw")


def test_export_cli_refuses_unknown_format_in_one_line(tiny_dataset, tmp_path):
    from conftest import assert_one_line_error

    command = [sys.executable, "-m", "cfdbench", "data", "export", str(tiny_dataset.path)]
    refused = subprocess.run([*command, "--format", "csv", "--out", str(tmp_path)], capture_output=True, text=True)
    assert_one_line_error(refused, "csv", "cfdbench-raw", "the-well")
    result = subprocess.run([*command, "--format", "the-well", "--out", str(tmp_path / "w")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert check_well_dataset(tmp_path / "w" / "datasets" / tiny_dataset.name) == []


THE_WELL = ["torch==2.13.0", "the-well==1.2.0"]  # one pip command: the torch pin constrains The Well's
PROBE = Path(__file__).parent / "peer_scripts" / "the_well_probe.py"


@pytest.mark.slow
def test_the_well_package_reads_the_export(tiny_cylinder, tmp_path):
    """The Well's own WellDataset(path=...) opens the export (in a virtual environment of its own)
    and returns cfdbench's values: channels [pressure, u, v] on The Well's (x, y) grid, the mask (each
    cell's fluid fraction) as a constant field, the parameters as constant scalars; z-scores from stats.yaml; and its
    catalogue-name constructors refuse a dataset outside its catalogue."""
    python = venv_python("the-well-1.2.0", THE_WELL)
    export_dataset(tiny_cylinder.path, tmp_path / "well", "the-well")
    root = tmp_path / "well" / "datasets" / tiny_cylinder.name
    result = subprocess.run([str(python), str(PROBE), str(root), str(tmp_path / "probe.npz")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = np.load(tmp_path / "probe.npz")
    for split in ("train", "valid", "test"):
        case_ids = sorted(tiny_cylinder.split(split))
        assert list(probe[f"{split}/files"]) == [f"{c}.hdf5" for c in case_ids]
        with tiny_cylinder.open_case(case_ids[0]) as case:
            frames = case.read(("p", "u", "v"), slice(0, 2)).transpose(0, 3, 2, 1)  # (T, nx, ny, C): The Well's order
            fraction, params, x, y = case.fluid_fraction.T, case.params, case.x, case.y
        np.testing.assert_array_equal(probe[f"{split}/input_fields"][0], frames[0])
        np.testing.assert_array_equal(probe[f"{split}/output_fields"][0], frames[1])
        np.testing.assert_array_equal(probe[f"{split}/constant_fields"][..., 0], fraction)  # the stored fluid fractions
        np.testing.assert_array_equal(probe[f"{split}/constant_scalars"], np.float32(list(params.values())))
        grid = np.stack(np.meshgrid(x, y, indexing="ij"), axis=-1).astype(np.float32)
        np.testing.assert_array_equal(probe[f"{split}/space_grid"], grid)
        steps = [tiny_cylinder.open_case(c).n_frames - 1 for c in case_ids]  # one-step pairs per file
        assert int(probe[f"{split}/len"]) == sum(steps)
    stats = yaml.safe_load((root / "stats.yaml").read_text())
    mean = np.array([stats["mean"]["pressure"], *stats["mean"]["velocity"]], dtype=np.float32)
    std = np.array([stats["std"]["pressure"], *stats["std"]["velocity"]], dtype=np.float32)
    np.testing.assert_allclose(
        probe["train_normalized/input_fields"], (probe["train/input_fields"] - mean) / std, rtol=1e-5, atol=1e-5
    )
    for way in ("WellDataset", "WellDataModule"):
        assert str(probe[f"refusal/{way}"]).startswith(
            f"AssertionError: Dataset name {tiny_cylinder.name} not in the expected list"
        )
