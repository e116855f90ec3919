"""Checkers for The Well's on-disk format and data, written from its specification.

What they enforce (``../shared/reference/peers.md`` sections 2 and 7.1; The Well's
``docs/data_format.md`` and the rules its ``scripts/check_thewell_formatting.py`` and
``scripts/check_thewell_data.py`` apply, which its pip package does not ship):

- files: root attributes ``dataset_name``, ``grid_type``, ``n_spatial_dims``, ``n_trajectories``,
  ``simulation_parameters`` (each also a root attribute and a ``scalars/`` dataset); the six groups;
  ``dimensions`` with ``spatial_dims``, ``time`` and one float32 coordinate per axis. Every dataset
  of ``dimensions``, ``scalars``, ``t0_fields``-``t2_fields`` and every boundary condition carries
  boolean ``sample_varying`` and ``time_varying`` and is shaped by them (The Well's expected-shape
  rule: ``[n_trajectories if sample_varying] + [len(time) if time_varying] + ...``). So
  ``dimensions/time`` needs ``time_varying = True``: with ``False`` its shape would have to be
  ``()``. Spatial coordinates may not vary in time (unsupported, says the format page); fields are
  float32; ``bc_type`` is a string;
- data (:func:`check_well_data`): no NaN frames, no constant frames after the first, ``bc_type``
  upper-case, as many ``spatial_dims`` as ``n_spatial_dims``: what The Well's data checker counts
  as an issue. It also lists steps whose frame mean lies 5 standard deviations from the
  trajectory's (:func:`outlier_steps`), which The Well's checker prints but does not count;
- datasets: ``datasets/<name>/{<name>.yaml, stats.yaml, data/{train,valid,test}/*.hdf5}``, one
  spatial resolution, metadata that agrees with the files, and the statistics The Well's
  normalisation reads (``mean`` and ``std`` of constant fields too).

The export tests run them on every exported dataset, so that a file The Well cannot read fails
here first; they collect every problem instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import yaml

ROOT_ATTRS = ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories", "simulation_parameters")
GROUPS = ("dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields")
GRID_TYPES = ("cartesian", "spherical")
BC_TYPES = ("WALL", "OPEN", "PERIODIC")
BC_ATTRS = ("bc_type", "associated_dims", "associated_fields", "sample_varying", "time_varying")
SPLITS = ("train", "valid", "test")
METADATA_KEYS = (
    "dataset_name",
    "n_spatial_dims",
    "spatial_resolution",
    "scalar_names",
    "constant_scalar_names",
    "field_names",
    "constant_field_names",
    "boundary_condition_types",
    "n_files",
    "n_trajectories_per_file",
    "n_steps_per_trajectory",
    "grid_type",
)
STATS_KEYS = ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta")


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def _strings(value: object) -> list[str] | None:
    """A list attribute of strings as a Python list, or None when it is not one."""
    if isinstance(value, (list, np.ndarray)) and all(isinstance(v, str) for v in list(value)):
        return [str(v) for v in value]
    return None


def _check_root(f: h5py.File) -> list[str]:
    problems = [f"root attribute '{a}' missing" for a in ROOT_ATTRS if a not in f.attrs]
    problems += [f"group '{g}' missing" for g in GROUPS if g not in f]
    if problems:
        return problems
    if not isinstance(f.attrs["dataset_name"], str) or f.attrs["grid_type"] not in GRID_TYPES:
        problems.append("dataset_name must be a string and grid_type cartesian or spherical")
    if not isinstance(f.attrs["n_trajectories"], (int, np.integer)) or f.attrs["n_trajectories"] < 1:
        problems.append("n_trajectories must be a positive integer")
    params = _strings(f.attrs["simulation_parameters"])
    if params is None:
        return problems + ["simulation_parameters must be a list of strings"]
    for name in params:
        if name not in f.attrs:
            problems.append(f"simulation parameter '{name}' is not a root attribute")
        if name not in f["scalars"]:
            problems.append(f"simulation parameter '{name}' is not a dataset in scalars/")
    return problems


def _leading_shape(f: h5py.File, attrs: h5py.AttributeManager) -> list[int]:
    """The axes a dataset's flags put first: trajectories if ``sample_varying``, time if ``time_varying``."""
    shape = [int(f.attrs["n_trajectories"])] * bool(attrs["sample_varying"])
    return shape + [f["dimensions"]["time"].shape[-1]] * bool(attrs["time_varying"])


