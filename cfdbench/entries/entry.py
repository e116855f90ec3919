"""Leaderboard entries: one JSON file per evaluation of one model on one dataset split.

An entry carries everything needed to trust and reproduce a leaderboard row: the scores
*and* the identity-baseline scores on the same data, the per-step rollout curves, the
dataset content hash, the model's constructor arguments and code, the full training recipe,
the hardware, package versions, seed and git commit. Published leaderboards that nobody can
reproduce are the failure this guards against (shared/reference/peers.md, sections 5 and 6.7),
so every entry is validated on every write and every read.

:class:`Entry` is the one definition of the format: its fields are the JSON object's keys (the
JSON Schema ``entry_schema.json`` is tested against them), it is built by the pipeline, read by
:func:`load_entry` and written by :func:`save_entry`. It reads like its JSON object
(``entry["metrics"]``), so the renderers take entries and plain dicts alike.

The format is versioned: ``schema_version`` 3 is written; version 2 (entries scored before the
code identity and the published predictions existed) is still read; other versions are refused
with a clear message.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

import cfdbench
from cfdbench.errors import CfdbenchError
from cfdbench.io import write_text_atomic

SCHEMA_VERSION = 3
SUPPORTED_SCHEMA_VERSIONS = (2, 3)
SCHEMA_PATH = Path(__file__).with_name("entry_schema.json")
REPO_ROOT = Path(__file__).resolve().parents[2]

CURVE_METRICS = ("mse", "nmse", "mae", "max_abs", "rel_l2")  # present in every entry; others are optional
CONSISTENCY_RTOL = 1e-9  # a rollout score must equal the mean of its per-step curve to this
SOFTWARE_PACKAGES = ("torch", "neuraloperator", "numpy")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- the entry type


def _key(*, optional: bool = False, tier: str | None = None) -> Any:
    """A field of :class:`Entry`: ``optional`` keys may be absent (None, not written); ``tier`` names the
    verification tier that recomputes the value ("B": from the published predictions, "C": only by
    re-running the checkpoint)."""
    return field(default=None, metadata={"optional": True, "tier": tier}) if optional else field(metadata={"tier": tier})


@dataclass(frozen=True, eq=False)
class Entry(Mapping):
    """One leaderboard entry; its fields, in order, are the keys of the JSON object.

    Build it with keyword arguments (a misspelt key fails at once), :meth:`from_dict` for JSON that
    must be validated, and write it with :func:`save_entry`. Equality is that of the JSON objects,
    so an entry equals the dict it was read from.
    """

    schema_version: int = _key()
    entry_id: str = _key()
    date: str = _key()
    model: dict = _key()  # name, card, config (constructor arguments), parameter counts
    dataset: dict = _key()  # name, version, content_hash, split, n_cases, case_ids
    task: dict = _key()  # input_frames, stride, rollout_steps, start_frame, fields
    metrics: dict = _key(tier="B")  # one_step / rollout -> model / identity -> metric -> score
    curves: dict = _key(tier="B")
    training: dict | None = _key()  # None: evaluated without training
    hardware: dict = _key()
    software: dict = _key()
    seed: int = _key()
    git_commit: str = _key()
    rollout_windows: dict = _key(tier="B")
    valid_time: dict = _key(tier="B")
    confidence: dict = _key(tier="B")
    cost: dict = _key()
    diverged: dict = _key(tier="B")
    code: dict | None = _key(optional=True)  # required from version 3 on
    predictions: dict | None = _key(optional=True)  # the published predictions' file beside the entry
    strouhal: dict | None = _key(optional=True, tier="B")
    channel_statistics: dict | None = _key(optional=True, tier="B")
    refinement: dict | None = _key(optional=True, tier="C")
    hybrid: dict | None = _key(optional=True)
    artifacts: dict | None = _key(optional=True)  # run-folder files; dropped on submission

    @classmethod
    def all_keys(cls) -> tuple[str, ...]:
        """Every key an entry may hold, in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def required_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if not f.metadata.get("optional"))

    @classmethod
    def tier_keys(cls, tier: str) -> tuple[str, ...]:
        """The keys whose values verification ``tier`` recomputes: "B" from the predictions, "C" also
        what only a re-run gives."""
        tiers = ("B", "C") if tier == "C" else (tier,)
        return tuple(f.name for f in fields(cls) if f.metadata.get("tier") in tiers)

    @classmethod
    def from_dict(cls, raw: Any, source: str = "entry") -> "Entry":
        """A validated entry from its JSON object; any problem is one line naming ``source`` and the field."""
        raw = raw.to_dict() if isinstance(raw, Entry) else raw
        validate_entry(raw, source)
        return cls(**{key: raw[key] for key in _ALL_KEYS if key in raw})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: every required key, and the optional ones that are set."""
        return {key: getattr(self, key) for key in self}

    def __getitem__(self, key: str) -> Any:
        if key not in _ALL_KEYS or (key not in _REQUIRED_KEYS and getattr(self, key) is None):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return (key for key in _ALL_KEYS if key in _REQUIRED_KEYS or getattr(self, key) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


_ALL_KEYS = Entry.all_keys()
_REQUIRED_KEYS = frozenset(Entry.required_keys())

# --------------------------------------------------------------------------- validation


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    """The draft 2020-12 validator of the entry schema, built once (the schema's own validity is a test:
    checking it against the metaschema here would cost every command 0.1-0.3 s)."""
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def validate_entry(entry: Any, source: str = "entry") -> None:
    """Check ``entry`` against the schema and the cross-field rules; raise one readable line.

    The message reads ``"<source>: invalid leaderboard entry: <json path>: <message>"`` so a
    user sees which file and which field to fix. Beyond the schema this checks that every
    number is finite (JSON cannot hold NaN or infinity), that the date is a real date, and
    that every curve has exactly ``task.rollout_steps`` values.
    """
    entry = entry.to_dict() if isinstance(entry, Entry) else entry
    problem = (
        _version_problem(entry)
        or _json_value_problem(entry, "$")
        or _schema_problem(entry)
        or _date_problem(entry)
        or _curve_problem(entry)
        or _consistency_problem(entry)
        or _derived_problem(entry)
    )
    if problem:
        path, message = problem
        raise CfdbenchError(f"{source}: invalid leaderboard entry: {path}: {message}")


def _version_problem(entry: Any) -> tuple[str, str] | None:
    """Refuse non-objects and other schema versions before the schema produces noise."""
    if not isinstance(entry, dict):
        return "$", f"expected a JSON object, got {_type_name(entry)}"
    if "schema_version" not in entry:
        return None  # the schema reports the missing key
    version = entry["schema_version"]
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
        return "$.schema_version", (
            f"unsupported schema_version {version!r}; this cfdbench {cfdbench.__version__} "
            f"reads version(s) {supported} (upgrade cfdbench, or re-evaluate to write a current entry)"
        )
    return None


def _json_value_problem(value: Any, path: str) -> tuple[str, str] | None:
    """First value that JSON cannot hold faithfully: NaN/inf, non-string keys, foreign types."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"{value} is not a finite number (JSON cannot store NaN or infinity)"
    if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
        return path, f"{_short_repr(value)} holds a control character (a newline, tab, ...): entries hold one-line strings"
    if value is None or isinstance(value, (str, bool, int, float)):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return path, f"key {key!r} is not a string"
            problem = _json_value_problem(item, _child_path(path, key))
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _json_value_problem(item, f"{path}[{index}]")
            if problem:
                return problem
        return None
    return path, f"{_type_name(value)} is not a JSON value (use numbers, strings, lists and dicts)"


