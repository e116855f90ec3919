"""CFDBench's released data: download its archives, find and read its cases, reproduce its splits.

Layout of the release (``../shared/reference/cfdbench-format.md`` section 3):
``<problem>/{prop,bc,geo}/caseNNNN/{u.npy, v.npy, case.json}``, frames (T, 64, 64) with row 0
at the bottom, physical units, no mask and no pressure. Archives nest these folders
differently, so cases are found by search. What the release lacks or gets wrong is supplied
here: the true frame interval per problem, masks built from the geometry (the dam barrier
from its height and width, the cylinder disc centred at the origin; the generator's own flow
set-ups) and the full parameter vector including the obstacle geometry.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from cfdbench.cards import project_root
from cfdbench.data.download import Archive, DigestLock, check_free_space, fetch, safe_extract
from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.solvers.flows import FlowSetup, get_flow

PROBLEMS = ("cavity", "tube", "dam", "cylinder")
SUBSET_ORDER = ("prop", "bc", "geo")  # CFDBench concatenates subsets in this order
FRAME_INTERVAL = {"cavity": 0.1, "tube": 0.01, "dam": 0.1, "cylinder": 0.001}  # seconds, the true values
# CFDBench's cut: n_train = f(0.8 N), n_dev = f(0.1 N), with f per problem and task (section 5 of
# the reference): its autoregressive loaders use round for cavity and int for the others; its
# non-autoregressive loaders use round for cavity, tube and dam and int for the cylinder.
SPLIT_ROUNDING = {"cavity": "round", "tube": "int", "dam": "int", "cylinder": "int"}
SPLIT_ROUNDING_NON_AUTOREGRESSIVE = {"cavity": "round", "tube": "round", "dam": "round", "cylinder": "int"}
TASKS = ("autoregressive", "non-autoregressive")
# The release writes the cylinder's box as signed coordinates around the disc at the origin
# (x_min = -0.06 m); the cards and the generator use distances from the centre (x_min = 0.06 m).
SIGNED_LOWER_BOUNDS = {"cylinder": ("x_min", "y_min")}


# --------------------------------------------------------------------------- registry and download


@dataclass(frozen=True)
class Release:
    repository: str
    endpoint: str
    url_template: str
    archives: dict[str, list[Archive]]

    def url(self, archive: Archive, endpoint: str | None = None) -> str:
        base = (endpoint or self.endpoint).rstrip("/")
        return self.url_template.format(endpoint=base, repository=self.repository, path=archive.path)


def load_release() -> Release:
    raw = yaml.safe_load((project_root() / "datasets" / "cfdbench-release" / "release.yaml").read_text())
    archives = {problem: [Archive(**entry) for entry in entries] for problem, entries in raw["archives"].items()}
    return Release(raw["repository"], raw["endpoint"], raw["url_template"], archives)


def default_endpoint() -> str | None:
    """A mirror from the environment: ``CFDBENCH_HF_ENDPOINT``, else Hugging Face's own ``HF_ENDPOINT``."""
    return os.environ.get("CFDBENCH_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT")


def parse_problems(target: str) -> list[str]:
    """``cfdbench/cavity`` or ``cfdbench/all`` (the ``cfdbench/`` prefix is optional)."""
    name = target.removeprefix("cfdbench/")
    if name == "all":
        return list(PROBLEMS)
    if name not in PROBLEMS:
        raise UnknownNameError("CFDBench problem", target, [f"cfdbench/{p}" for p in (*PROBLEMS, "all")])
    return [name]


def download_release(
    problems: Sequence[str],
    raw_root: Path,
    endpoint: str | None = None,
    from_path: Path | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
) -> dict[str, Path]:
    """Fetch (or ingest from ``from_path``) and unpack each problem's archives under ``raw_root``;
    returns problem -> folder holding its case folders. Completed steps are skipped on rerun."""
    release = load_release()
    lock = DigestLock(raw_root / "release.lock.json")
    if from_path is None:
        missing = [a for p in problems for a in release.archives[p] if not _archive_file(raw_root, a).is_file()]
        check_free_space(raw_root, sum(a.size or 0 for a in missing))
    folders = {}
    for problem in problems:
        for archive in release.archives[problem]:
            zip_file = _archive_file(raw_root, archive)
            if from_path is not None:
                _ingest(from_path, archive, zip_file, lock)
            else:
                report = (lambda done, total, name=archive.path: progress(name, done, total)) if progress else None
                url = release.url(archive, endpoint or default_endpoint())
                fetch(url, zip_file, archive, lock, retries, backoff, progress=report)
            try:
                safe_extract(zip_file, raw_root / problem / Path(archive.path).with_suffix("").name)
            except CfdbenchError:
                if archive.sha256 is None:  # a digest recorded on first use vouches for nothing: start over
                    zip_file.unlink(missing_ok=True)
                    lock.forget(archive.path)
                raise
        folders[problem] = raw_root / problem
        find_cases(folders[problem], problem)  # the expected case folders are there
    return folders