def _has_flags(attrs: h5py.AttributeManager) -> bool:
    return all(_is_bool(attrs.get(k)) for k in ("sample_varying", "time_varying"))


def _check_dimensions(f: h5py.File) -> list[str]:
    dims = f["dimensions"]
    axes = _strings(dims.attrs.get("spatial_dims"))
    if not axes:
        return ["dimensions/spatial_dims must be a non-empty list of strings"]
    problems = [] if len(axes) == f.attrs["n_spatial_dims"] else ["n_spatial_dims differs from len(spatial_dims)"]
    if "time" not in dims:
        return problems + ["dimensions/time missing"]
    for name in ("time", *axes):
        if name not in dims:
            problems.append(f"dimensions/{name} missing")
            continue
        flags = dims[name].attrs
        if not _has_flags(flags):
            problems.append(f"dimensions/{name} needs boolean sample_varying and time_varying")
            continue
        shape = dims[name].shape if name == "time" else dims[name].shape[:-1]  # a coordinate's own axis is last
        if list(shape) != (expected := _leading_shape(f, flags)):
            problems.append(f"dimensions/{name} has shape {tuple(shape)}, its flags say {tuple(expected)}")
        if name != "time" and flags["time_varying"]:
            problems.append(f"dimensions/{name}: time-varying coordinates are not supported")
        if dims[name].dtype != np.float32:
            problems.append(f"dimensions/{name} is {dims[name].dtype}, not float32")
    if dims["time"].shape[-1] > 2:
        steps = np.diff(dims["time"][()].astype(np.float64), axis=-1)
        if not np.allclose(steps, steps.flat[0], rtol=1e-4):
            problems.append("dimensions/time is not uniformly spaced")
    return problems


def _expected_shape(f: h5py.File, attrs: h5py.AttributeManager, order: int) -> list[int]:
    dims = f["dimensions"]
    axes = _strings(dims.attrs["spatial_dims"])
    shape = _leading_shape(f, attrs)
    shape += [dims[a].shape[-1] for a, varying in zip(axes, attrs["dim_varying"]) if varying]
    return shape + [len(axes)] * order


def _check_fields(f: h5py.File, order: int) -> list[str]:
    group = f[f"t{order}_fields"]
    names = _strings(group.attrs.get("field_names", None))
    if names is None:
        return [f"t{order}_fields/field_names must be a list of strings"]
    problems = []
    for name in names:
        where = f"t{order}_fields/{name}"
        if name not in group:
            problems.append(f"{where} is named in field_names but missing")
            continue
        attrs = group[name].attrs
        flags_ok = _has_flags(attrs)
        dim_varying = attrs.get("dim_varying")
        if not flags_ok or dim_varying is None or len(dim_varying) != f.attrs["n_spatial_dims"]:
            problems.append(f"{where} needs boolean sample_varying, time_varying and dim_varying of length n_spatial_dims")
            continue
        expected = _expected_shape(f, attrs, order)
        if list(group[name].shape) != expected:
            problems.append(f"{where} has shape {group[name].shape}, its flags say {tuple(expected)}")
        if group[name].dtype != np.float32:
            problems.append(f"{where} is {group[name].dtype}, not float32")
    return problems


def _check_scalars(f: h5py.File) -> list[str]:
    group = f["scalars"]
    names = _strings(group.attrs.get("field_names", None))
    if names is None:
        return ["scalars/field_names must be a list of strings"]
    problems = []
    for name in names:
        if name not in group:
            problems.append(f"scalars/{name} is named in field_names but missing")
            continue
        attrs = group[name].attrs
        if not _has_flags(attrs):
            problems.append(f"scalars/{name} needs boolean sample_varying and time_varying")
        elif list(group[name].shape) != (expected := _leading_shape(f, attrs)):
            problems.append(f"scalars/{name} has shape {group[name].shape}, its flags say {tuple(expected)}")
    return problems


