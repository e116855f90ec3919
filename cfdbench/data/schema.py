"""One simulated case in memory (:class:`CaseRecord`) and the version of its on-disk schema.

A record is what a generator hands to the store and what the store gives back: the stored
frames on a uniform cell-centred grid, the fluid mask, the physical parameters and the time
step. Arrays follow the image convention ``(T, ny, nx)``: row = y, column = x, row 0 at the
bottom; a 3D record (one with a ``z`` axis, the channel flows) is ``(T, nz, ny, nx)`` and has a
third velocity component ``w``. The store converts to The Well's ``[x, y(, z)]`` order itself
(see ``case_file.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cfdbench.errors import CfdbenchError
from cfdbench.solvers.geometry import is_fluid_cell

SCHEMA_VERSION = "1.0"

FIELD_NAMES = ("u", "v", "p")
FIELD_NAMES_3D = ("u", "v", "w", "p")
# SI units of the stored arrays (written as ``units`` attributes, shown by the xarray view).
UNITS = {"u": "m/s", "v": "m/s", "w": "m/s", "p": "Pa", "time": "s", "x": "m", "y": "m", "z": "m", "mask": "1"}
BC_TYPES = ("wall", "open", "periodic")
AXES = ("x", "y")
AXES_3D = ("x", "y", "z")
# Case ids become file names: no separators, no leading dot (dot files are temporaries).
_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class CaseRecord:
    """One case: frames ``fields[name]`` of shape (T, ny, nx), float32, on cell centres ``x``, ``y``
    (or (T, nz, ny, nx) with a ``z`` axis, and then a ``w`` velocity).

    ``mask`` is given as booleans (True = fluid) or as each cell's fluid fraction in [0, 1], the share
    of it outside every body; it is kept as both: ``fluid_fraction`` (float32, what is stored, so that
    a barrier or disc edge inside a cell stays visible) and ``mask`` (bool: the fluid cells, those at
    least half fluid, the cells that are predicted and scored).

    ``params`` keeps the card's parameter order; ``attrs`` holds extra scalar or string facts
    (Reynolds number, solver settings); ``solver_fields`` holds native solver-grid arrays of
    any shape, described by the optional ``solver_field_attrs[name]``.
    """

    case_id: str
    subset: str
    params: dict[str, float]
    dt: float
    x: np.ndarray
    y: np.ndarray
    fields: dict[str, np.ndarray]
    mask: np.ndarray
    boundary_conditions: dict[str, str]
    attrs: dict[str, Any] = field(default_factory=dict)
    solver_fields: dict[str, np.ndarray] = field(default_factory=dict)
    solver_field_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    z: np.ndarray | None = None
    fluid_fraction: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._check_identity()
        self._check_params()
        self.dt = float(self.dt)
        if not np.isfinite(self.dt) or self.dt <= 0:
            raise self._error(f"dt must be finite and positive, got {self.dt}")
        self.x = self._axis(self.x, "x")
        self.y = self._axis(self.y, "y")
        if self.z is not None:
            self.z = self._axis(self.z, "z")
        self._check_fields()
        self._check_mask()
        self._check_boundary_conditions()
        self._check_solver_fields()

    # ------------------------------------------------------------------ derived
    @property
    def n_frames(self) -> int:
        return int(self.fields["u"].shape[0])

    @property
    def n_dims(self) -> int:
        return 2 if self.z is None else 3

    @property
    def axes(self) -> tuple[str, ...]:
        return AXES if self.z is None else AXES_3D

    @property
    def field_names(self) -> tuple[str, ...]:
        """The fields a record of this dimension may hold, in storage order."""
        return FIELD_NAMES if self.z is None else FIELD_NAMES_3D

    @property
    def shape(self) -> tuple[int, ...]:
        """(ny, nx) of one frame, or (nz, ny, nx)."""
        return (len(self.y), len(self.x)) if self.z is None else (len(self.z), len(self.y), len(self.x))

    @property
    def time(self) -> np.ndarray:
        """Physical time of each frame in seconds, starting at 0."""
        return np.arange(self.n_frames) * self.dt

    # ------------------------------------------------------------------ validation
    def _error(self, message: str) -> CfdbenchError:
        return CfdbenchError(f"case '{self.case_id}': {message}")

    def _check_identity(self) -> None:
        if not isinstance(self.case_id, str) or not _CASE_ID.fullmatch(self.case_id):
            raise CfdbenchError(f"invalid case id {self.case_id!r}: use letters, digits, '_', '-' and '.'")
        if not isinstance(self.subset, str) or not self.subset:
            raise self._error(f"subset must be a non-empty string, got {self.subset!r}")

    def _check_params(self) -> None:
        """Parameter names become attribute and dataset names: non-empty, no '/'."""
        for name in self.params:
            if not isinstance(name, str) or not name or "/" in name:
                raise self._error(f"invalid parameter name {name!r}")
        self.params = {name: float(value) for name, value in self.params.items()}

    def _axis(self, values: np.ndarray, name: str) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
            raise self._error(f"{name} must be a non-empty finite 1-D array, got shape {array.shape}")
        return array

    def _check_fields(self) -> None:
        velocity = set(self.field_names) - {"p"}
        if not velocity <= set(self.fields) <= set(self.field_names):
            names = ", ".join(sorted(velocity))
            raise self._error(f"fields must be {names} and optionally p (CFDBench's release has none), got {sorted(self.fields)}")
        self.fields = {name: np.asarray(self.fields[name], dtype=np.float32) for name in self.field_names if name in self.fields}
        layout = "(T, ny, nx)" if self.z is None else "(T, nz, ny, nx)"
        for name, frames in self.fields.items():
            expected = (self.fields["u"].shape[0], *self.shape)
            if frames.ndim != 1 + self.n_dims or frames.shape != expected or frames.shape[0] < 1:
                raise self._error(f"field '{name}' has shape {frames.shape}, expected {layout} = {expected}")
            if not np.all(np.isfinite(frames)):
                raise self._error(f"field '{name}' contains NaN or Inf")

    def _check_mask(self) -> None:
        mask = np.asarray(self.mask)
        if mask.shape != self.shape:
            raise self._error(f"mask has shape {mask.shape}, expected {self.shape}")
        fraction = mask.astype(np.float32)
        if not np.all((fraction >= 0) & (fraction <= 1)):
            raise self._error("mask must be booleans or fluid fractions in [0, 1]")
        self.fluid_fraction = fraction
        self.mask = is_fluid_cell(fraction)

    def _check_boundary_conditions(self) -> None:
        for axis, kind in self.boundary_conditions.items():
            if axis not in self.axes or kind not in BC_TYPES:
                raise self._error(f"boundary condition {axis}={kind!r} invalid: axes {list(self.axes)}, types {list(BC_TYPES)}")

    def _check_solver_fields(self) -> None:
        self.solver_fields = {str(k): np.asarray(v) for k, v in self.solver_fields.items()}
        unknown = set(self.solver_field_attrs) - set(self.solver_fields)
        if unknown:
            raise self._error(f"solver_field_attrs describe unknown solver fields {sorted(unknown)}")