def _archive_file(raw_root: Path, archive: Archive) -> Path:
    return raw_root / "archives" / archive.path


def _ingest(source: Path, archive: Archive, zip_file: Path, lock: DigestLock) -> None:
    """Copy the user's own archive (a file, or a folder holding the release's paths) into place, verified."""
    candidates = [source] if source.is_file() else [source / archive.path, source / Path(archive.path).name]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise CfdbenchError(f"--from {source}: {archive.path} not found (looked for {', '.join(map(str, candidates))})")
    fetch(found.resolve().as_uri(), zip_file, replace(archive, size=found.stat().st_size), lock, retries=0)


# --------------------------------------------------------------------------- reading cases

CASE_NAME = re.compile(r"^case(\d+)$")
PRESSURE_FILE = "p.npy"
EXTRAS_FILE = "cfdbench.json"


@dataclass
class RawCase:
    """One CFDBench case as released, plus what cfdbench derives: mask, parameters, grid, Δt."""

    problem: str
    subset: str
    number: int
    path: Path
    u: np.ndarray  # (T, ny, nx), row 0 at the bottom, as stored
    v: np.ndarray
    json: dict
    dtype: str

    @property
    def case_id(self) -> str:
        return f"{self.subset}-{self.number:04d}"

    p: np.ndarray | None = None  # pressure, only in folders written by `cfdbench data export`
    dt: float | None = None  # frame interval from cfdbench's side file; else the problem's true value

    @property
    def params(self) -> dict[str, float]:
        """The flow's full parameter vector (the cards' order and conventions, obstacle geometry included)."""
        names = get_flow(self.problem).parameters
        missing = [k for k in names if k not in self.json]
        if missing:
            raise CfdbenchError(f"{self.path / 'case.json'}: missing parameters {missing}")
        # A positive lower bound would put the disc outside its box, so the sign says which convention a file uses.
        signed = SIGNED_LOWER_BOUNDS.get(self.problem, ())
        return {k: abs(float(self.json[k])) if k in signed else float(self.json[k]) for k in names}

    @property
    def frame_interval(self) -> float:
        return self.dt if self.dt is not None else FRAME_INTERVAL[self.problem]

    @cached_property
    def setup(self) -> FlowSetup:
        """The same set-up the generator uses: window and bodies come from one definition."""
        return get_flow(self.problem).setup(self.params)

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre x (nx,) and y (ny,) of the frame grid, in metres."""
        x0, y0, width, height = self.setup.window_si
        ny, nx = self.u.shape[1:]
        return x0 + (np.arange(nx) + 0.5) * width / nx, y0 + (np.arange(ny) + 0.5) * height / ny

    def fluid_fraction(self) -> np.ndarray:
        """Each frame cell's share outside the dam barrier or the cylinder disc (CFDBench's masks
        missed both), exact, as the suite's own generators store it."""
        return self.setup.fluid_fraction(self.u.shape[1:])


def find_cases(root: Path, problem: str) -> dict[str, list[Path]]:
    """subset -> case folders in numeric order, wherever the archive nests them (``.../<subset>/caseNNNN``)."""
    if problem not in PROBLEMS:
        raise UnknownNameError("CFDBench problem", problem, list(PROBLEMS))
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.rglob("case*") if p.is_dir() and CASE_NAME.match(p.name)):
        subset = next((part for part in reversed(folder.parts[:-1]) if part in SUBSET_ORDER), None)
        if subset is None:
            raise CfdbenchError(f"{folder}: a case folder outside any prop/bc/geo subset folder")
        found.setdefault(subset, []).append(folder)
    if not found:
        raise CfdbenchError(f"{root}: no CFDBench case folders (<subset>/caseNNNN with u.npy, v.npy, case.json) found")
    return {s: sorted(found[s], key=lambda p: int(CASE_NAME.match(p.name).group(1))) for s in SUBSET_ORDER if s in found}