def _schema_problem(entry: dict) -> tuple[str, str] | None:
    """The most relevant JSON Schema violation, as (json path, short message)."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(entry))
    if error is None:
        return None
    return error.json_path, _describe(error)


def _describe(error: jsonschema.ValidationError) -> str:
    """A one-line message; long values are abbreviated so the field name stays visible."""
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"expected {expected}, got {_type_name(error.instance)}"
    message = error.message
    full = repr(error.instance)
    if message.startswith(full) and len(full) > 60:
        message = _short_repr(error.instance) + message[len(full) :]
    return " ".join(message.split())


def _date_problem(entry: dict) -> tuple[str, str] | None:
    """The pattern admits 2026-13-45; make sure the date actually exists."""
    try:
        datetime.fromisoformat(entry["date"].replace("Z", "+00:00"))
    except ValueError as exc:
        return "$.date", f"{entry['date']!r} is not a valid date-time ({exc})"
    return None


def _curve_problem(entry: dict) -> tuple[str, str] | None:
    """Every curve array must have one value per rollout step, and steps must increase."""
    steps_k = entry["task"]["rollout_steps"]
    steps = entry["curves"]["steps"]
    if len(steps) != steps_k:
        return "$.curves.steps", _length_message(len(steps), steps_k)
    if steps != list(range(1, steps_k + 1)):
        return "$.curves.steps", f"steps must be 1, 2, ..., {steps_k} (one per rollout step)"
    for who in ("model", "identity"):
        for metric, curve in entry["curves"][who].items():
            for stat in ("mean", "std"):
                values = curve[stat]
                if len(values) != steps_k:
                    return f"$.curves.{who}.{metric}.{stat}", _length_message(len(values), steps_k)
    return None


def _consistency_problem(entry: dict) -> tuple[str, str] | None:
    """Each rollout score, and each window mean, must be the mean of its per-step curve over its
    steps, and null exactly when one of those steps is (a diverged case): an edited number that
    no longer matches the stored curve is refused."""
    for who in ("model", "identity"):
        horizon = entry["task"]["rollout_steps"]
        for metric, score in entry["metrics"]["rollout"][who].items():
            problem = _mean_problem(entry, who, metric, score, 1, horizon, f"$.metrics.rollout.{who}.{metric}")
            if problem:
                return problem
        for metric, windows in entry.get("rollout_windows", {}).get(who, {}).items():
            for window, value in windows.items():
                first, _, last = window.partition("-")
                if not first.isdigit() or not (last or first).isdigit():
                    return f"$.rollout_windows.{who}.{metric}", f"window {window!r} is not '<step>' or '<first>-<last>'"
                where = f"$.rollout_windows.{who}.{metric}[{window!r}]"
                problem = _mean_problem(entry, who, metric, value, int(first), int(last or first), where)
                if problem:
                    return problem
    return None


def _mean_problem(entry: dict, who: str, metric: str, value: float | None, first: int, last: int, where: str):
    """(path, message) when ``value`` is not the mean of the curve over steps ``first..last``."""
    curve = entry["curves"][who].get(metric)
    if curve is None:
        return f"$.curves.{who}", f"has no curve for the score '{metric}'"
    means = curve["mean"][first - 1 : last]
    if not means:
        return where, f"steps {first}-{last} lie outside the {len(curve['mean'])}-step horizon"
    expected = None if any(v is None for v in means) else math.fsum(means) / len(means)
    if (value is None) != (expected is None) or (
        value is not None and not math.isclose(value, expected, rel_tol=CONSISTENCY_RTOL, abs_tol=1e-300)
    ):
        return where, f"{value!r} is not the mean of its per-step curve ({expected!r})"
    return None


def _derived_problem(entry: dict) -> tuple[str, str] | None:
    """Numbers the pages show that follow from others in the entry must agree with them: the case
    count, the parameter count of the cost block, the speed-up, the diverged cases, valid times and
    intervals within their bounds."""
    data, cost, steps = entry["dataset"], entry["cost"], entry["task"]["rollout_steps"]
    if data["n_cases"] != len(data["case_ids"]):
        return "$.dataset.n_cases", f"{data['n_cases']} is not the number of case_ids ({len(data['case_ids'])})"
    if cost["parameter_count"] != entry["model"]["parameter_count"]:
        return "$.cost.parameter_count", f"{cost['parameter_count']} differs from $.model.parameter_count"
    if ("speedup_vs_solver" in cost) != bool(cost.get("solver")):
        return "$.cost.speedup_vs_solver", "is given exactly when the solver's cost ($.cost.solver) is"
    if "speedup_vs_solver" in cost and not math.isclose(
        cost["speedup_vs_solver"], speedup_vs_solver(cost), rel_tol=CONSISTENCY_RTOL
    ):
        return (
            "$.cost.speedup_vs_solver",
            f"{cost['speedup_vs_solver']!r} is not solver.seconds_per_rollout / seconds_per_rollout",
        )
    strangers = sorted(set(entry["diverged"]) - set(data["case_ids"]))
    if strangers:
        return "$.diverged", f"cases {strangers} are not among the scored case_ids"
    for who, times in entry["valid_time"].items():
        if max(times["mean_steps"], times["median_steps"]) > steps or times["censored_cases"] > data["n_cases"]:
            return f"$.valid_time.{who}", f"exceeds the {steps}-step horizon or the {data['n_cases']} cases"
    for who, intervals in entry["confidence"].items():
        for metric, interval in intervals.items():
            if interval is not None and interval[0] > interval[1]:
                return f"$.confidence.{who}.{metric}", f"{interval} has its low end above its high end"
    return None


def speedup_vs_solver(cost: dict) -> float:
    """The cost block's speed-up: the generator's seconds per case over the model's, for one rollout."""
    return cost["solver"]["seconds_per_rollout"] / max(cost["seconds_per_rollout"], 1e-12)