def _check_boundary_conditions(f: h5py.File) -> list[str]:
    axes = _strings(f["dimensions"].attrs["spatial_dims"])
    problems = []
    for key, bc in f["boundary_conditions"].items():
        where = f"boundary_conditions/{key}"
        missing = [a for a in BC_ATTRS if a not in bc.attrs]
        if missing or "mask" not in bc:
            problems.append(f"{where} lacks {missing + ([] if 'mask' in bc else ['mask'])}")
            continue
        bc_type = bc.attrs["bc_type"]
        if not isinstance(bc_type, str) or bc_type.upper() not in BC_TYPES:
            problems.append(f"{where}: bc_type {bc_type!r} is not one of {BC_TYPES}")
        associated = _strings(bc.attrs["associated_dims"]) or []
        if not _has_flags(bc.attrs):
            problems.append(f"{where} needs boolean sample_varying and time_varying")
        elif not associated or any(a not in axes for a in associated):
            problems.append(f"{where}: associated_dims {associated} must name spatial dims {axes}")
        else:  # The Well's rule: flags, then the associated axes in spatial_dims order
            expected = _leading_shape(f, bc.attrs) + [f["dimensions"][a].shape[-1] for a in axes if a in associated]
            if list(bc["mask"].shape) != expected:
                problems.append(f"{where}/mask has shape {bc['mask'].shape}, its flags and associated_dims say {tuple(expected)}")
        if bc["mask"].dtype != bool:
            problems.append(f"{where}/mask is {bc['mask'].dtype}, not bool")
    return problems


def check_well_file(path: str | Path) -> list[str]:
    """Every way one HDF5 file breaks The Well's schema (empty when it conforms)."""
    try:
        with h5py.File(path, "r") as f:
            problems = _check_root(f)
            if any(a not in f.attrs for a in ROOT_ATTRS) or any(g not in f for g in GROUPS):
                return problems  # nothing further can be read reliably
            problems += _check_dimensions(f)
            if problems and any(p.startswith(("dimensions", "n_spatial_dims")) for p in problems):
                return problems
            for order in range(3):
                problems += _check_fields(f, order)
            return problems + _check_scalars(f) + _check_boundary_conditions(f)
    except OSError as err:
        return [f"not a readable HDF5 file ({err})"]


# --------------------------------------------------------------------------- data checks

OUTLIER_SIGMAS = 5.0  # The Well's data checker: a frame mean this many standard deviations out


def _time_varying_frames(f: h5py.File) -> Iterator[tuple[str, int, int, np.ndarray]]:
    """(field, trajectory, component, frames (T, cells)) for every time-varying field of the file,
    each component apart (a scalar field has one), as The Well's data checker walks them."""
    n_dims = int(f.attrs["n_spatial_dims"])
    for order in range(3):
        group = f[f"t{order}_fields"]
        for name in _strings(group.attrs.get("field_names", [])) or []:
            if name not in group or not group[name].attrs.get("time_varying"):
                continue
            data = group[name][()]
            n_traj, steps, space = data.shape[0], data.shape[1], data.shape[2 : 2 + n_dims]
            data = data.reshape(n_traj, steps, int(np.prod(space)), -1)
            for trajectory in range(n_traj):
                for component in range(data.shape[-1]):
                    yield name, trajectory, component, data[trajectory, :, :, component]


