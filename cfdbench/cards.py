"""Dataset and model cards: the typed metadata that drives generation, shapes and defaults.

Cards live in the repository's top-level ``datasets/<name>/<name>.yaml`` and
``models/<name>.yaml``. They are data, not code: every size, sweep and default
hyper-parameter is read from them, never hand-written elsewhere.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cfdbench.errors import CfdbenchError, UnknownNameError

REPO_ROOT = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """Folder holding ``datasets/``, ``models/`` and ``leaderboard/`` (``CFDBENCH_HOME`` overrides)."""
    return Path(os.environ.get("CFDBENCH_HOME", REPO_ROOT))


def data_root() -> Path:
    """Where generated and downloaded datasets live (``CFDBENCH_DATA``, else ``./data``)."""
    root = Path(os.environ.get("CFDBENCH_DATA", "data"))
    if root.exists() and not root.is_dir():
        raise CfdbenchError(f"the data root {root} (CFDBENCH_DATA, default ./data) is a file, not a folder")
    return root


# --------------------------------------------------------------------------- dataset cards


@dataclass(frozen=True)
class SolverSettings:
    """How the numerical generator runs one case (non-dimensional: lengths by the reference
    length, velocities by the reference velocity, time by their ratio)."""

    cells_x: int
    cells_y: int
    cfl: float
    dtype: str
    frame_interval: float  # convective units between stored frames
    n_frames: int  # stored frames including the initial state
    store_solver_grid: bool = True  # also store the native staggered-grid frames (u, v on faces, p in cells)
    solver_grid_every: int = 1  # ... at every k-th stored frame (long, fine-grained runs would be huge)
    cells_per_length: float | None = None  # square cells per scale length (overrides cells_x/y)
    spinup: float = 0.0  # convective units simulated before the first stored frame
    max_cell_reynolds: float = 50.0  # Re per cell (scale Re / cells per scale length) the grid resolves


@dataclass(frozen=True)
class SplitSettings:
    seed: int = 0
    train: float = 0.8
    valid: float = 0.1


@dataclass(frozen=True)
class EvaluationSettings:
    """Where the dataset's rollouts (and the one-step pairs scored) start, and the card's reason.

    ``rollout_start`` is a stored-frame index: the first frame of the input window. Flows recorded
    from rest (an impulsive start) set it past the rest state, where persistence would predict zeros.
    """

    rollout_start: int = 0
    why: str = ""


@dataclass(frozen=True)
class CaseSpec:
    """One simulation to run: its stable id, sweep subset and physical parameters."""

    case_id: str
    subset: str
    params: dict[str, float]
    reynolds: float


@dataclass(frozen=True)
class DatasetCard:
    """Typed view of ``datasets/<name>/<name>.yaml``."""

    name: str
    version: str
    problem: str
    description: str
    parameters: tuple[str, ...]
    baseline: dict[str, float]
    subsets: dict[str, dict[str, list[float]] | list[dict[str, float]]]
    reynolds_range: tuple[float, float]
    reference_length: str
    reference_velocity: str
    solver: SolverSettings
    frame_shape: tuple[int, int]  # (ny, nx) of the stored, resampled frames
    fields: tuple[str, ...]
    splits: SplitSettings
    deviations: str = ""
    evaluation: EvaluationSettings = EvaluationSettings()
    path: Path | None = field(default=None, compare=False)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def folder(self) -> Path:
        assert self.path is not None
        return self.path.parent

    def reynolds(self, params: dict[str, float]) -> float:
        """Re = rho U L / mu with the card's reference velocity and length (``"2*radius"`` scales a key)."""
        factor, _, key = self.reference_length.rpartition("*")
        length = float(factor or 1.0) * params[key]
        return params["density"] * params[self.reference_velocity] * length / params["viscosity"]

    def variant(self, preset: str = "paper", subset: str = "all") -> "DatasetCard":
        """The card at a resolution preset (``paper`` is the card itself) and restricted to one subset.

        Variants are named ``<name>[-<preset>][-<subset>]`` so their data never mix.
        """
        if preset != "paper" and preset not in self.presets:
            raise UnknownNameError(f"preset of dataset '{self.name}'", preset, ["paper", *self.presets])
        raw = {k: v for k, v in self.raw.items() if k != "presets"}
        if preset != "paper":
            override = self.presets[preset]
            raw["solver"] = {**raw["solver"], **override.get("solver", {})}
            raw.update({k: v for k, v in override.items() if k != "solver"})
        if subset != "all":
            if subset not in raw["subsets"]:
                raise UnknownNameError(f"subset of dataset '{self.name}'", subset, ["all", *raw["subsets"]])
            raw["subsets"] = {subset: raw["subsets"][subset]}
        suffix = "".join(f"-{part}" for part, default in ((preset, "paper"), (subset, "all")) if part != default)
        raw["name"] = f"{self.name}{suffix}"
        card = parse_dataset_card(raw, self.path)
        return replace(card, presets={})

    def cases(self) -> list[CaseSpec]:
        """Expand the sweeps: each subset varies its keys (Cartesian product) around the baseline.

        Cases whose Reynolds number falls outside ``reynolds_range`` are not generated
        (the card's ``deviations`` says why). Ids are stable: ``<subset>-<index in sweep>``.
        """
        lo, hi = self.reynolds_range
        specs = []
        for subset, sweep in self.subsets.items():
            for index, combination in enumerate(_sweep_combinations(sweep)):
                params = dict(self.baseline)
                params.update(combination)
                re = self.reynolds(params)
                if lo <= re <= hi:
                    specs.append(CaseSpec(f"{subset}-{index:04d}", subset, params, re))
        return specs

    def content_hash(self) -> str:
        """SHA-256 of the card file: a generated dataset records which card made it."""
        assert self.path is not None
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _expand_values(spec: Any, where: str) -> list[float]:
    """A sweep axis is a list of numbers or ``{start, stop, step}`` (stop included)."""
    if isinstance(spec, dict):
        try:
            start, stop, step = float(spec["start"]), float(spec["stop"]), float(spec["step"])
        except KeyError as missing:
            raise CfdbenchError(f"{where}: range needs start, stop and step (missing {missing})")
        if step <= 0 or stop < start:
            raise CfdbenchError(f"{where}: empty range {spec}")
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        values = [round(start + i * step, 12) for i in range(count)]
    elif isinstance(spec, (list, tuple)):
        values = []
        for item in spec:  # numbers, and ranges whose values are concatenated
            values.extend(_expand_values(item, where) if isinstance(item, dict) else [float(item)])
    else:
        raise CfdbenchError(f"{where}: expected a list or {{start, stop, step}}, got {spec!r}")
    if not values:
        raise CfdbenchError(f"{where}: empty sweep")
    return values


