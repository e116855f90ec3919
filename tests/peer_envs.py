"""Peers' own packages for the slow interoperability tests: a virtual environment with The Well's
package, PDEBench's wheel unpacked. Both are built once under a cache folder and reused
(``CFDBENCH_TEST_ENVS``, default ``~/.cache/cfdbench-test-envs``); a test whose package cannot be
installed or downloaded is skipped with pip's reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ENV_ROOT = Path(os.environ.get("CFDBENCH_TEST_ENVS", Path.home() / ".cache" / "cfdbench-test-envs"))
PIP_TIMEOUT = 900  # seconds: torch is the large download


def _pip_failure(result: subprocess.CompletedProcess, what: str) -> str:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip() and "is ignored" not in line]
    return f"cannot install {what}: {lines[-1] if lines else f'pip exited {result.returncode}'}"


def _build_once(name: str, build) -> Path:
    """``ENV_ROOT/name``, built by ``build(folder)`` into a temporary folder renamed into place, so a
    half-built folder is never reused."""
    final = ENV_ROOT / name
    if final.is_dir():
        return final
    ENV_ROOT.mkdir(parents=True, exist_ok=True)
    tmp = ENV_ROOT / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build(tmp)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def venv_python(name: str, requirements: list[str]) -> Path:
    """The interpreter of a virtual environment holding ``requirements`` (one pip command, so pins
    such as ``torch==2.13.0`` constrain the rest)."""

    def build(folder: Path) -> None:
        venv.EnvBuilder(with_pip=True).create(folder)
        command = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *requirements]
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        if result.returncode != 0:
            pytest.skip(_pip_failure(result, " ".join(requirements)))

    return _build_once(name, build) / "bin" / "python"


def unpacked_wheel(requirement: str, python_version: str) -> Path:
    """A pure-Python wheel, downloaded without its dependencies and unpacked: its folder, to import
    single modules from (PDEBench's wheel needs Python < 3.11 to install, not to be read)."""

    def build(folder: Path) -> None:
        command = [sys.executable, "-m", "pip", "download", "-q", requirement, "--no-deps", "--only-binary=:all:"]
        command += ["--python-version", python_version, "-d", str(folder / "wheel")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        if result.returncode != 0:
            pytest.skip(_pip_failure(result, requirement))
        for wheel in (folder / "wheel").glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(folder / "unpacked")

    return _build_once(requirement.replace("==", "-"), build) / "unpacked"