def _frame_kinds(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: holds a NaN; is constant (and is not the first frame, which may be a rest state)."""
    nan = np.isnan(frames).any(axis=1)
    constant = np.array([np.allclose(frame, frame[0]) for frame in frames]) & (np.arange(len(frames)) > 0) & ~nan
    return nan, constant


def check_well_data(path: str | Path) -> list[str]:
    """What The Well's data checker counts as an issue in one file: frames with NaN, constant frames
    after the first, a ``bc_type`` that is not upper-case, ``spatial_dims`` that do not match
    ``n_spatial_dims``. Empty when it would report "no detected issue"."""
    problems = []
    with h5py.File(path, "r") as f:
        for key, bc in f["boundary_conditions"].items():
            bc_type = str(bc.attrs["bc_type"])
            if bc_type != bc_type.upper():
                problems.append(f"boundary_conditions/{key}: bc_type {bc_type!r} is not upper-case")
        if len(f["dimensions"].attrs["spatial_dims"]) != f.attrs["n_spatial_dims"]:
            problems.append("dimensions: len(spatial_dims) differs from n_spatial_dims")
        for name, trajectory, component, frames in _time_varying_frames(f):
            nan, constant = _frame_kinds(frames)
            where = f"{name}[{component}] of trajectory {trajectory}"
            if nan.any():
                problems.append(f"{where}: NaN in steps {np.flatnonzero(nan).tolist()}")
            if constant.any():
                problems.append(f"{where}: constant frames at steps {np.flatnonzero(constant).tolist()}")
    return problems


def outlier_steps(path: str | Path, sigmas: float = OUTLIER_SIGMAS) -> dict[tuple[str, int, int], list[int]]:
    """The Well's data checker's outliers: per field, trajectory and component, the steps whose
    spatial mean lies at least ``sigmas`` standard deviations (over the trajectory's frame means)
    from their mean; NaN and later constant frames are left out, as it does. Only non-empty lists."""
    found = {}
    with h5py.File(path, "r") as f:
        for name, trajectory, component, frames in _time_varying_frames(f):
            nan, constant = _frame_kinds(frames)
            steps = np.flatnonzero(~nan & ~constant)
            means = frames[steps].astype(np.float64).mean(axis=1)
            outliers = steps[np.abs(means - means.mean()) >= sigmas * means.std()]
            if outliers.size:
                found[(name, trajectory, component)] = outliers.tolist()
    return found


# --------------------------------------------------------------------------- datasets


def _spatial_resolution(path: Path) -> list[int]:
    with h5py.File(path, "r") as f:
        return [f["dimensions"][a].shape[-1] for a in _strings(f["dimensions"].attrs["spatial_dims"])]


def check_well_dataset(folder: str | Path) -> list[str]:
    """Every way a ``datasets/<name>`` folder breaks The Well's layout, plus the problems of each file."""
    folder = Path(folder)
    name = folder.name
    problems = []
    files = {split: sorted((folder / "data" / split).glob("*.hdf5")) for split in SPLITS}
    problems += [f"data/{split}/ has no .hdf5 files" for split in ("train",) if not files[split]]
    for split, paths in files.items():
        for path in paths:
            problems += [f"{path.relative_to(folder)}: {p}" for p in check_well_file(path) or check_well_data(path)]
    if problems:
        return problems
    resolutions = {tuple(_spatial_resolution(p)) for paths in files.values() for p in paths}
    if len(resolutions) != 1:
        problems.append(f"files disagree on the spatial resolution: {sorted(resolutions)}")
    problems += _check_metadata(folder / f"{name}.yaml", name, resolutions)
    problems += _check_stats(folder / "stats.yaml", folder / f"{name}.yaml")
    return problems


def _load_yaml(path: Path) -> dict | None:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return raw if isinstance(raw, dict) else None


def _check_metadata(path: Path, name: str, resolutions: set[tuple[int, ...]]) -> list[str]:
    meta = _load_yaml(path)
    if meta is None:
        return [f"{path.name}: missing or not a YAML mapping"]
    problems = [f"{path.name}: key '{k}' missing" for k in METADATA_KEYS if k not in meta]
    if problems:
        return problems
    if meta["dataset_name"] != name:
        problems.append(f"{path.name}: dataset_name {meta['dataset_name']!r} is not the folder name {name!r}")
    if len(resolutions) == 1 and tuple(meta["spatial_resolution"]) != next(iter(resolutions)):
        problems.append(f"{path.name}: spatial_resolution {meta['spatial_resolution']} differs from the files'")
    if len(meta["n_trajectories_per_file"]) != meta["n_files"] or len(meta["n_steps_per_trajectory"]) != meta["n_files"]:
        problems.append(f"{path.name}: n_trajectories_per_file and n_steps_per_trajectory need one entry per file")
    for key in ("field_names", "constant_field_names"):
        if sorted(meta[key]) != [0, 1, 2]:
            problems.append(f"{path.name}: {key} must map tensor orders 0, 1, 2 to field lists")
    return problems


def _check_stats(path: Path, metadata_path: Path) -> list[str]:
    """Every statistic of every varying field, and ``mean``, ``std``, ``rms`` of every constant one:
    The Well's z-score and RMS normalisations read all of them (a vector field: one per component)."""
    stats, meta = _load_yaml(path), _load_yaml(metadata_path) or {}
    if stats is None:
        return ["stats.yaml: missing or not a YAML mapping"]
    problems = [f"stats.yaml: '{k}' missing" for k in STATS_KEYS if k not in stats]
    for names_key, keys in (("field_names", STATS_KEYS), ("constant_field_names", ("mean", "std", "rms"))):
        for order, names in (meta.get(names_key) or {}).items():
            for name in names:
                for key in keys:
                    value = (stats.get(key) or {}).get(name)
                    ok = isinstance(value, float) if order == 0 else len(value or []) == meta["n_spatial_dims"] ** order
                    if not ok:
                        problems.append(f"stats.yaml: {key}/{name} missing, or not one value per component")
    return problems