def _parse_sweep(sweep: Any, where: str) -> dict[str, list[float]] | list[dict[str, float]]:
    """A subset is ``{parameter: values}`` (Cartesian product) or a list of explicit ``{parameter: value}`` cases."""
    if isinstance(sweep, list):
        if not sweep or not all(isinstance(case, dict) for case in sweep):
            raise CfdbenchError(f"{where}: an explicit case list needs at least one {{parameter: value}} mapping")
        return [{k: float(v) for k, v in case.items()} for case in sweep]
    if not isinstance(sweep, dict) or not sweep:
        raise CfdbenchError(f"{where}: expected {{parameter: values}} or a list of cases, got {sweep!r}")
    return {k: _expand_values(v, f"{where}.{k}") for k, v in sweep.items()}


def _sweep_combinations(sweep: dict[str, list[float]] | list[dict[str, float]]) -> list[dict[str, float]]:
    if isinstance(sweep, list):
        return sweep
    keys = list(sweep)
    return [dict(zip(keys, values)) for values in itertools.product(*(sweep[k] for k in keys))]


def _require_positive(params: dict[str, float], where: str) -> None:
    for key, value in params.items():
        if not np.isfinite(value) or value <= 0:
            raise CfdbenchError(f"{where}: parameter '{key}' must be positive, got {value}")