def _length_message(actual: int, expected: int) -> str:
    return f"has {actual} values but task.rollout_steps is {expected} (one value per rollout step)"


def _child_path(path: str, key: str) -> str:
    """JSON path of ``key`` under ``path``, in the same notation jsonschema uses."""
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{key!r}]"


def _type_name(value: Any) -> str:
    """JSON-flavoured name of a value's type, with the value itself for scalars."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}
    if value is None:
        return "null"
    name = names.get(type(value), type(value).__name__)
    return f"{name} {_short_repr(value, 30)}" if type(value) in (str, int, float, bool) else name


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- files


def load_entry(path: str | os.PathLike) -> Entry:
    """Read and validate one entry; any problem is a CfdbenchError naming the file.

    Python's reader accepts the non-standard NaN/Infinity literals; validation then rejects
    them with the field's path, which says more than a parse error would.
    """
    path = Path(path)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CfdbenchError(f"{path}: cannot read leaderboard entry: {exc}") from exc
    return Entry.from_dict(entry, source=str(path))


def load_entries(folder: str | os.PathLike) -> list[Entry]:
    """Every ``*.json`` entry under ``folder``, sorted by path, each validated."""
    return [load_entry(path) for path in entry_paths(folder)]


def entry_paths(folder: str | os.PathLike) -> list[Path]:
    """The ``*.json`` files under an entries folder (``<dataset>/<entry_id>.json``), sorted; a missing
    folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CfdbenchError(f"{folder}: leaderboard entries folder does not exist")
    return sorted(folder.rglob("*.json"))


