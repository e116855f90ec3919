"""Bad input as a user meets it: every case ends in one ``error:`` line and exit status 2, and
nothing is written where it should not be.

The cases below are the suite's bad-input table; ``docs/bad-input.md`` is generated from them
(``CFDBENCH_WRITE_DOCS=1 python -m pytest tests/test_bad_input.py`` rewrites it) and
:func:`test_every_bad_input_is_one_line_as_documented` fails when the page and the behaviour part.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from conftest import assert_one_line_error, run_entry_point, write_card

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"


@dataclass(frozen=True)
class BadInput:
    """One refused command: what is wrong, the arguments (``{tmp}``: a fresh folder, ``{data}``:
    the tiny dataset, ``{run}``: a trained run folder) and a fragment the message must contain."""

    what: str
    args: tuple[str, ...]
    fragment: str
    prepare: Callable[[Path], None] | None = None
    env: tuple[tuple[str, str], ...] = ()


def _a_file(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text("not a folder\n")


def _malformed_card(tmp: Path) -> None:
    (tmp / "broken.yaml").write_text("name: broken\nsolver: {cells_x: 16\nfields: [u, v]\n")


def _other_parameters_dataset(tmp: Path) -> None:
    """Five small cylinder flows (eight case parameters against the cavity's five), generated."""
    args = ("data", "generate", "cylinder", "--preset", "tiny", "--out", str(tmp / "other"))
    assert run_entry_point(*args, cwd=tmp).returncode == 0


def _entry(tmp: Path, name: str, **changes) -> dict:
    """A valid entry (the leaderboard tests' example, on cavity-mini's published bytes) with ``changes``, in ``tmp/name``."""
    from test_leaderboard import make_entry

    from cfdbench.leaderboard.submit import published_hash

    entry = make_entry() | changes
    entry["dataset"]["content_hash"] = published_hash("cavity-mini")
    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp / name).write_text(json.dumps(entry))
    return entry


def _stale_entry(tmp: Path) -> None:
    _entry(tmp, "old.json", schema_version=1)


def _entry_without_code(tmp: Path) -> None:
    code = {"kind": "source", "file": "myop.py", "class": "MyOp", "sha256": "d" * 64}
    _entry(tmp, "run/entry.json", code=code)


def _predictions_not_matching(tmp: Path) -> None:
    (tmp / "run").mkdir()
    (tmp / "run" / "p.npz").write_bytes(b"edited")
    _entry(tmp, "run/entry.json", predictions={"file": "p.npz", "sha256": "e" * 64, "encoding": "int16"})


UNREACHABLE_S3 = (
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),  # the discard port: nothing listens there
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_MAX_ATTEMPTS", "1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("CFDBENCH_CACHE", "{tmp}/cache"),
)

