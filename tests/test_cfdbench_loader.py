"""CFDBench's own autoregressive loaders on `cfdbench data export --format cfdbench-raw`.

CFDBench's code cannot be fetched in CI, so its documented rules (``../shared/reference/
cfdbench-format.md`` sections 5 and 6) are applied here to exports of every problem: cases found
by subset in the order prop, bc, geo; Python's seed-0 shuffle and the 80/10/10 cut with its
rounding; the 66 x 65 padding of tube, dam and cylinder; pairs ``int(delta_time / interval)``
frames apart with its hard-coded intervals; the steady-state cut (not for the dam). Every split
must hold samples of the shape its models are built for, or the export must say why not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_entry_point

from cfdbench.cards import load_dataset_card
from cfdbench.data.cfdbench_release import PROBLEMS, cfdbench_split, find_cases, read_case, split_rounding
from cfdbench.data.export import export_dataset
from cfdbench.data.generate import generate_dataset
from cfdbench.data.legacy import autoregressive_pairs, legacy_frames

REPO = Path(__file__).resolve().parents[1]
# At least 10 cases (CFDBench cuts tube, dam and cylinder with int(0.1 N)), 3 frames each.
SUBSETS = {
    "cavity": {"bc": {"vel_top": [2.0, 4.0, 6.0, 8.0, 10.0]}, "geo": {"height": [0.01, 0.02], "width": [0.01, 0.02]}},
    "tube": {"bc": {"vel_in": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]}, "prop": {"density": [50, 100], "viscosity": [0.1, 0.2]}},
    "dam": {"bc": {"velocity": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]}, "prop": {"density": [50, 100], "viscosity": [0.1, 0.2]}},
    "cylinder": {"bc": {"vel_in": [0.4, 0.6, 0.8, 1.0, 1.2, 1.4]}, "prop": {"density": [5, 10], "viscosity": [0.001, 0.002]}},
}
# CFDBench's documented rules (reference sections 4-6).
FRAME_INTERVAL = {"cavity": 0.1, "tube": 0.1, "dam": 0.1, "cylinder": 0.001}  # hard-coded in its loaders
SHAPE = {"cavity": (64, 64), "tube": (66, 65), "dam": (66, 65), "cylinder": (66, 65)}  # get_input_shapes
DELTA_TIME = {"cylinder": 0.001}  # the export's warning: these cylinder cases are too short for 0.1


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """problem -> (export folder, export report) for small generated datasets of every problem."""
    root = tmp_path_factory.mktemp("cfdbench-raw")
    out = {}
    for problem in PROBLEMS:
        raw = yaml.safe_load((REPO / "datasets" / problem / f"{problem}.yaml").read_text())
        preset = raw.setdefault("presets", {}).setdefault("tiny", {})
        preset.setdefault("solver", {}).update(n_frames=3, **({"cells_x": 16, "cells_y": 16} if problem == "cavity" else {}))
        preset["subsets"] = SUBSETS[problem]
        (root / f"{problem}.yaml").write_text(yaml.safe_dump(raw))
        card = load_dataset_card(root / f"{problem}.yaml").variant("tiny")
        generate_dataset(card, root / problem)
        out[problem] = (root / "raw", export_dataset(root / problem, root / "raw", "cfdbench-raw"))
    return out


def cfdbench_samples(problem: str, folders: list[Path], delta_time: float) -> np.ndarray:
    """The inputs CFDBench's autoregressive dataset stacks from these case folders, (N, 3, H, W):
    [u, v, mask] padded, frame i paired with i + s, cut at the first steady pair (not for the dam)."""
    stride = int(delta_time / FRAME_INTERVAL[problem])
    inputs = []
    for folder in folders:
        case = read_case(folder, problem, folder.parent.name)
        padded = legacy_frames(case, {"u": case.u, "v": case.v})
        mask = np.broadcast_to(padded.mask, padded.fields["u"].shape)
        features = np.stack([padded.fields["u"], padded.fields["v"], mask], axis=1).astype(np.float32)
        for i in range(len(features) - stride):
            inp, out = features[i], features[i + stride]
            change = np.abs(np.hypot(inp[0], inp[1]) - np.hypot(out[0], out[1])).mean()
            if problem != "dam" and change < 0.001:
                break
            inputs.append(inp)
    return np.stack(inputs) if inputs else np.zeros((0, 3, *SHAPE[problem]), dtype=np.float32)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_cfdbench_builds_every_split_from_an_export(problem, exports):
    root, report = exports[problem]
    found = find_cases(root / problem, problem)
    folders = [folder for subset in found for folder in found[subset]]  # prop, bc, geo; numeric within each
    split = cfdbench_split(folders, split_rounding(problem))
    delta_time = DELTA_TIME.get(problem, 0.1)
    for name, cases in split.items():
        samples = cfdbench_samples(problem, cases, delta_time)
        assert samples.shape[1:] == (3, *SHAPE[problem]), f"{problem} {name}"
        assert len(samples) > 0, f"{problem}: CFDBench's {name} split has no sample"
        counted = sum(autoregressive_pairs(problem, np.load(c / "u.npy"), np.load(c / "v.npy"), delta_time) for c in cases)
        assert counted == len(samples)  # what the export's warning counts
    if problem == "cylinder":  # 3 frames: at the default --delta_time CFDBench pairs frames 100 apart
        assert len(report.warnings) == 1 and "pass --delta_time 0.001 to pair consecutive frames" in report.warnings[0]
    else:
        assert report.warnings == []


def test_export_warns_when_cfdbench_s_split_leaves_a_split_empty(tiny_dataset, tmp_path):
    """Five cavity cases: CFDBench's round(0.1 N) = 0 validation cases, so its loader stops."""
    report = export_dataset(tiny_dataset.path, tmp_path / "raw", "cfdbench-raw")
    assert len(report.warnings) == 1 and "\n" not in report.warnings[0]
    assert "round(0.8 N), round(0.1 N): 4/0/1 train/valid/test" in report.warnings[0]
    assert "leaves valid empty: export at least 8 cases" in report.warnings[0]
    again = export_dataset(tiny_dataset.path, tmp_path / "raw", "cfdbench-raw")  # resumed: counted from the files
    assert again.warnings == report.warnings and not again.written
    printed = run_entry_point("data", "export", str(tiny_dataset.path), "--format", "cfdbench-raw", "--out", "raw", cwd=tmp_path)
    assert printed.returncode == 0 and f"warning: {report.warnings[0]}\n" in printed.stdout  # one line, unwrapped