def save_entry(entry: Mapping, path: str | os.PathLike) -> Path:
    """Validate ``entry`` (an :class:`Entry` or its JSON object), then write pretty JSON (sorted keys,
    trailing newline) atomically.

    Nothing is written when validation fails, and a crash mid-write leaves either the old
    file or the new one, never a half-written entry.
    """
    path = Path(path)
    entry = Entry.from_dict(dict(entry), source=str(path))
    text = json.dumps(entry.to_dict(), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
    return write_text_atomic(path, text)


# --------------------------------------------------------------------------- provenance


def environment_info() -> tuple[dict, dict, str]:
    """(hardware, software, git_commit) of the running machine, for a new entry."""
    return _hardware(), _software(), _git_commit()


def _hardware() -> dict:
    """Device, CPU model and GPUs as torch sees them."""
    import torch

    has_cuda = torch.cuda.is_available()
    return {
        "device": "cuda" if has_cuda else "cpu",
        "cpu": cpu_model(),
        "gpu": torch.cuda.get_device_name(0) if has_cuda else None,
        "n_gpus": torch.cuda.device_count() if has_cuda else 0,
    }


def device_description(device: Any) -> str:
    """What ran on a torch device: the GPU's name, or the CPU model with its torch thread count."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} torch threads"


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _software() -> dict:
    """Python and package versions; cfdbench's is the running package's own version."""
    versions = {"python": platform.python_version(), "cfdbench": cfdbench.__version__}
    for package in SOFTWARE_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _git_commit() -> str:
    """HEAD of the checkout this package lives in (``-dirty`` if it has changes), else 'unknown'.

    The commit only counts when the repository root *is* the folder above the package, so a
    package installed inside some unrelated repository does not report that repository's HEAD.
    """
    head = _git("rev-parse", "--show-toplevel", "HEAD")
    if head is None:
        return "unknown"
    lines = head.splitlines()
    if len(lines) != 2 or not re.fullmatch(r"[0-9a-f]{40}", lines[1]):
        return "unknown"
    if Path(lines[0]).resolve() != REPO_ROOT:
        return "unknown"
    status = _git("status", "--porcelain")
    return lines[1] + ("-dirty" if status is None or status.strip() else "")


def _git(*args: str) -> str | None:
    """Output of a git command run in the repository root, or None if it fails."""
    try:
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


# --------------------------------------------------------------------------- naming


def utc_timestamp(when: datetime | None = None) -> str:
    """``when`` (default: now) as the entry date format, e.g. ``2026-11-28T19:00:00Z``.

    A naive datetime is taken to be UTC already.
    """
    when = when or datetime.now(timezone.utc)
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_entry_id(model: str, dataset: str, date: str | datetime) -> str:
    """Filesystem-safe id ``<model>--<dataset>--<YYYYMMDDTHHMMSSZ>``, e.g. for the file name."""
    if isinstance(date, str):
        try:
            date = datetime.fromisoformat(date.replace("Z", "+00:00"))
        except ValueError as exc:
            raise CfdbenchError(f"cannot make an entry id: {date!r} is not an ISO 8601 date") from exc
    stamp = utc_timestamp(date).replace("-", "").replace(":", "")
    return f"{_slug(model, 'model')}--{_slug(dataset, 'dataset')}--{stamp}"


def _slug(text: str, what: str) -> str:
    """``text`` with every run of unsafe characters turned into one '-'."""
    slug = _SAFE_ID.sub("-", text).strip("-.")
    if not slug:
        raise CfdbenchError(f"cannot make an entry id: {what} name {text!r} has no usable characters")
    return slug
