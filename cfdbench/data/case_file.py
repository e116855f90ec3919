"""What one case file holds, in The Well's HDF5 schema, and its HDF5 backend: the tree every
format writes (through a :class:`TreeWriter`), the HDF5 writer, and the lazy reader
:class:`CaseFile` that the zarr backend (``zarr_store.py``) extends.

The tree:

- root attributes: The Well's (``dataset_name``, ``grid_type``, ``n_spatial_dims``,
  ``n_trajectories``, ``simulation_parameters`` and one attribute per parameter) plus
  cfdbench's (``schema_version``, ``case_id``, ``subset``, ``dt``, the record's ``attrs``);
- ``dimensions``, ``boundary_conditions``, ``scalars``, ``t0_fields`` (pressure, mask),
  ``t1_fields`` (velocity), ``t2_fields`` (empty), and cfdbench's ``solver_grid``.

The Well indexes space as ``[x, y]`` (``[x, y, z]`` in 3D); :class:`CaseRecord` and every reader
here use ``(ny, nx)`` (``(nz, ny, nx)``). :func:`_reverse_space` is the only place that converts
between the two.

"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from cfdbench.data.schema import FIELD_NAMES, FIELD_NAMES_3D, SCHEMA_VERSION, UNITS, CaseRecord
from cfdbench.errors import CfdbenchError, CorruptCaseError, UnknownNameError
from cfdbench.io import atomic_path
from cfdbench.solvers.geometry import is_fluid_cell

WELL_GROUPS = ("dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields")
# Where each record field lives on disk: (dataset path, vector component or None).
FIELD_LOCATIONS = {
    "u": ("t1_fields/velocity", 0),
    "v": ("t1_fields/velocity", 1),
    "w": ("t1_fields/velocity", 2),
    "p": ("t0_fields/pressure", None),
}
REQUIRED_NODES = (
    *WELL_GROUPS,
    "dimensions/time",
    "dimensions/x",
    "dimensions/y",
    "t0_fields/mask",
    "t1_fields/velocity",
)
WELL_ROOT_ATTRS = ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories", "simulation_parameters")
REQUIRED_ROOT_ATTRS = ("schema_version", "case_id", "subset", "dt", "simulation_parameters")
RESERVED_ROOT_ATTRS = frozenset(
    {
        "dataset_name",
        "grid_type",
        "n_spatial_dims",
        "n_trajectories",
        "simulation_parameters",
        "schema_version",
        "case_id",
        "subset",
        "dt",
        "extra_attrs",
        "json_attrs",
    }
)
_CONSTANT = {"sample_varying": False, "time_varying": False}
_VARYING = {"dim_varying": [True, True], "sample_varying": True, "time_varying": True}
_READ_ERRORS = (OSError, ValueError, KeyError, RuntimeError)


# --------------------------------------------------------------------------- layout helpers


def _reverse_space(array: np.ndarray, n_dims: int, vector: bool = False) -> np.ndarray:
    """Convert between cfdbench's ``(..., [nz,] ny, nx)`` and The Well's ``(..., nx, ny[, nz])``.

    The reversal is its own inverse, so writing and reading both use it. Vector fields carry a
    trailing component axis after the spatial axes.
    """
    order = list(range(array.ndim))
    end = array.ndim - 1 if vector else array.ndim
    order[end - n_dims : end] = reversed(order[end - n_dims : end])
    return np.transpose(array, order)


# --------------------------------------------------------------------------- the tree


class TreeWriter(Protocol):
    """What :func:`write_tree` needs from a backend: groups with attributes, arrays with attributes
    and named dimensions (zarr v3 stores them, so that xarray can open the tree; HDF5's
    dimension scales would change the bytes of every published file, so its writer ignores them)."""

    def group(self, path: str, attrs: dict[str, Any]) -> None: ...

    def array(
        self, path: str, data: np.ndarray, attrs: dict[str, Any], chunks: tuple[int, ...] | None = None, dims: tuple[str, ...] = ()
    ) -> None: ...


def write_tree(writer: TreeWriter, record: CaseRecord, dataset_name: str, well_only: bool = False) -> None:
    """Write a record as The Well's tree plus cfdbench's extras (root attributes, ``solver_grid``),
    through any backend; ``well_only`` leaves the extras out (``cfdbench data export --format the-well``)."""
    attrs = root_attrs(record, dataset_name)
    writer.group("", {key: attrs[key] for key in (*WELL_ROOT_ATTRS, *record.params)} if well_only else attrs)
    _write_dimensions(writer, record)
    _write_boundary_conditions(writer, record)
    _write_scalars(writer, record)
    _write_fields(writer, record)
    if not well_only:
        _write_solver_grid(writer, record)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} as a case attribute")


def root_attrs(record: CaseRecord, dataset_name: str) -> dict[str, Any]:
    """Root attributes; non-scalar ``record.attrs`` values are JSON-encoded and listed in ``json_attrs``."""
    clash = (RESERVED_ROOT_ATTRS | set(record.params)) & set(record.attrs)
    clash |= RESERVED_ROOT_ATTRS & set(record.params)
    if clash:
        raise CfdbenchError(f"case '{record.case_id}': attribute or parameter names {sorted(clash)} are reserved")
    extras, json_names = {}, []
    for key, value in record.attrs.items():
        value = value.item() if isinstance(value, np.generic) else value
        if not isinstance(value, (bool, int, float, str)):
            value = json.dumps(value, default=_json_default)
            json_names.append(key)
        extras[key] = value
    return {
        "dataset_name": dataset_name,
        "grid_type": "cartesian",
        "n_spatial_dims": record.n_dims,
        "n_trajectories": 1,
        "simulation_parameters": list(record.params),
        **record.params,
        "schema_version": SCHEMA_VERSION,
        "case_id": record.case_id,
        "subset": record.subset,
        "dt": record.dt,
        "extra_attrs": list(record.attrs),
        "json_attrs": json_names,
        **extras,
    }


def _write_dimensions(writer: TreeWriter, record: CaseRecord) -> None:
    writer.group("dimensions", {"spatial_dims": list(record.axes)})
    for name, values in (("time", record.time), *((axis, getattr(record, axis)) for axis in record.axes)):
        writer.array(f"dimensions/{name}", values.astype(np.float32), {**_CONSTANT, "units": UNITS[name]}, dims=(name,))


def _write_boundary_conditions(writer: TreeWriter, record: CaseRecord) -> None:
    """One subgroup per axis, ``<axis>_<type>``, whose mask marks both ends of that axis."""
    writer.group("boundary_conditions", {})
    for axis, kind in record.boundary_conditions.items():
        mask = np.zeros(len(getattr(record, axis)), dtype=bool)
        mask[[0, -1]] = True
        name = f"boundary_conditions/{axis}_{kind}"
        writer.group(name, {"associated_dims": [axis], "associated_fields": [], "bc_type": kind, **_CONSTANT})
        writer.array(f"{name}/mask", mask, {}, dims=(axis,))
        writer.array(f"{name}/values", np.zeros(0, dtype=np.float32), {}, dims=("value",))


def _write_scalars(writer: TreeWriter, record: CaseRecord) -> None:
    """One 0-d float32 dataset per parameter: The Well's validator requires a constant scalar
    to have no axes (its format page writes ``float32(1)``, but the check is ``ndim == 0``)."""
    writer.group("scalars", {"field_names": list(record.params)})
    for name, value in record.params.items():
        writer.array(f"scalars/{name}", np.array(value, dtype=np.float32), _CONSTANT)


def _write_fields(writer: TreeWriter, record: CaseRecord) -> None:
    """Pressure and the constant fluid mask as t0 fields, velocity (u, v[, w]) as a t1 field; chunks of one frame."""
    n = record.n_dims
    well_shape = record.shape[::-1]
    space = tuple(record.axes)  # The Well's order: x first
    components = [record.fields[name] for name in record.field_names if name != "p"]
    velocity = _reverse_space(np.stack(components, axis=-1), n, vector=True)[None]
    mask = _reverse_space(record.fluid_fraction, n)[None]
    has_pressure = "p" in record.fields
    writer.group("t0_fields", {"field_names": ["pressure", "mask"] if has_pressure else ["mask"]})
    if has_pressure:  # CFDBench's release has no pressure: such cases store velocity only
        pressure = _reverse_space(record.fields["p"], n)[None]
        attrs = {**_VARYING, **_dims(n), "units": UNITS["p"]}
        writer.array("t0_fields/pressure", pressure, attrs, chunks=(1, 1, *well_shape), dims=("sample", "time", *space))
    mask_attrs = {**_VARYING, **_dims(n), "time_varying": False, "units": UNITS["mask"]}
    writer.array("t0_fields/mask", mask, mask_attrs, dims=("sample", *space))
    writer.group("t1_fields", {"field_names": ["velocity"]})
    chunks = (1, 1, *well_shape, len(components))
    dims = ("sample", "time", *space, "component")
    writer.array("t1_fields/velocity", velocity, {**_VARYING, **_dims(n), "units": UNITS["u"]}, chunks=chunks, dims=dims)
    writer.group("t2_fields", {"field_names": []})


def _dims(n_dims: int) -> dict[str, list[bool]]:
    return {"dim_varying": [True] * n_dims}


def _write_solver_grid(writer: TreeWriter, record: CaseRecord) -> None:
    writer.group("solver_grid", {"field_names": list(record.solver_fields)})
    for name, values in record.solver_fields.items():
        dims = tuple(f"{name}_{axis}" for axis in _solver_axes(values.ndim))  # each on its own grid
        writer.array(f"solver_grid/{name}", values, record.solver_field_attrs.get(name, {}), dims=dims)


def _solver_axes(ndim: int) -> tuple[str, ...]:
    """Axis labels of a solver-grid array: (T, y, x), (T, z, y, x), or positions for other shapes."""
    return {3: ("t", "y", "x"), 4: ("t", "z", "y", "x")}.get(ndim, tuple(f"dim{i}" for i in range(ndim)))


# --------------------------------------------------------------------------- HDF5 writing


def _h5_attr(value: Any) -> Any:
    """HDF5 stores lists of strings as variable-length strings; an empty list counts as strings."""
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return np.array(value, dtype=h5py.string_dtype())
        return np.asarray(value)
    return value


class _Hdf5Writer:
    def __init__(self, file: h5py.File, compression: str | None):
        self.file, self.compression = file, compression

    def group(self, path: str, attrs: dict[str, Any]) -> None:
        node = self.file.require_group(path) if path else self.file
        for key, value in attrs.items():
            node.attrs[key] = _h5_attr(value)

    def array(
        self, path: str, data: np.ndarray, attrs: dict[str, Any], chunks: tuple[int, ...] | None = None, dims: tuple[str, ...] = ()
    ) -> None:
        # No creation times in the file: the same case gives the same bytes, so the manifest's
        # checksums (and the dataset's content hash) are reproducible.
        options: dict[str, Any] = {"track_times": False}
        if chunks:
            options["chunks"] = chunks
        if self.compression and data.ndim and data.size:  # HDF5 cannot chunk scalars or empty arrays
            options.update(chunks=chunks or True, compression=self.compression)
        dataset = self.file.create_dataset(path, data=data, **options)
        for key, value in attrs.items():
            dataset.attrs[key] = _h5_attr(value)


def write_hdf5_case(
    final: Path, record: CaseRecord, dataset_name: str, compression: str | None, well_only: bool = False
) -> None:
    """Write to a temporary file, flush it to disk, then rename it over ``final``."""
    with atomic_path(final) as tmp, h5py.File(tmp, "w") as file:
        write_tree(_Hdf5Writer(file, compression), record, dataset_name, well_only)


def write_well_file(path: str | Path, record: CaseRecord, dataset_name: str) -> Path:
    """One case as a plain The Well HDF5 file (one trajectory, nothing of cfdbench's), atomically."""
    write_hdf5_case(Path(path), record, dataset_name, None, well_only=True)
    return Path(path)


# --------------------------------------------------------------------------- reading


def _plain(value: Any) -> Any:
    """HDF5 attributes come back as numpy values; turn them into plain Python ones."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def frame_selection(
    frames: slice | int | Sequence[int] | np.ndarray, n_frames: int
) -> tuple[slice | np.ndarray, np.ndarray | None]:
    """Turn a frame request into what the storage libraries accept.

    Returns a forward slice, or sorted unique indices plus the positions that restore the
    requested order (``None`` when the request is already sorted and unique).
    """
    if isinstance(frames, slice):
        start, stop, step = frames.indices(n_frames)
        if step < 1:
            raise CfdbenchError(f"frame slices must step forward, got step {step}")
        return slice(start, stop, step), None
    index = np.asarray(frames).reshape(-1)
    if index.size and index.dtype.kind not in "iu":
        raise CfdbenchError(f"frame indices must be integers, got {index.dtype}")
    index = index.astype(np.int64)
    index = np.where(index < 0, index + n_frames, index)
    outside = index[(index < 0) | (index >= n_frames)]
    if outside.size:
        raise CfdbenchError(f"frame {int(outside[0])} is out of range for a case with {n_frames} frames")
    unique, inverse = np.unique(index, return_inverse=True)
    return unique, None if np.array_equal(unique, index) else inverse


def consecutive_runs(index: np.ndarray) -> list[slice]:
    """Sorted unique indices as the fewest forward slices: HDF5 reads a slice as one hyperslab,
    while an index list is a point selection about 30x slower per frame."""
    if index.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [index.size]])
    return [slice(int(index[a]), int(index[b - 1]) + 1) for a, b in zip(starts, stops)]


@dataclass(frozen=True)
class RawFrames:
    """Where each frame of one stored array lies in its file, for readers that bypass HDF5.

    Holds only when every frame is one uncompressed, unfiltered little-endian float32 chunk (the
    store's default layout): frame ``t`` is then ``nbytes`` bytes at ``offsets[t]``, an array of
    ``shape`` in The Well's axis order (x first, vector components last).
    """

    offsets: np.ndarray  # (n_frames,) int64
    shape: tuple[int, ...]
    nbytes: int


class CaseFile:
    """Lazy reader of one stored case (HDF5); use as a context manager or call :meth:`close`.

    Opening reads only metadata and checks the layout; frames are read on demand by
    :meth:`read`, which touches only the requested frames (one chunk per frame and field).
    """

    field_names: tuple[str, ...] = FIELD_NAMES
    n_dims: int = 2

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise CfdbenchError(f"{self.path}: no such case file")
        self._root: Any = self._open_root()
        try:
            self._check_layout()
            self._load_metadata()
        except _READ_ERRORS + (TypeError, IndexError) as err:
            self.close()
            raise self._corrupt(f"{type(err).__name__}: {err}") from None
        except BaseException:  # CfdbenchError (a newer schema, say) and interrupts pass through
            self.close()
            raise

    # ------------------------------------------------------------------ backend hooks
    def _open_root(self) -> Any:
        try:
            return h5py.File(self.path, "r")
        except OSError as err:
            raise self._corrupt(str(err)) from None

    def _select(self, array: Any, selection: tuple) -> np.ndarray:
        """Read ``array[selection]``; a sorted index array of frames is read as slices of consecutive frames."""
        frames = selection[1] if len(selection) > 1 else None
        if not isinstance(frames, np.ndarray):
            return array[selection]
        head, tail = selection[:1], selection[2:]
        runs = [array[(*head, run, *tail)] for run in consecutive_runs(frames)]
        return runs[0] if len(runs) == 1 else np.concatenate(runs, axis=0)

    def raw_frames(self, name: str) -> RawFrames | None:
        """The byte layout of a per-frame array (``t1_fields/velocity``, ``t0_fields/pressure``) when
        each frame is one raw float32 chunk, else ``None`` (compressed, other chunking or dtype)."""
        array = self._root[name]
        frame_chunk = (1, 1, *array.shape[2:])
        if array.chunks != frame_chunk or array.dtype != np.dtype("<f4"):
            return None
        if array.id.get_create_plist().get_nfilters() or array.id.get_num_chunks() != self.n_frames:
            return None
        offsets = np.empty(self.n_frames, dtype=np.int64)
        for i in range(self.n_frames):
            info = array.id.get_chunk_info(i)
            if info.size != 4 * int(np.prod(frame_chunk)) or info.filter_mask:
                return None
            offsets[info.chunk_offset[1]] = info.byte_offset
        return RawFrames(offsets, tuple(int(n) for n in array.shape[2:]), 4 * int(np.prod(frame_chunk)))

    def close(self) -> None:
        if self._root is not None:
            self._root.close()
            self._root = None

    # ------------------------------------------------------------------ opening
    def _corrupt(self, reason: str) -> CorruptCaseError:
        return CorruptCaseError(f"{self.path}: corrupt or incomplete case file ({reason})")

    def _check_layout(self) -> None:
        missing = [name for name in REQUIRED_NODES if name not in self._root]
        missing += [f"@{name}" for name in REQUIRED_ROOT_ATTRS if name not in self._root.attrs]
        if missing:
            raise self._corrupt(f"missing {', '.join(missing)}")

    def _load_metadata(self) -> None:
        attrs = {key: _plain(value) for key, value in self._root.attrs.items()}
        self.schema_version = str(attrs["schema_version"])
        if self.schema_version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise CfdbenchError(f"{self.path}: written with schema {self.schema_version}; this cfdbench reads {SCHEMA_VERSION}")
        self.case_id, self.subset = str(attrs["case_id"]), str(attrs["subset"])
        self.dataset_name = str(attrs.get("dataset_name", ""))
        self.dt = float(attrs["dt"])
        self.params = {str(name): float(attrs[name]) for name in attrs["simulation_parameters"]}
        json_names = set(attrs.get("json_attrs", []))
        self.attrs = {k: json.loads(attrs[k]) if k in json_names else attrs[k] for k in attrs.get("extra_attrs", [])}
        self.n_frames = int(self._root["dimensions/time"].shape[0])
        axes = ("z", "y", "x") if "dimensions/z" in self._root else ("y", "x")
        self.shape = tuple(int(self._root[f"dimensions/{axis}"].shape[0]) for axis in axes)
        self.n_dims = len(axes)
        self.boundary_conditions = self._read_boundary_conditions()
        names = FIELD_NAMES if self.n_dims == 2 else FIELD_NAMES_3D
        self.field_names = names if "pressure" in self._root["t0_fields"] else names[:-1]
        self._check_shapes()

    def _read_boundary_conditions(self) -> dict[str, str]:
        found = {}
        group = self._root["boundary_conditions"]
        for name in group.keys():
            attrs = group[name].attrs
            found[str(_plain(attrs["associated_dims"])[0])] = str(_plain(attrs["bc_type"])).lower()
        return dict(sorted(found.items()))

    def _check_shapes(self) -> None:
        well_shape = self.shape[::-1]
        expected = {
            "t1_fields/velocity": (1, self.n_frames, *well_shape, self.n_dims),
            "t0_fields/pressure": (1, self.n_frames, *well_shape),
            "t0_fields/mask": (1, *well_shape),
        }
        if "pressure" not in self._root["t0_fields"]:
            del expected["t0_fields/pressure"]
        for name, shape in expected.items():
            actual = tuple(self._root[name].shape)
            if actual != shape:
                raise self._corrupt(f"{name} has shape {actual}, expected {shape}")

    # ------------------------------------------------------------------ lazy arrays
    def _get(self, name: str, selection: tuple = (Ellipsis,)) -> np.ndarray:
        """Read part of a stored array; storage errors become :class:`CorruptCaseError`."""
        if self._root is None:
            raise CfdbenchError(f"{self.path}: case file is closed")
        try:
            return np.asarray(self._select(self._root[name], selection))
        except _READ_ERRORS as err:
            raise self._corrupt(f"reading {name}: {err}") from None

    @cached_property
    def x(self) -> np.ndarray:
        """Cell-centre x coordinates [m], (nx,)."""
        return self._get("dimensions/x").astype(np.float64)

    @cached_property
    def y(self) -> np.ndarray:
        """Cell-centre y coordinates [m], (ny,)."""
        return self._get("dimensions/y").astype(np.float64)

    @cached_property
    def z(self) -> np.ndarray:
        """Cell-centre z coordinates [m], (nz,), of a 3D case."""
        if self.n_dims != 3:
            raise CfdbenchError(f"{self.path}: a 2D case has no z axis")
        return self._get("dimensions/z").astype(np.float64)

    @cached_property
    def fluid_fraction(self) -> np.ndarray:
        """Share of each cell (ny, nx) or (nz, ny, nx) outside every body, float32 in [0, 1]: the stored
        mask (0 or 1 in datasets made before fractions were stored)."""
        return np.ascontiguousarray(_reverse_space(self._get("t0_fields/mask", (0, Ellipsis)).astype(np.float32), self.n_dims))

    @cached_property
    def mask(self) -> np.ndarray:
        """Fluid cells (ny, nx) or (nz, ny, nx), True = fluid: those at least half fluid."""
        return is_fluid_cell(self.fluid_fraction)

    @property
    def time(self) -> np.ndarray:
        """Physical time of each frame [s]."""
        return np.arange(self.n_frames) * self.dt

    def _field_list(self, fields: Sequence[str]) -> list[str]:
        names = [fields] if isinstance(fields, str) else list(fields)
        if not names:
            raise CfdbenchError("read() needs at least one field name")
        for name in names:
            if name not in self.field_names:
                raise UnknownNameError("field", str(name), list(self.field_names))
        return names

    def read(self, fields: Sequence[str], frames: slice | Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames of the given fields as float32 ``(len(frames), len(fields), *shape)``.

        Only the requested frames are read. Index lists may be unsorted, negative or
        repeated: they are read sorted and unique, then put back in the requested order.
        """
        names = self._field_list(fields)
        index, order = frame_selection(frames, self.n_frames)
        count = len(range(self.n_frames)[index]) if isinstance(index, slice) else len(index)
        out = np.empty((count, len(names), *self.shape), dtype=np.float32)
        if count == 0:
            return out if order is None else out[order]
        sources = {FIELD_LOCATIONS[name][0] for name in names}
        stored = {source: self._get(source, (0, index)) for source in sorted(sources)}
        for channel, name in enumerate(names):
            source, component = FIELD_LOCATIONS[name]
            values = stored[source] if component is None else stored[source][..., component]
            out[:, channel] = _reverse_space(values, self.n_dims)
        return out if order is None else out[order]

    # ------------------------------------------------------------------ whole case
    def _solver_fields(self) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if "solver_grid" not in self._root:
            return {}, {}
        group = self._root["solver_grid"]
        arrays, attrs = {}, {}
        for name in group.keys():
            arrays[name] = self._get(f"solver_grid/{name}")
            described = {key: _plain(value) for key, value in group[name].attrs.items()}
            if described:
                attrs[name] = described
        return arrays, attrs

    def solver_field(self, name: str) -> np.ndarray:
        """One array stored beside the frames (native-grid fields, the body-force history)."""
        if "solver_grid" not in self._root or name not in self._root["solver_grid"]:
            available = list(self._root["solver_grid"].keys()) if "solver_grid" in self._root else []
            raise UnknownNameError("solver field", name, available)
        return self._get(f"solver_grid/{name}")

    def to_record(self, include_solver_fields: bool = True) -> CaseRecord:
        """The whole case in memory (solver-grid arrays only when asked)."""
        frames = self.read(self.field_names, slice(None))
        solver_fields, solver_attrs = self._solver_fields() if include_solver_fields else ({}, {})
        return CaseRecord(
            case_id=self.case_id,
            subset=self.subset,
            params=dict(self.params),
            dt=self.dt,
            x=self.x.copy(),
            y=self.y.copy(),
            z=self.z.copy() if self.n_dims == 3 else None,
            fields={name: np.ascontiguousarray(frames[:, i]) for i, name in enumerate(self.field_names)},
            mask=self.fluid_fraction.copy(),
            boundary_conditions=dict(self.boundary_conditions),
            attrs=dict(self.attrs),
            solver_fields=solver_fields,
            solver_field_attrs=solver_attrs,
        )

    # ------------------------------------------------------------------ protocol
    def __enter__(self) -> "CaseFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, frames={self.n_frames}, shape={self.shape})"