def parse_dataset_card(raw: dict[str, Any], path: Path | None = None) -> DatasetCard:
    """Validate a card's content; every error names the card and the offending key."""
    where = str(path or raw.get("name", "dataset card"))
    try:
        solver = SolverSettings(**raw["solver"])
        frame = raw["frames"]
        parameters = tuple(raw["parameters"])
        baseline = {k: float(v) for k, v in raw["baseline"].items()}
        subsets = {name: _parse_sweep(sweep, f"{where}: subsets.{name}") for name, sweep in raw["subsets"].items()}
        card = DatasetCard(
            name=str(raw["name"]),
            version=str(raw["version"]),
            problem=str(raw["problem"]),
            description=str(raw.get("description", "")).strip(),
            parameters=parameters,
            baseline=baseline,
            subsets=subsets,
            reynolds_range=tuple(float(r) for r in raw.get("reynolds_range", [0, np.inf])),
            reference_length=str(raw["reference_length"]),
            reference_velocity=str(raw["reference_velocity"]),
            solver=solver,
            frame_shape=(int(frame["ny"]), int(frame["nx"])),
            fields=tuple(raw.get("fields", ["u", "v", "p"])),
            splits=SplitSettings(**raw.get("splits", {})),
            deviations=str(raw.get("deviations", "")).strip(),
            evaluation=EvaluationSettings(**raw.get("evaluation", {})),
            path=path,
            presets=dict(raw.get("presets", {}) or {}),
            raw=raw,
        )
    except (KeyError, TypeError) as err:
        raise CfdbenchError(f"{where}: malformed dataset card ({err})") from None
    if set(baseline) != set(parameters):
        raise CfdbenchError(f"{where}: baseline keys {sorted(baseline)} != parameters {sorted(parameters)}")
    _require_positive(baseline, where)
    for name, sweep in subsets.items():
        for combination in _sweep_combinations(sweep):
            unknown = set(combination) - set(parameters)
            if unknown:
                raise CfdbenchError(f"{where}: subsets.{name} sweeps unknown parameters {sorted(unknown)}")
            _require_positive(combination, f"{where}: subsets.{name}")
    s = card.solver
    ny, nx = card.frame_shape
    settings = {
        "solver.cells_x": s.cells_x,
        "solver.cells_y": s.cells_y,
        "solver.n_frames": s.n_frames,
        "solver.frame_interval": s.frame_interval,
        "solver.cfl": s.cfl,
        "solver.solver_grid_every": s.solver_grid_every,
        "frames.nx": nx,
        "frames.ny": ny,
    }
    if s.cells_per_length is not None:
        settings["solver.cells_per_length"] = s.cells_per_length
    for key, value in settings.items():
        if not value > 0:
            raise CfdbenchError(f"{where}: {key} must be positive, got {value}")
    if not s.spinup >= 0:
        raise CfdbenchError(f"{where}: solver.spinup must be non-negative, got {s.spinup}")
    if not s.cfl <= 3**0.5:
        raise CfdbenchError(f"{where}: solver.cfl {s.cfl:g} is beyond RK3's convective limit √3 ≈ 1.732")
    if not card.cases():
        raise CfdbenchError(f"{where}: the sweeps produce no case inside reynolds_range {card.reynolds_range}")
    _check_evaluation(card.evaluation, s.n_frames, where)
    return card


def _check_evaluation(evaluation: EvaluationSettings, n_frames: int, where: str) -> None:
    """The rollout start is a stored frame, and a card that moves it off frame 0 says why."""
    start = evaluation.rollout_start
    if not isinstance(start, int) or not 0 <= start < n_frames:
        raise CfdbenchError(f"{where}: evaluation.rollout_start must be a frame index in [0, {n_frames}), got {start!r}")
    if start and not evaluation.why.strip():
        raise CfdbenchError(f"{where}: evaluation.rollout_start {start} needs evaluation.why (what the frames before it hold)")


