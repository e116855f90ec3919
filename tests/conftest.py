"""Shared fixtures: a tiny cavity card and dataset generated in a temporary folder."""

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
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
    from cfdbench.data.resolve import open_dataset

    root = tmp_path_factory.mktemp("tiny")
    card = load_dataset_card(write_card(root))
    generate_dataset(card, root / card.name)
    return open_dataset(root / card.name)


def run_entry_point(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cfdbench ARGS`` through its entry point (``cfdbench.cli.main``) in this process, in
    ``cwd`` with extra environment variables: the exit status and both streams, as a subprocess
    would give them, without paying a torch import per call."""
    from cfdbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = (dict(os.environ), os.getcwd(), sys.argv)
    os.environ.update({"COLUMNS": "200", **(env or {})})
    os.chdir(cwd)
    sys.argv = ["cfdbench", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        os.environ.clear()
        os.environ.update(saved[0])
        os.chdir(saved[1])
        sys.argv = saved[2]
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A refused command: exit status 2, one stderr line naming the problem, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


SMALL_FNO = ["--model", "fno", "--set", "model.modes=[4,4]", "--set", "model.hidden_channels=8", "--device", "cpu"]


def train_and_evaluate(dataset: str, cwd: Path) -> Path:
    """Train a small FNO for one epoch on ``dataset`` (a name, folder or URL) and evaluate its
    checkpoint over 2 steps, both through the CLI; returns the run folder."""
    run = cwd / "run"
    train = run_entry_point("train", *SMALL_FNO, "--dataset", dataset, "--epochs", "1", "--batch-size", "6", "--run-dir", str(run), cwd=cwd)
    assert train.returncode == 0, train.stderr
    evaluate = run_entry_point("evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--dataset", dataset, "--steps", "2", "--device", "cpu", cwd=cwd)
    assert evaluate.returncode == 0, evaluate.stderr
    return run


# A laminar-Re_tau card small enough for the default test run (the pipeline, not turbulence).
CHANNEL_CARD = {
    "name": "chantest",
    "version": "0.1",
    "problem": "channel",
    "re_tau": 60,
    "forcing": "pressure_gradient",
    "box": {"lx": 1.5, "lz": 0.6},
    "dns": {"nx": 8, "ny": 24, "nz": 8, "stretching": 1.6, "dtype": "float64", "dt": 0.005},
    "spinup": {"duration": 0.4, "average": 0.2, "amplitude": 0.2, "seed": 0},
    "trajectories": {"count": 3, "frames": 6, "frame_interval": 0.1, "decorrelation": 0.1, "perturbation": 0.05},
    "coarse": {"nx": 4, "ny": 9, "nz": 4, "y_stretching": 1.0, "filter": "top-hat"},
    "checkpoint_every": 0.2,
    "splits": {"seed": 0, "train": 0.8, "valid": 0.1},
}


def write_channel_card(tmp_path: Path, **changes):
    """A channel card file under ``tmp_path/datasets`` (as ``CFDBENCH_HOME`` expects), parsed."""
    from cfdbench.cards import parse_channel_card

    raw = {**CHANNEL_CARD, **changes}
    folder = tmp_path / "datasets" / raw["name"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return parse_channel_card(raw, path)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test, restored after: DCDM's small convolutions and solver steps
    run faster on one thread than on two (its network test: 14 s against 5 s on the CI machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def unstable_steps(monkeypatch):
    """A solver whose time steps are 1000x its stable step (below any CFL a card may set): every flow
    blows up, which is how the tests reach the blow-up reporting."""
    from cfdbench.solvers.navier_stokes import NavierStokesSolver

    stable = NavierStokesSolver.stable_dt
    monkeypatch.setattr(NavierStokesSolver, "stable_dt", lambda self, state, cfl, reference_speed=1.0: 1000 * stable(self, state, cfl, reference_speed))


CHANNEL_ENTRIES = Path(__file__).resolve().parents[1] / "leaderboard" / "entries" / "channel180-tiny"


def channel_dns_bytes_differ_here() -> str | None:
    """Why this machine cannot regenerate channel180-tiny's published bytes, or None when it can.

    The channel DNS is turbulent: a last-bit difference anywhere grows until every frame differs. Its
    float32 matrix products and FFTs run in MKL, whose code path follows the CPU's vendor and
    instruction set: the published bytes (made on the CPU the committed channel entries record, an AMD
    EPYC) came out differently on an Intel Xeon with each of MKL's paths tried (default, AVX2,
    ``MKL_CBWR=COMPATIBLE``; 2026-12-08, docs/channel.md). The 2D flows are laminar and do
    reproduce across these CPUs (their hashes are checked everywhere)."""
    import json

    from cfdbench.entries.entry import cpu_model

    published = {json.loads(path.read_text())["hardware"]["cpu"] for path in CHANNEL_ENTRIES.glob("*.json")}

    def vendor(name: str) -> str:
        return next((v for v in ("AMD", "Intel") if v in name), name)

    here = cpu_model()
    if {vendor(name) for name in published} == {vendor(here)}:
        return None
    return f"channel180-tiny's bytes were published from {sorted(published)}; this CPU ({here}) takes another MKL code path"
