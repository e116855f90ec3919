"""Bring your own operator: the example plug-in runs through `cfdbench run` by file path, by
module and as an installed entry point; broken plug-ins fail before training in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_line_error, write_card

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "my_operator"


def run_cli(*args: str, cwd: Path, pythonpath: list[Path] = (), timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CFDBENCH_DATA": str(cwd / "data"), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "cfdbench", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with a tiny cavity card; each run generates (once) into its data/."""
    root = tmp_path_factory.mktemp("plugins")
    write_card(root)
    return root


def run_model(model: str, workdir: Path, pythonpath: list[Path] = ()) -> dict:
    result = run_cli(
        "run",
        "--model",
        model,
        "--dataset",
        str(workdir / "cavity-tiny.yaml"),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--steps",
        "3",
        "--runs-root",
        str(workdir / "runs"),
        cwd=workdir,
        pythonpath=pythonpath,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    folder = Path(result.stdout.split("run folder:")[-1].split()[0])
    folder = folder if folder.is_absolute() else workdir / folder
    return json.loads((folder / "entry.json").read_text())


@pytest.mark.slow  # the entry-point plug-in runs the same pipeline end to end in the default run
def test_file_path_plugin_runs_end_to_end(workdir):
    spec = f"{EXAMPLE / 'my_operator' / 'model.py'}:MyOperator"
    entry = run_model(spec, workdir)
    assert entry["model"]["source"] == spec and entry["model"]["card"] is None
    assert entry["model"]["config"] == {"width": 32} and entry["model"]["parameter_count"] > 0
    assert set(entry["metrics"]["rollout"]) == {"model", "identity"}


@pytest.mark.slow  # as above: the pipeline path is shared; loading by module is tested in test_unknown_module...
def test_module_plugin_runs_end_to_end(workdir):
    entry = run_model("my_operator.model:MyOperator", workdir, pythonpath=[EXAMPLE])
    assert entry["model"]["name"] == "my_operator.model-MyOperator"


@pytest.mark.slow  # 15-17 s (a pip install); module:Class and file.py:Class plug-ins run end to end by default
def test_installed_entry_point_plugin_runs_end_to_end(workdir, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)  # the build must not litter the repository
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target)]
        + [str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    listed = run_cli("models", cwd=workdir, pythonpath=[target])
    assert listed.returncode == 0 and "my-operator" in listed.stdout and "plug-in" in listed.stdout
    entry = run_model("my-operator", workdir, pythonpath=[target])
    assert entry["model"]["name"] == "my-operator" and entry["model"]["source"] == "my-operator"


BROKEN = {
    "syntax.py": "def broken(:\n",
    "not_module.py": "class NotAModule:\n    pass\n",
    "plain_module.py": "from torch import nn\n\nclass Plain(nn.Module):\n    pass\n",
    "wrong_shape.py": (
        "from cfdbench.models.base import NeuralOperator\n\n"
        "class WrongShape(NeuralOperator):\n"
        "    def __init__(self, meta):\n        super().__init__(meta)\n\n"
        "    def predict(self, inputs, mask, params):\n        return inputs[:, :1]\n"
    ),
}


@pytest.fixture(scope="module")
def broken_plugins(workdir) -> Path:
    plugins = workdir / "broken"
    plugins.mkdir(exist_ok=True)
    for name, text in BROKEN.items():
        (plugins / name).write_text(text)
    return plugins


@pytest.mark.parametrize(
    "file, cls, message",
    [
        ("not_module.py", "NotAModule", "not a torch module class"),
        ("plain_module.py", "Plain", "not a cfdbench NeuralOperator"),
        ("plain_module.py", "Missing", "has no attribute 'Missing'"),
        ("absent.py", "X", "model file not found"),
    ],
)
def test_plugins_that_are_not_operators_are_refused(broken_plugins, file, cls, message):
    from cfdbench.errors import CfdbenchError
    from cfdbench.models.registry import get_model_class

    with pytest.raises(CfdbenchError, match=message):
        get_model_class(f"{broken_plugins / file}:{cls}")


@pytest.mark.parametrize(
    "file, cls, message",
    [
        ("syntax.py", "X", "does not import (SyntaxError"),
        ("wrong_shape.py", "WrongShape", "returns shape (2, 1, 16, 16) but the target is (2, 2, 16, 16)"),
    ],
)
def test_broken_plugins_fail_before_training_in_one_line(workdir, broken_plugins, file, cls, message):
    result = run_cli(
        "run",
        "--model",
        f"{broken_plugins / file}:{cls}",
        "--dataset",
        str(workdir / "cavity-tiny.yaml"),
        "--epochs",
        "1",
        "--runs-root",
        str(workdir / "runs-broken"),
        cwd=workdir,
    )
    assert_one_line_error(result, message)
    assert not (workdir / "runs-broken").exists(), "a refused model leaves no run folder behind"


def test_unknown_module_and_model_card_keys(workdir, tmp_path, monkeypatch):
    assert_one_line_error(run_cli("run", "--model", "no_such_pkg.mod:Cls", cwd=workdir), "no_such_pkg.mod does not import")
    from cfdbench import cards
    from cfdbench.errors import CfdbenchError

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "fno.yaml").write_text("name: fno\nmodel: {}\nlearning_rate: 1\n")
    monkeypatch.setattr(cards, "project_root", lambda: tmp_path)
    with pytest.raises(CfdbenchError, match=r"unknown model card keys \['learning_rate'\]"):
        cards.load_model_card("fno")