CASES = [
    BadInput("output folder is a file (data generate)", ("data", "generate", "{card}", "--out", "{tmp}/taken"), "taken", _a_file("taken")),
    BadInput("output folder is a file (data export)", ("data", "export", "{data}", "--format", "the-well", "--out", "{tmp}/taken"), "taken", _a_file("taken")),
    BadInput("run folder is a file (train)", ("train", "--dataset", "{data}", "--epochs", "1", "--run-dir", "{tmp}/taken"), "taken", _a_file("taken")),
    BadInput("output folder is a file (leaderboard build)", ("leaderboard", "build", "--entries", "{tmp}", "--out", "{tmp}/taken"), "taken", _a_file("taken")),
    BadInput("CFDBENCH_DATA is a file", ("data", "info", "cavity-mini"), "is a file, not a folder", _a_file("root"), (("CFDBENCH_DATA", "{tmp}/root"),)),
    BadInput("malformed card YAML", ("data", "generate", "{tmp}/broken.yaml"), "not valid YAML at line", _malformed_card),
    BadInput("negative model size", ("train", "--dataset", "{data}", "--set", "model.hidden_channels=-4"), "hidden_channels"),
    BadInput("non-finite model setting", ("train", "--dataset", "{data}", "--set", "model.hidden_channels=.nan"), "finite"),
    BadInput("overflowing model setting", ("train", "--dataset", "{data}", "--set", "model.hidden_channels=1e400"), "finite"),
    BadInput("model larger than memory", ("train", "--dataset", "{data}", "--set", "model.hidden_channels=100000"), "GiB"),
    BadInput("zero Fourier modes", ("train", "--dataset", "{data}", "--set", "model.modes=[0,0]"), "at least 1"),
    BadInput("non-finite gradient clip", ("train", "--dataset", "{data}", "--grad-clip", "nan"), "grad_clip"),
    BadInput("absurd epoch count", ("train", "--dataset", "{data}", "--set", "training.epochs=1e23"), "epochs"),
    BadInput("checkpoint on data with other parameters", ("evaluate", "--checkpoint", "{run}/checkpoint.pt", "--dataset", "{tmp}/other"), "case parameters", _other_parameters_dataset),
    BadInput("resume with another model", ("train", "--resume", "{run}", "--model", "unet"), "--model unet"),
    BadInput("resume with another learning rate", ("train", "--resume", "{run}", "--lr", "0.5"), "--lr 0.5"),
    BadInput("resume on other data", ("train", "--resume", "{run}", "--dataset", "cavity-mini"), "--dataset cavity-mini"),
    BadInput("dataset URL without a manifest", ("data", "info", "file://{tmp}"), "has no manifest.json", env=(("CFDBENCH_CACHE", "{tmp}/cache"),)),
    BadInput("unreachable object store", ("train", "--dataset", "s3://bucket/cavity-mini"), "cannot reach the server", env=UNREACHABLE_S3),
    BadInput("unknown URL scheme", ("data", "info", "nosuch://bucket/cavity-mini"), "unknown URL scheme", env=(("CFDBENCH_CACHE", "{tmp}/cache"),)),
    BadInput(
        "entry of an unknown format (submit)", ("leaderboard", "submit", "{tmp}/old.json", "--entries", "{tmp}/board"),
        "unsupported schema_version 1", _stale_entry,
    ),
    BadInput(
        "entry whose code is not stored (submit)", ("leaderboard", "submit", "{tmp}/run", "--entries", "{tmp}/board"),
        "code cannot be recovered", _entry_without_code,
    ),
    BadInput(
        "predictions not matching their entry (verify)", ("leaderboard", "verify", "{tmp}/run/entry.json", "--tier", "B"),
        "does not match its entry", _predictions_not_matching,
    ),
]


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory) -> Path:
    """A one-epoch FNO run on the tiny dataset (its checkpoint and config.json)."""
    folder = tmp_path_factory.mktemp("run") / "fno"
    args = ("train", "--dataset", str(tiny_dataset.path), "--epochs", "1", "--set", "model.hidden_channels=4",
            "--set", "model.modes=[2,2]", "--device", "cpu", "--run-dir", str(folder))  # fmt: skip
    result = run_entry_point(*args, cwd=folder.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def _run_case(case: BadInput, tmp: Path, data: Path, run: Path) -> tuple[list[str], object]:
    if case.prepare:
        case.prepare(tmp)
    fill = {"tmp": str(tmp), "data": str(data), "run": str(run), "card": str(write_card(tmp))}
    args = [arg.format(**fill) for arg in case.args]
    env = {"CFDBENCH_DATA": str(tmp / "data"), **{k: v.format(**fill) for k, v in case.env}}
    return args, run_entry_point(*args, cwd=tmp, env=env)


def _row(case: BadInput, args: list[str], result, tmp: Path, data: Path, run: Path) -> str:
    def plain(text: str) -> str:
        for path, name in ((str(run), "<run>"), (str(data), "<data>"), (str(tmp), "<tmp>")):
            text = text.replace(path, name)
        text = re.sub(r"\d+(\.\d+)?(e[+-]?\d+)? GiB", "N GiB", text)  # depends on the machine
        return text.replace("|", "\\|")

    message = result.stderr.strip().splitlines()[0]
    command = " ".join(["cfdbench", *args])
    env = " ".join(f"{k}={v.format(tmp=tmp)}" for k, v in case.env)
    return f"| {case.what} | `{plain((env + ' ' if env else '') + command)}` | {result.returncode} | {plain(message)} |"


def _table(tmp_root: Path, data: Path, run: Path) -> str:
    rows = []
    for index, case in enumerate(CASES):
        tmp = tmp_root / f"case{index}"
        tmp.mkdir()
        before = sorted(p.name for p in run.iterdir())
        args, result = _run_case(case, tmp, data, run)
        assert_one_line_error(result, case.fragment)
        assert sorted(p.name for p in run.iterdir()) == before, f"{case.what}: a refused command changed the run folder"
        assert not (tmp / "data").exists(), f"{case.what}: a refused command generated data"
        assert not (tmp / "cache").exists(), f"{case.what}: a refused URL left a cache folder"
        assert not (tmp / "board").exists(), f"{case.what}: a refused entry reached the leaderboard"
        if (tmp / "taken").exists():
            assert (tmp / "taken").read_text() == "not a folder\n", f"{case.what}: the file in the way was changed"
        rows.append(_row(case, args, result, tmp, data, run))
    header = [
        "# Bad input: what each refusal says",
        "",
        "Generated by `tests/test_bad_input.py` from the cases it checks (rewrite with",
        "`CFDBENCH_WRITE_DOCS=1 python -m pytest tests/test_bad_input.py`); every one exits with",
        "status 2 after one `error:` line and leaves no file behind. `<data>` is a small generated",
        "dataset, `<run>` a trained run folder, `<tmp>` an empty folder; sizes that depend on the",
        "machine read `N GiB`. `cfdbench --debug ...` shows the traceback instead.",
        "",
        "| input | command | exit | message |",
        "|---|---|---:|---|",
    ]
    return "\n".join(header + rows) + "\n"


def test_every_bad_input_is_one_line_as_documented(tmp_path, tiny_dataset, trained_run):
    """Each case ends in one error line (exit 2) that names its problem, changes nothing, and reads
    as docs/bad-input.md says."""
    table = _table(tmp_path, tiny_dataset.path, trained_run)
    if os.environ.get("CFDBENCH_WRITE_DOCS"):
        DOC.write_text(table)
    assert DOC.is_file() and DOC.read_text() == table, "docs/bad-input.md is stale: rerun with CFDBENCH_WRITE_DOCS=1"


def test_resume_accepts_flags_that_repeat_the_run(tiny_dataset, trained_run, tmp_path):
    """Only contradictions are refused: repeating the run's own model and data resumes it."""
    config = json.loads((trained_run / "config.json").read_text())
    result = run_entry_point("train", "--resume", str(trained_run), "--model", config["model"], "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr



@pytest.fixture
def read_only_folder(tmp_path) -> Path:
    """A read-only file system at ``tmp_path/ro`` (root ignores permission bits, so chmod cannot
    make a folder read-only for it); skipped where this machine does not allow mounting one."""
    import shutil
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root and mount(8)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize(
    "args",
    [
        ("data", "generate", "{card}", "--out", "{ro}/d"),
        ("data", "export", "{data}", "--format", "cfdbench-raw", "--out", "{ro}/e"),
        ("train", "--dataset", "{data}", "--epochs", "1", "--run-dir", "{ro}/run"),
        ("leaderboard", "build", "--entries", "{tmp}", "--out", "{ro}/board"),
    ],
    ids=["data generate", "data export", "train", "leaderboard build"],
)
def test_a_read_only_output_folder_is_one_line(args, read_only_folder, tmp_path, tiny_dataset):
    fill = {"ro": str(read_only_folder), "tmp": str(tmp_path), "data": str(tiny_dataset.path), "card": str(write_card(tmp_path))}
    result = run_entry_point(*(a.format(**fill) for a in args), cwd=tmp_path, env={"CFDBENCH_DATA": str(tmp_path / "data")})
    assert_one_line_error(result, str(read_only_folder), "choose a folder you can write to")


def test_a_run_folder_has_one_trainer(trained_run, tmp_path):
    """A second trainer on a run folder that one is writing (two `train --resume` at once) is refused,
    naming the holder, and leaves the run as it was."""
    from cfdbench.io import folder_lock

    def files() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir() if not p.name.startswith(".lock-")}

    before = files()
    with folder_lock(trained_run, "training", "training"):  # as a running trainer holds it
        result = run_entry_point("train", "--resume", str(trained_run), "--epochs", "2", cwd=tmp_path)
    assert_one_line_error(result, "is being written by process", "training")
    assert files() == before
