"""Shared fixtures: a tiny cavity card and dataset generated in a temporary folder."""

import subprocess
from pathlib import Path

import pytest
import yaml

TINY_CARD = {
    "name": "cavity-tiny",
    "version": "0.0.1",
    "problem": "cavity",
    "description": "Five small cavities for tests.",
    "parameters": ["vel_top", "density", "viscosity", "height", "width"],
    "reference_velocity": "vel_top",
    "reference_length": "width",
    "baseline": {"vel_top": 1.0, "density": 1.0, "viscosity": 1.0e-4, "height": 0.01, "width": 0.01},
    "subsets": {"bc": {"vel_top": [1.0, 2.0, 3.0, 4.0]}, "geo": {"height": [0.02]}},
    "reynolds_range": [10, 1000],
    "solver": {
        "cells_x": 16,
        "cells_y": 16,
        "cfl": 0.5,
        "dtype": "float32",
        "frame_interval": 0.5,
        "n_frames": 8,
        "store_solver_grid": True,
    },
    "frames": {"nx": 16, "ny": 16},
    "fields": ["u", "v", "p"],
    "splits": {"seed": 0, "train": 0.6, "valid": 0.2},
}


def write_card(folder: Path, **changes) -> Path:
    """Write a (possibly modified) tiny card and return its path."""
    card = {**TINY_CARD, **changes}
    path = folder / f"{card['name']}.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


@pytest.fixture
def tiny_card_path(tmp_path) -> Path:
    return write_card(tmp_path)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A generated five-case dataset (HDF5), shared by the tests that only read it."""
    from cfdbench.cards import load_dataset_card
    from cfdbench.data.generate import generate_dataset
    from cfdbench.data.view import open_dataset

    root = tmp_path_factory.mktemp("tiny")
    card = load_dataset_card(write_card(root))
    generate_dataset(card, root / card.name)
    return open_dataset(root / card.name)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A refused command: exit status 2, one stderr line naming the problem, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
