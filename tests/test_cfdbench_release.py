"""CFDBench's release: its exact splits (against the paper repository's split-size table and the
published lists) and what the reader derives (true Δt, masks with the obstacles, full parameters)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cfdbench.data.cfdbench_release import (
    FRAME_INTERVAL,
    PROBLEMS,
    SUBSET_COMBINATIONS,
    SUBSET_SIZES,
    cfdbench_split,
    load_published_splits,
    published_split,
    read_case,
    split_counts,
    split_rounding,
)

# Train / dev / test case counts (reference section 5), per subset combination.
TABLE = {
    ("cavity", "round"): "67/8/9 40/5/5 20/2/3 107/13/14 87/11/11 60/8/7 127/16/16",
    ("tube", "int"): "80/10/10 40/5/5 20/2/3 120/15/15 100/12/13 60/7/8 140/17/18",
    ("tube", "round"): "80/10/10 40/5/5 20/2/3 120/15/15 100/12/13 60/8/7 140/18/17",
    ("dam", "int"): "80/10/10 56/7/7 40/5/5 136/17/17 120/15/15 96/12/12 176/22/22",
    ("dam", "round"): "80/10/10 56/7/7 40/5/5 136/17/17 120/15/15 96/12/12 176/22/22",
    ("cylinder", "int"): "92/11/12 40/5/5 16/2/2 132/16/17 108/13/14 56/7/7 148/18/19",
}


@pytest.mark.parametrize("problem, rounding", list(TABLE))
def test_split_sizes_match_cfdbench_table(problem, rounding):
    expected = [tuple(int(n) for n in cell.split("/")) for cell in TABLE[problem, rounding].split()]
    sizes = SUBSET_SIZES[problem]
    got = [split_counts(sum(sizes[s] for s in combo.split("_")), rounding) for combo in SUBSET_COMBINATIONS]
    assert got == expected


def test_split_is_python_seed0_shuffle_and_leaves_global_random_alone():
    import random

    random.seed(123)
    before = random.random()
    random.seed(123)
    split = cfdbench_split(list(range(10)), "round")
    assert random.random() == before  # the caller's random state is untouched
    reference = list(range(10))
    random.seed(0)
    random.shuffle(reference)
    assert split["train"] + split["valid"] + split["test"] == reference
    assert [len(split[k]) for k in ("train", "valid", "test")] == [8, 1, 1]


@pytest.mark.parametrize("problem", PROBLEMS)
def test_published_split_lists_are_the_procedure(problem):
    published = load_published_splits()["splits"][problem]
    for combo in SUBSET_COMBINATIONS:
        computed = published_split(problem, combo)
        assert published[combo] == computed, f"{problem} {combo}: splits.yaml is stale; regenerate it"
        ids = computed["train"] + computed["valid"] + computed["test"]
        assert len(set(ids)) == len(ids) == sum(SUBSET_SIZES[problem][s] for s in combo.split("_"))
        # The non-autoregressive loaders' rounding: published where it changes the lists (tube only).
        other = published_split(problem, combo, task="non-autoregressive")
        listed = load_published_splits()["splits_non_autoregressive"].get(problem, {})
        assert listed.get(combo, computed) == other, f"{problem} {combo}: non-autoregressive lists are stale"


def test_tube_split_rule_depends_on_the_task():
    assert split_rounding("tube", "autoregressive") == "int" and split_rounding("tube", "non-autoregressive") == "round"
    assert split_rounding("cylinder", "non-autoregressive") == "int" and split_rounding("cavity", "autoregressive") == "round"
    bc_geo = [published_split("tube", "bc_geo", task=t) for t in ("autoregressive", "non-autoregressive")]
    assert [len(bc_geo[0][k]) for k in ("train", "valid", "test")] == [60, 7, 8]
    assert [len(bc_geo[1][k]) for k in ("train", "valid", "test")] == [60, 8, 7]


def write_case(folder, params, frames=3, shape=(64, 64)):
    folder.mkdir(parents=True)
    np.save(folder / "u.npy", np.ones((frames, *shape)))
    np.save(folder / "v.npy", np.zeros((frames, *shape)))
    (folder / "case.json").write_text(json.dumps(params))


def test_dam_mask_holds_the_barrier_and_parameters_its_size(tmp_path):
    params = {"velocity": 1.0, "density": 100.0, "viscosity": 0.1, "barrier_height": 0.12, "barrier_width": 0.05,
              "height": 0.4, "width": 1.5, "dx": 0.0234375, "dy": 0.00625}  # fmt: skip
    write_case(tmp_path / "dam" / "geo" / "case0170", params)
    case = read_case(tmp_path / "dam" / "geo" / "case0170", "dam", "geo")
    assert case.params["barrier_height"] == 0.12 and list(case.params)[-2:] == ["barrier_height", "barrier_width"]
    x, y = case.coordinates()
    fraction = case.fluid_fraction()
    solid = fraction < 0.5
    assert solid.sum() == ((x >= 0.5) & (x <= 0.55)).sum() * (y <= 0.12).sum() > 0
    cell_area = (x[1] - x[0]) * (y[1] - y[0])
    assert (1 - fraction.astype(np.float64)).sum() * cell_area == pytest.approx(0.12 * 0.05, rel=1e-6)  # the barrier, exactly
    assert np.any((fraction > 0) & (fraction < 1))  # its edges cut cells: they show as fractions
    assert case.case_id == "geo-0170" and FRAME_INTERVAL["dam"] == 0.1 and case.dtype == "float64"


def test_cylinder_disc_is_centred_at_the_origin(tmp_path):
    params = {"vel_in": 1.0, "density": 10.0, "viscosity": 1e-3, "radius": 0.01, "x_min": 0.06, "x_max": 0.16,
              "y_min": 0.06, "y_max": 0.06}  # fmt: skip
    write_case(tmp_path / "cylinder" / "bc" / "case0001", params)
    case = read_case(tmp_path / "cylinder" / "bc" / "case0001", "cylinder", "bc")
    x, y = case.coordinates()
    assert x[0] < 0 < x[-1] and y[0] < 0 < y[-1]
    fraction = case.fluid_fraction()
    solid = fraction < 0.5
    xx, yy = np.meshgrid(x, y)
    assert solid.sum() > 0 and np.all(xx[solid] ** 2 + yy[solid] ** 2 <= 0.015**2)
    cell_area = (x[1] - x[0]) * (y[1] - y[0])
    assert (1 - fraction.astype(np.float64)).sum() * cell_area == pytest.approx(np.pi * 0.01**2, rel=1e-6)
    assert FRAME_INTERVAL["cylinder"] == 0.001 and FRAME_INTERVAL["tube"] == 0.01


def raw_release(root, cases_per_subset=(("prop", range(50, 56)), ("bc", range(0, 4))), frames=6):
    """A small raw cavity release: 16 x 16 frames of a smooth, lid-speed-scaled field."""
    yy, xx = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 1, 16), indexing="ij")
    for subset, numbers in cases_per_subset:
        for n in numbers:
            folder = root / "data" / "cavity" / subset / f"case{n:04d}"
            folder.mkdir(parents=True)
            speed = 1.0 + n % 7
            t = np.arange(frames)[:, None, None] / frames
            np.save(folder / "u.npy", speed * yy[None] ** 2 * (1 - np.exp(-3 * t)))
            np.save(folder / "v.npy", -speed * xx[None] * yy[None] * (1 - np.exp(-3 * t)) / 4)
            params = {"vel_top": speed, "density": 1.0, "viscosity": 1e-5 * (1 + n % 3), "height": 0.01, "width": 0.01}
            (folder / "case.json").write_text(json.dumps(params))
    return root


def test_convert_keeps_arrays_and_uses_cfdbench_splits(tmp_path):
    from cfdbench.data.convert import convert_release
    from cfdbench.data.loader import AutoregressiveDataset
    from cfdbench.data.resolve import open_dataset

    raw = raw_release(tmp_path / "raw")
    report = convert_release(raw, "cavity", "prop_bc", tmp_path / "out")
    assert len(report.converted) == 10 and not report.skipped and not report.split_matches_release
    ordered = [f"prop-{n:04d}" for n in range(50, 56)] + [f"bc-{n:04d}" for n in range(4)]
    ds = open_dataset(tmp_path / "out")
    assert {k: list(ds.split(k)) for k in ("train", "valid", "test")} == cfdbench_split(ordered, "round")
    case = ds[ordered[0]]
    np.testing.assert_array_equal(case["u"].values, np.load(raw / "data/cavity/prop/case0050/u.npy").astype(np.float32))
    with ds.open_case(ordered[0]) as stored:
        assert stored.dt == FRAME_INTERVAL["cavity"] and stored.field_names == ("u", "v") and stored.mask.all()
    samples = AutoregressiveDataset(ds, "train")  # the training path runs on converted data unchanged
    assert samples[0]["input"].shape == (2, 16, 16)
    again = convert_release(raw, "cavity", "prop_bc", tmp_path / "out")  # resumable: nothing redone
    assert again.reused == ordered and not again.converted


def test_convert_reports_bad_cases_by_path(tmp_path):
    from cfdbench.data.convert import convert_release
    from cfdbench.errors import CfdbenchError

    raw = raw_release(tmp_path / "raw")
    (raw / "data/cavity/bc/case0002/v.npy").unlink()
    with pytest.raises(CfdbenchError, match="case0002: missing v.npy"):
        convert_release(raw, "cavity", "bc", tmp_path / "stop")
    report = convert_release(raw, "cavity", "bc", tmp_path / "skip", on_error="skip")
    assert list(report.skipped) == [str(raw / "data/cavity/bc/case0002")] and len(report.converted) == 3
    manifest = json.loads((tmp_path / "skip" / "manifest.json").read_text())
    assert str(raw / "data/cavity/bc/case0002") in json.dumps(manifest)


@pytest.mark.slow  # 15 s: the default set's margin under CI's 10 minutes (564 s on a clean clone)
def test_two_commands_then_training_on_converted_release(tmp_path):
    """download --from, convert, then `cfdbench run` on CFDBench-format data with CFDBench's splits."""
    import os
    import subprocess
    import sys
    import zipfile

    raw = raw_release(tmp_path / "raw")
    own = tmp_path / "mine"
    own.mkdir()
    with zipfile.ZipFile(own / "cavity.zip", "w") as archive:
        for file in sorted((raw / "data").rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(raw))
    env = {**os.environ, "CFDBENCH_DATA": str(tmp_path / "data"), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "cfdbench", *args], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    cli("data", "download", "cfdbench/cavity", "--from", str(own))
    assert "10 cases converted" in cli("data", "convert", "cfdbench/cavity", "--subsets", "prop_bc")
    out = cli("run", "--dataset", "cfdbench-cavity-prop_bc", "--epochs", "1", "--batch-size", "8", "--steps", "2")
    assert "run folder:" in out