def _read_yaml(path: Path) -> Any:
    """A card's YAML, or one line naming the file and where the syntax breaks."""
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise CfdbenchError(f"{path}: not valid YAML{where} ({problem})") from None


def dataset_names() -> list[str]:
    root = project_root() / "datasets"
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.yaml").is_file()) if root.is_dir() else []


def _variant_of(name: str) -> tuple[Path, str, str] | None:
    """``tube-tiny-bc`` -> (card path of ``tube``, ``tiny``, ``bc``) when such a card and parts exist."""
    parts = name.split("-")
    for cut in range(len(parts) - 1, 0, -1):
        base, extra = "-".join(parts[:cut]), parts[cut:]
        path = project_root() / "datasets" / base / f"{base}.yaml"
        if path.is_file() and len(extra) <= 2:
            preset, subset = "paper", "all"
            raw = _read_yaml(path)
            for part in extra:
                if part in (raw.get("presets") or {}) or part == "paper":
                    preset = part
                elif part in (raw.get("subsets") or {}):
                    subset = part
                else:
                    return None
            return path, preset, subset
    return None


def load_dataset_card(name_or_path: str | Path) -> DatasetCard:
    """A card by dataset name (``cavity``, or a variant such as ``tube-tiny-bc``) or by a card path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = project_root() / "datasets" / str(name_or_path) / f"{name_or_path}.yaml"
        if not path.is_file():
            variant = _variant_of(str(name_or_path))
            if variant is None:
                raise UnknownNameError("dataset", str(name_or_path), dataset_names())
            base_path, preset, subset = variant
            return load_dataset_card(base_path).variant(preset, subset)
    elif not path.is_file():
        raise CfdbenchError(f"dataset card not found: {path}")
    raw = _read_yaml(path)
    if is_channel_card(raw):
        raise CfdbenchError(f"{path}: a 3D channel-flow card; it is generated by `cfdbench data generate {raw.get('name')}`")
    return parse_dataset_card(raw, path)


# --------------------------------------------------------------------------- channel (3D DNS) cards

CHANNEL_PROBLEM = "channel"
CHANNEL_FIELDS = ("u", "v", "w", "p")


@dataclass(frozen=True)
class ChannelCard:
    """Typed view of a turbulent-channel card (``problem: channel``): the DNS, its spin-up, the
    recorded trajectories and the filtered coarse grid they are stored on. Units: δ = 1, u_τ = 1
    (so ν = 1/Re_τ), times in δ/u_τ."""

    name: str
    version: str
    description: str
    re_tau: float
    forcing: str  # pressure_gradient (-dP/dx = 1) or flow_rate (bulk_velocity held)
    bulk_velocity: float | None
    dns: Any  # cfdbench.solvers.channel.ChannelGrid
    dtype: str
    dt: float
    spinup: float
    spinup_average: float  # the last part of the spin-up over which statistics are checked
    spinup_amplitude: float
    seed: int
    trajectories: int
    frames: int
    frame_interval: float
    decorrelation: float
    perturbation: float
    coarse: Any  # cfdbench.solvers.channel_filter.CoarseGrid
    splits: SplitSettings
    checkpoint_every: float
    deviations: str = ""
    path: Path | None = field(default=None, compare=False)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    problem = CHANNEL_PROBLEM
    fields = CHANNEL_FIELDS

    @property
    def nu(self) -> float:
        return 1.0 / self.re_tau

    def variant(self, preset: str = "paper") -> "ChannelCard":
        """The card at a preset (``paper`` is the card itself), named ``<name>-<preset>``."""
        if preset == "paper":
            return self
        if preset not in self.presets:
            raise UnknownNameError(f"preset of dataset '{self.name}'", preset, ["paper", *self.presets])
        raw = {k: v for k, v in self.raw.items() if k != "presets"}
        for key, value in self.presets[preset].items():
            raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
        raw["name"] = f"{self.name}-{preset}"
        return replace(parse_channel_card(raw, self.path), presets={})

    def content_hash(self) -> str:
        """SHA-256 of the card's settings, whatever their layout: a generated dataset records which card
        made it, and publishing the dataset's hash in the card afterwards does not change it."""
        assert self.path is not None
        settings = {k: v for k, v in (yaml.safe_load(self.path.read_text()) or {}).items() if k != "published_content_hashes"}
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def parse_channel_card(raw: dict[str, Any], path: Path | None = None) -> ChannelCard:
    """Validate a channel card; errors name the card and the key, and a DNS grid too coarse for the
    card's Re_τ is refused with the limits it breaks."""
    from cfdbench.solvers.channel import ChannelGrid
    from cfdbench.solvers.channel_filter import CoarseGrid

    where = str(path or raw.get("name", "channel card"))
    try:
        dns, spinup, runs = dict(raw["dns"]), dict(raw["spinup"]), dict(raw["trajectories"])
        card = ChannelCard(
            name=str(raw["name"]),
            version=str(raw["version"]),
            description=str(raw.get("description", "")).strip(),
            re_tau=float(raw["re_tau"]),
            forcing=str(raw.get("forcing", "pressure_gradient")),
            bulk_velocity=None if raw.get("bulk_velocity") is None else float(raw["bulk_velocity"]),
            dns=ChannelGrid(
                int(dns["nx"]),
                int(dns["ny"]),
                int(dns["nz"]),
                float(raw["box"]["lx"]),
                float(raw["box"]["lz"]),
                float(dns["stretching"]),
            ),
            dtype=str(dns.get("dtype", "float32")),
            dt=float(dns["dt"]),
            spinup=float(spinup["duration"]),
            spinup_average=float(spinup["average"]),
            spinup_amplitude=float(spinup.get("amplitude", 0.3)),
            seed=int(spinup.get("seed", 0)),
            trajectories=int(runs["count"]),
            frames=int(runs["frames"]),
            frame_interval=float(runs["frame_interval"]),
            decorrelation=float(runs["decorrelation"]),
            perturbation=float(runs.get("perturbation", 0.05)),
            coarse=CoarseGrid(**raw["coarse"]),
            splits=SplitSettings(**raw.get("splits", {})),
            checkpoint_every=float(raw.get("checkpoint_every", 5.0)),
            deviations=str(raw.get("deviations", "")).strip(),
            path=path,
            presets=dict(raw.get("presets") or {}),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CfdbenchError(f"{where}: malformed channel card ({type(err).__name__}: {err})") from None
    if card.forcing not in ("pressure_gradient", "flow_rate") or (card.forcing == "flow_rate") != (
        card.bulk_velocity is not None
    ):
        raise CfdbenchError(f"{where}: forcing must be pressure_gradient, or flow_rate with a bulk_velocity")
    positive = {"re_tau": card.re_tau, "dns.dt": card.dt, "trajectories.frame_interval": card.frame_interval}
    for key, value in positive.items():
        if not value > 0:
            raise CfdbenchError(f"{where}: {key} must be positive, got {value}")
    if card.trajectories < 1 or card.frames < 2 or not 0 < card.spinup_average <= card.spinup:
        raise CfdbenchError(f"{where}: need >= 1 trajectory, >= 2 frames and 0 < spinup.average <= spinup.duration")
    steps = card.frame_interval / card.dt
    if abs(steps - round(steps)) > 1e-9:
        raise CfdbenchError(
            f"{where}: trajectories.frame_interval ({card.frame_interval}) must be a whole number of dns.dt ({card.dt})"
        )
    card.dns.check_resolution(card.re_tau)
    return card


def is_channel_card(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("problem") == CHANNEL_PROBLEM


def find_channel_card(name: str) -> ChannelCard | None:
    """The channel card of a dataset name (``channel180``) or preset variant (``channel180-tiny``);
    None when the name belongs to no channel card."""
    for base, preset in ((name, "paper"), (name.rpartition("-")[0], name.rpartition("-")[2])):
        path = project_root() / "datasets" / base / f"{base}.yaml"
        if base and path.is_file():
            raw = _read_yaml(path)
            return parse_channel_card(raw, path).variant(preset) if is_channel_card(raw) else None
    return None


def find_card(name: str) -> "DatasetCard | ChannelCard":
    """The card of a dataset name or variant, whichever kind it is: a 3D channel card or a 2D flow's
    card (the one lookup; callers that need one kind's attributes check its type)."""
    channel = find_channel_card(name)
    return channel if channel is not None else load_dataset_card(name)


def dataset_rollout_start(name: str) -> int:
    """The frame where a dataset's rollouts start, as its card says (``evaluation.rollout_start``);
    0 for data no 2D card describes (CFDBench's converted releases; the channel, stored after its
    spin-up)."""
    try:
        card = find_card(name)
    except UnknownNameError:
        return 0
    return 0 if isinstance(card, ChannelCard) else card.evaluation.rollout_start


# --------------------------------------------------------------------------- model cards


@dataclass(frozen=True)
class ModelCard:
    """Typed view of ``models/<name>.yaml``: default hyper-parameters, per dataset where they differ."""

    name: str
    description: str
    model: dict[str, Any]
    training: dict[str, Any]
    per_dataset: dict[str, dict[str, dict[str, Any]]]
    reference_parameter_count: int | None
    path: Path | None = None
    builds: dict[str, Any] | None = None  # the class the model block constructs, and a library class's exact arguments

    def resolve(self, dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(model kwargs, training settings) for a dataset: defaults updated by its overrides."""
        override = self.per_dataset.get(dataset, {})
        return {**self.model, **override.get("model", {})}, {**self.training, **override.get("training", {})}


MODEL_CARD_KEYS = {"name", "description", "reference", "cfdbench_parameter_count", "model", "builds", "training", "datasets"}
BUILDS_KEYS = {"class", "sized_on", "arguments"}


def model_card_names() -> list[str]:
    root = project_root() / "models"
    return sorted(p.stem for p in root.glob("*.yaml")) if root.is_dir() else []


def load_model_card(name: str) -> ModelCard | None:
    """The card for a registered model name, or ``None`` for models without a card (plug-ins)."""
    path = project_root() / "models" / f"{name}.yaml"
    if not path.is_file():
        return None
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise CfdbenchError(f"{path}: malformed model card (not a mapping)")
    unknown = set(raw) - MODEL_CARD_KEYS
    if unknown:
        raise CfdbenchError(f"{path}: unknown model card keys {sorted(unknown)}; valid: {sorted(MODEL_CARD_KEYS)}")
    for dataset, override in (raw.get("datasets") or {}).items():
        extra = set(override or {}) - {"model", "training"}
        if extra:
            raise CfdbenchError(f"{path}: datasets.{dataset} has unknown keys {sorted(extra)}; valid: model, training")
    builds = raw.get("builds")
    if builds is not None and (not isinstance(builds, dict) or "class" not in builds or set(builds) - BUILDS_KEYS):
        raise CfdbenchError(f"{path}: builds must be a mapping with a class (and optionally sized_on, arguments)")
    try:
        return ModelCard(
            name=str(raw["name"]),
            description=str(raw.get("description", "")).strip(),
            model=dict(raw.get("model", {})),
            training=dict(raw.get("training", {})),
            per_dataset=dict(raw.get("datasets", {}) or {}),
            reference_parameter_count=raw.get("cfdbench_parameter_count"),
            path=path,
            builds=builds,
        )
    except (KeyError, TypeError) as err:
        raise CfdbenchError(f"{path}: malformed model card ({err})") from None
