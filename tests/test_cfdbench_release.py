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
    mask = case.mask()
    solid = ~mask
    assert solid.sum() == ((x >= 0.5) & (x <= 0.55)).sum() * (y <= 0.12).sum() > 0
    assert case.case_id == "geo-0170" and FRAME_INTERVAL["dam"] == 0.1 and case.dtype == "float64"


def test_cylinder_disc_is_centred_at_the_origin(tmp_path):
    params = {"vel_in": 1.0, "density": 10.0, "viscosity": 1e-3, "radius": 0.01, "x_min": 0.06, "x_max": 0.16,
              "y_min": 0.06, "y_max": 0.06}  # fmt: skip
    write_case(tmp_path / "cylinder" / "bc" / "case0001", params)
    case = read_case(tmp_path / "cylinder" / "bc" / "case0001", "cylinder", "bc")
    x, y = case.coordinates()
    assert x[0] < 0 < x[-1] and y[0] < 0 < y[-1]
    solid = ~case.mask()
    xx, yy = np.meshgrid(x, y)
    assert solid.sum() > 0 and np.all(xx[solid] ** 2 + yy[solid] ** 2 <= 0.01**2)
    assert FRAME_INTERVAL["cylinder"] == 0.001 and FRAME_INTERVAL["tube"] == 0.01
