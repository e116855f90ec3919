"""The operator behind an entry: its code identity, its constructor arguments, and the stored source
that lets anyone re-run it after the author's file has moved.

An entry's ``code`` block is one of
- ``builtin``: a model shipped with cfdbench (its module, at the entry's ``git_commit``);
- ``distribution``: an installed plug-in package (its name, version and the entry point's object);
- ``source``: a ``file.py:Class`` or ``module:Class`` outside any distribution. Its file is copied
  into the run folder and, on submission, into ``leaderboard/code/``, both as ``code/<sha256>.py``,
  and verification imports that copy, never the author's path. One file is stored: an operator
  that imports sibling modules of its own must be installed as a distribution instead.

Each carries the SHA-256 of its code (for a distribution, of its installed ``.py`` files).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cfdbench.data.download import sha256_of
from cfdbench.errors import CfdbenchError

if TYPE_CHECKING:
    from cfdbench.models.base import NeuralOperator

CODE_DIR = "code"  # beside a run's entry.json, and leaderboard/code/ for submitted entries


def code_identity(model_class: type, spec: str) -> dict[str, Any]:
    """The ``code`` block of the operator ``model_class`` that ``--model spec`` named."""
    source = Path(inspect.getsourcefile(model_class) or "")
    if model_class.__module__.startswith("cfdbench."):
        return {"kind": "builtin", "module": model_class.__module__, "sha256": sha256_of(source)}
    distribution = _distribution_of(model_class, spec)
    if distribution is not None:
        return {
            "kind": "distribution",
            "distribution": distribution.metadata["Name"],
            "version": distribution.version,
            "object": f"{model_class.__module__}:{model_class.__qualname__}",
            "sha256": distribution_sha256(distribution),
        }
    if not source.is_file():
        raise CfdbenchError(f"model '{spec}': the source of {model_class.__qualname__} cannot be found to store with the run")
    return {"kind": "source", "file": source.name, "class": model_class.__qualname__, "sha256": sha256_of(source)}


def _distribution_of(model_class: type, spec: str) -> importlib.metadata.Distribution | None:
    """The installed distribution that provides ``model_class`` (an entry point's, or its top-level package's)."""
    for entry_point in importlib.metadata.entry_points(group="cfdbench.models"):
        if entry_point.name == spec and entry_point.dist is not None:
            return entry_point.dist
    package = model_class.__module__.split(".")[0]
    names = importlib.metadata.packages_distributions().get(package, [])
    return importlib.metadata.distribution(names[0]) if names else None


def distribution_sha256(distribution: importlib.metadata.Distribution) -> str:
    """SHA-256 over the sorted (path, SHA-256) of a distribution's installed Python files."""
    digest = hashlib.sha256()
    for file in sorted(distribution.files or [], key=str):
        if file.suffix == ".py":
            digest.update(f"{file.as_posix()}\0{sha256_of(Path(file.locate()))}\n".encode())
    return digest.hexdigest()


def constructor_arguments(model: NeuralOperator) -> dict[str, Any]:
    """Every argument the model was built with, defaults included (``meta`` aside): the call the base
    class recorded (``model.hparams``), as JSON values (one JSON cannot hold is written as its ``repr``)."""
    return {key: _json_value(value) for key, value in model.hparams.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return repr(value)


def store_source(code: dict[str, Any], model_class: type, root: Path) -> Path | None:
    """Copy a ``source`` operator's file to ``root/code/<sha256>.py`` (None for other kinds); the copy
    must hash as the entry says (the file changed during the run otherwise)."""
    if code["kind"] != "source":
        return None
    target = Path(root) / CODE_DIR / f"{code['sha256']}.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(inspect.getsourcefile(model_class), target)
    if sha256_of(target) != code["sha256"]:
        target.unlink()
        raise CfdbenchError(f"{code['file']} changed while the run used it: run again with the file unchanged")
    return target


def find_stored_source(code: dict[str, Any], entry_path: Path) -> Path | None:
    """The stored copy of a ``source`` operator for the entry at ``entry_path``: ``code/<sha256>.py`` in
    the entry's folder or one of the two above it (a run folder; ``leaderboard/`` for
    ``leaderboard/entries/<dataset>/``), when its digest matches."""
    for folder in list(Path(entry_path).resolve().parents)[:3]:
        candidate = folder / CODE_DIR / f"{code['sha256']}.py"
        if candidate.is_file() and sha256_of(candidate) == code["sha256"]:
            return candidate
    return None


def recoverable_problem(entry: Any, entry_path: Path) -> str | None:
    """Why the operator of an entry cannot be recovered by someone else, or None when it can."""
    code = entry.get("code")
    if code is None:
        return "it records no code identity (written by an older cfdbench): re-evaluate it with this version"
    if code["kind"] == "source" and find_stored_source(code, entry_path) is None:
        return (
            f"its operator's source ({code['file']}, SHA-256 {code['sha256'][:12]}...) is not stored beside it in "
            f"{CODE_DIR}/: submit the run folder that `cfdbench run` or `evaluate` wrote"
        )
    if code["kind"] == "builtin" and entry["git_commit"] == "unknown":
        return "its built-in model comes from an unknown cfdbench commit: evaluate from a git checkout"
    return None


def load_operator(code: dict[str, Any], spec: str, entry_path: Path) -> type | None:
    """The operator class an entry's checkpoint must be rebuilt with: a ``source`` operator imported from
    its stored copy (registered under ``spec``, the name its checkpoint records); an installed
    distribution checked against the entry's version and digest; None for a built-in."""
    from cfdbench.models.registry import checked_operator, get_model_class

    if code["kind"] == "builtin":
        return None
    if code["kind"] == "distribution":
        _check_distribution(code)
        return None
    path = find_stored_source(code, entry_path)
    if path is None:
        raise CfdbenchError(f"{entry_path}: {recoverable_problem({'code': code, 'git_commit': ''}, entry_path)}")
    return checked_operator(get_model_class(f"{path}:{code['class']}"), spec)  # registered under the checkpoint's name


def _check_distribution(code: dict[str, Any]) -> None:
    name, version = code["distribution"], code["version"]
    try:
        installed = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise CfdbenchError(
            f"the entry's operator comes from {name} {version}: install it (pip install '{name}=={version}')"
        ) from None
    if installed.version != version or distribution_sha256(installed) != code["sha256"]:
        raise CfdbenchError(
            f"the installed {name} {installed.version} is not the entry's {name} {version} (SHA-256 "
            f"{code['sha256'][:12]}...): install the version the entry names"
        )
