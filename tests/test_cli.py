"""The command line as a user meets it: its entry point, exit codes, one-line errors.

Refusals run ``cfdbench.cli.main`` in-process with redirected streams (the same code path as
``python -m cfdbench``, without paying a torch import per case); ``--debug`` and Ctrl-C run as
real subprocesses, since they are about the process itself.

Every failure path named in the foundation issue has a test here: unknown names list the
choices, a missing dataset says how to get it, bad card parameters are refused before any
work, a corrupt case is named, Ctrl-C during generation keeps only complete cases (and a
rerun resumes), and ``--debug`` is the only way to see a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_CARD, assert_one_line_error, run_entry_point, write_card
from typer.testing import CliRunner

from cfdbench.cli import app
from cfdbench.data.store import list_cases, open_case

COMMANDS = [
    [],
    ["data"],
    ["data", "generate"],
    ["data", "download"],
    ["data", "info"],
    ["data", "list"],
    ["models"],
    ["train"],
    ["evaluate"],
    ["run"],
    ["leaderboard"],
    ["leaderboard", "build"],
]


def cfdbench(*args: str, data: Path) -> subprocess.CompletedProcess:
    return run_entry_point(*args, cwd=data, env={"CFDBENCH_DATA": str(data)})


def cfdbench_process(*args: str, data: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m cfdbench ARGS`` as a separate process with its data root in ``data``."""
    env = {**os.environ, "CFDBENCH_DATA": str(data), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cfdbench", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=data
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cfdbench")
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_unknown_dataset_lists_the_choices(tmp_path):
    assert_one_line_error(cfdbench("data", "generate", "cavty", data=tmp_path), "cavty", "cavity", "cavity-mini")
    assert_one_line_error(cfdbench("run", "--dataset", "cavty", data=tmp_path), "cavity-mini")


def test_unknown_model_lists_the_choices(tmp_path):
    result = cfdbench("run", "--model", "fnoo", data=tmp_path)
    assert_one_line_error(result, "fnoo", "fno")
    assert not (tmp_path / "cavity-mini").exists(), "no data generated for a run that cannot happen"


def test_missing_dataset_says_how_to_generate_it(tmp_path):
    assert_one_line_error(cfdbench("data", "info", "cavity-mini", data=tmp_path), "cfdbench data generate cavity-mini")
    assert_one_line_error(cfdbench("train", "--dataset", "cavity-mini", data=tmp_path), "cfdbench data generate cavity-mini")
    # a channel card's data too (its name is not a 2D card's: the lookup must know both kinds)
    missing_channel = cfdbench("train", "--dataset", "channel180-tiny", "--model", "ifactformer_m", data=tmp_path)
    assert_one_line_error(missing_channel, "cfdbench data generate channel180-tiny")


def test_bad_training_options_are_refused_before_any_work(tmp_path):
    assert_one_line_error(cfdbench("run", "--epochs", "0", data=tmp_path), "epochs")
    assert_one_line_error(cfdbench("run", "--lr", "-1", data=tmp_path), "lr")
    assert not (tmp_path / "cavity-mini").exists()


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"baseline": {"vel_top": 1.0, "density": 1.0, "viscosity": -1e-4, "height": 0.01, "width": 0.01}}, "viscosity"),
        ({"baseline": {"vel_top": 1.0, "density": 1.0, "viscosity": 1e-4, "height": 0.01, "width": -0.01}}, "width"),
        ({"subsets": {"bc": {"vel_top": []}}}, "empty"),
        ({"solver": {**TINY_CARD["solver"], "cells_x": -16}}, "cells_x"),
    ],
    ids=["negative-viscosity", "negative-width", "empty-sweep", "negative-cells"],
)
def test_nonsensical_card_parameters_are_refused_before_any_work(tmp_path, change, fragment):
    card = write_card(tmp_path, **change)
    out = tmp_path / "out"
    assert_one_line_error(cfdbench("data", "generate", str(card), "--out", str(out), data=tmp_path), fragment)
    assert not out.exists()


def test_corrupt_case_is_reported_by_name(tmp_path):
    card = write_card(tmp_path)
    out = tmp_path / "tiny"
    assert cfdbench("data", "generate", str(card), "--out", str(out), data=tmp_path).returncode == 0
    victim = sorted(list_cases(out).values())[0]
    victim.write_bytes(victim.read_bytes()[:1000])  # a truncated download or a full disk
    assert_one_line_error(cfdbench("data", "info", str(out), data=tmp_path), victim.name)


def test_debug_shows_the_traceback(tmp_path):
    result = cfdbench_process("--debug", "data", "generate", "cavty", data=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "UnknownNameError" in result.stderr


@pytest.mark.slow  # 20-27 s; the default run keeps the channel generator's resume (test_channel_data)
def test_ctrl_c_during_generation_keeps_complete_cases_and_resumes(tmp_path):
    # Slow enough (one case per batch, about two seconds each) to be interrupted after the first case.
    solver = {**TINY_CARD["solver"], "cells_x": 32, "cells_y": 32, "n_frames": 20}
    card = write_card(tmp_path, solver=solver)
    out = tmp_path / "interrupted"
    env = {**os.environ, "CFDBENCH_DATA": str(tmp_path)}
    args = [sys.executable, "-m", "cfdbench", "data", "generate", str(card), "--out", str(out), "--batch-size", "1"]
    # A test run started in the background (``cmd &``) ignores SIGINT, and children inherit that;
    # restore the default so the child behaves as in a terminal.
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=restore_sigint
    )
    deadline = time.monotonic() + 120
    while not (out / "cases").is_dir() or not list_cases(out):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no case was written in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr

    kept = list_cases(out)
    assert 1 <= len(kept) < 5, "interrupted after the first case, before the last"
    for path in kept.values():
        with open_case(path) as case:
            assert case.read(["u", "v", "p"], slice(None)).shape[0] == 20
    assert not (out / "manifest.json").exists(), "an interrupted dataset is not sealed"
    leftovers = [p.name for p in out.rglob("*") if p.is_file() and p not in kept.values() and p.parent.name == "cases"]
    assert all(name.startswith(".") for name in leftovers), leftovers

    resumed = cfdbench("data", "generate", str(card), "--out", str(out), "--batch-size", "1", data=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} reused" in resumed.stdout
    assert len(list_cases(out)) == 5 and (out / "manifest.json").is_file()


def test_tables_are_not_cut_off_a_terminal(tmp_path):
    """Piped into a file, `cfdbench models` keeps whole names (Rich's default is 80 columns)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run([sys.executable, "-m", "cfdbench", "models"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "auto-deeponet-cnn" in result.stdout and "…" not in result.stdout


def test_data_list_shows_generated_variants(tmp_path):
    card = write_card(tmp_path)
    assert cfdbench("data", "generate", str(card), "--out", str(tmp_path / "cavity-tiny"), data=tmp_path).returncode == 0
    listing = cfdbench("data", "list", data=tmp_path).stdout
    row = next(line for line in listing.splitlines() if "cavity-tiny" in line)
    assert "cavity" in row and " 5 " in row and " 8 " in row  # problem, cases, frames from its manifest


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["data", "generate", "cavity"], "rerun the same command to resume"),
        (["train", "--dataset", "cavity-mini"], "cfdbench train --resume"),
        (["run"], "a rerun resumes the data"),
    ],
)
def test_ctrl_c_says_how_to_continue(argv, fragment):
    from cfdbench.cli import _interrupted_message

    assert fragment in _interrupted_message(argv)