def read_case(folder: Path, problem: str, subset: str) -> RawCase:
    """Read one case folder; every defect is a CfdbenchError naming the folder."""
    for name in ("u.npy", "v.npy", "case.json"):
        if not (folder / name).is_file():
            raise CfdbenchError(f"{folder}: missing {name}")
    try:
        u, v = np.load(folder / "u.npy"), np.load(folder / "v.npy")
        meta = json.loads((folder / "case.json").read_text())
    except (ValueError, OSError) as err:
        raise CfdbenchError(f"{folder}: unreadable ({err})") from None
    if u.shape != v.shape:
        raise CfdbenchError(f"{folder}: u has shape {u.shape} but v has {v.shape}")
    if u.ndim != 3 or u.shape[0] == 0:
        raise CfdbenchError(f"{folder}: expected frames (T > 0, ny, nx), got shape {u.shape}")
    bad = np.flatnonzero(~(np.isfinite(u).all(axis=(1, 2)) & np.isfinite(v).all(axis=(1, 2))))
    if bad.size:
        raise CfdbenchError(f"{folder}: NaN or Inf in frames {bad[:5].tolist()}{'…' if bad.size > 5 else ''}")
    number = int(CASE_NAME.match(folder.name).group(1))
    pressure, dt = _read_cfdbench_extras(folder, u.shape)
    return RawCase(problem, subset, number, folder, u, v, meta, str(u.dtype), pressure, dt)


def _read_cfdbench_extras(folder: Path, shape: tuple[int, ...]) -> tuple[np.ndarray | None, float | None]:
    """Pressure and frame interval that `cfdbench data export` adds beside CFDBench's files (CFDBench ignores both)."""
    pressure = dt = None
    if (folder / PRESSURE_FILE).is_file():
        pressure = np.load(folder / PRESSURE_FILE)
        if pressure.shape != shape:
            raise CfdbenchError(f"{folder}: p has shape {pressure.shape} but u has {shape}")
    if (folder / EXTRAS_FILE).is_file():
        try:
            dt = float(json.loads((folder / EXTRAS_FILE).read_text())["dt"])
        except (ValueError, KeyError, TypeError) as err:
            raise CfdbenchError(f"{folder / EXTRAS_FILE}: unreadable ({err!r})") from None
    return pressure, dt


# --------------------------------------------------------------------------- CFDBench's splits


def split_counts(n: int, rounding: str) -> tuple[int, int, int]:
    """(train, dev, test) sizes of CFDBench's cut for ``n`` cases."""
    f = round if rounding == "round" else int
    n_train, n_dev = f(0.8 * n), f(0.1 * n)
    return n_train, n_dev, n - n_train - n_dev


def cfdbench_split(items: Sequence, rounding: str) -> dict[str, list]:
    """CFDBench's split of ``items`` (already in prop, bc, geo order, each numeric): Python's
    ``random.seed(0)`` shuffle, then an 80/10/10 cut with its rounding rule."""
    shuffled = list(items)
    state = random.getstate()
    try:
        random.seed(0)
        random.shuffle(shuffled)
    finally:
        random.setstate(state)
    n_train, n_dev, _ = split_counts(len(shuffled), rounding)
    return {"train": shuffled[:n_train], "valid": shuffled[n_train : n_train + n_dev], "test": shuffled[n_train + n_dev :]}


# Case counts of the release per subset (reference section 4); the published split lists are
# computed for these counts and checked against the cases actually found.
SUBSET_SIZES = {
    "cavity": {"prop": 84, "bc": 50, "geo": 25},
    "tube": {"prop": 100, "bc": 50, "geo": 25},
    "dam": {"prop": 100, "bc": 70, "geo": 50},
    "cylinder": {"prop": 115, "bc": 50, "geo": 20},
}
SUBSET_COMBINATIONS = ("prop", "bc", "geo", "prop_bc", "prop_geo", "bc_geo", "prop_bc_geo")


def split_rounding(problem: str, task: str = "autoregressive") -> str:
    """CFDBench's rounding rule for a problem's split under its autoregressive or non-autoregressive loaders."""
    if task not in TASKS:
        raise UnknownNameError("task", task, list(TASKS))
    return (SPLIT_ROUNDING if task == "autoregressive" else SPLIT_ROUNDING_NON_AUTOREGRESSIVE)[problem]


def published_split(
    problem: str, subsets: str, sizes: dict[str, int] | None = None, task: str = "autoregressive"
) -> dict[str, list[str]]:
    """CFDBench's split of ``<subsets>`` (e.g. ``prop_bc``) as ``<subset>/<rank>`` ids: the rank-th
    case of that subset in numeric folder order. This is what ``splits.yaml`` publishes."""
    sizes = sizes or SUBSET_SIZES[problem]
    chosen = [s for s in SUBSET_ORDER if s in subsets.split("_")]
    items = [f"{subset}/{rank}" for subset in chosen for rank in range(sizes[subset])]
    return cfdbench_split(items, split_rounding(problem, task))


def load_published_splits() -> dict:
    return yaml.safe_load((project_root() / "datasets" / "cfdbench-release" / "splits.yaml").read_text())
