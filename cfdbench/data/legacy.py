"""CFDBench's original loader transformations, for like-for-like comparison with its paper.

``cfdbench data convert --legacy`` stores frames the way CFDBench's autoregressive loaders fed them
to its models (``../shared/reference/cfdbench-format.md`` section 6), defects included:

- tube, dam and cylinder frames get a ghost inlet column on the left (u = the raw inlet velocity,
  v = 0; for the dam only on the rows below the barrier top) and a row of zeros above and below,
  so 64 x 64 frames become 66 x 65; the padded cells are masked out and nothing else is (CFDBench's
  masks missed the dam barrier and the cylinder disc);
- the cavity is not padded and its mask is all ones;
- the parameter vector has CFDBench's keys and order (the dam drops its barrier, the cylinder
  replaces its box bounds by centre and size, appended after its remaining keys).

CFDBench also rescaled some parameters (density, viscosity, velocity) by fixed affine maps; those
are not applied, because every cfdbench model standardises its parameters itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfdbench.data.cfdbench_release import RawCase

PADDED = ("tube", "dam", "cylinder")
INLET_VELOCITY = {"tube": "vel_in", "dam": "velocity", "cylinder": "vel_in"}
# Keys CFDBench's autoregressive collate leaves out of the cylinder's parameter vector.
CYLINDER_DROPPED = ("x_min", "x_max", "y_min", "y_max", "rotated", "dx", "dy")
FIXED_ORDER = {
    "cavity": ("vel_top", "density", "viscosity", "height", "width"),
    "tube": ("vel_in", "density", "viscosity", "height", "width"),
    "dam": ("velocity", "density", "viscosity", "height", "width"),
}


@dataclass(frozen=True)
class LegacyFrames:
    """A case as CFDBench's loader saw it: fields (T, ny, nx), mask, cell-centre axes, parameters."""

    fields: dict[str, np.ndarray]
    mask: np.ndarray
    x: np.ndarray
    y: np.ndarray
    params: dict[str, float]


def legacy_params(case: RawCase) -> dict[str, float]:
    """CFDBench's autoregressive parameter vector, in its order, from the case's (corrected) parameters."""
    p = case.params
    if case.problem in FIXED_ORDER:
        return {key: p[key] for key in FIXED_ORDER[case.problem]}
    kept = {key: float(value) for key, value in case.json.items() if key not in CYLINDER_DROPPED}
    kept.pop("case_no", None)
    return {
        **kept,
        "center_x": p["x_min"],  # the box's signed x_min is -center_x
        "center_y": p["y_min"],
        "height": p["y_min"] + p["y_max"],
        "width": p["x_min"] + p["x_max"],
    }


def _inlet_rows(case: RawCase, ny: int) -> slice:
    """Rows of the ghost column holding the inlet velocity: all of them, or for the dam those below
    ``int(barrier_height / dy)`` with ``dy = height / ny`` (CFDBench's index)."""
    if case.problem != "dam":
        return slice(None)
    dy = float(case.json.get("dy", case.params["height"] / ny))
    return slice(None, int(case.params["barrier_height"] / dy))


def _extend_axis(axis: np.ndarray, before: int, after: int) -> np.ndarray:
    step = axis[1] - axis[0]
    return np.concatenate([axis[0] - step * np.arange(before, 0, -1), axis, axis[-1] + step * np.arange(1, after + 1)])


def legacy_frames(case: RawCase, fields: dict[str, np.ndarray]) -> LegacyFrames:
    """Pad the case's fields (T, ny, nx) the way CFDBench did; the mask marks CFDBench's interior."""
    x, y = case.coordinates()
    t, ny, nx = fields["u"].shape
    mask = np.ones((ny, nx), dtype=bool)
    if case.problem not in PADDED:
        return LegacyFrames(dict(fields), mask, x, y, legacy_params(case))
    padded = {}
    for name, values in fields.items():
        out = np.zeros((t, ny + 2, nx + 1), dtype=values.dtype)
        out[:, 1:-1, 1:] = values
        if name == "u":
            out[:, 1:-1, 0][:, _inlet_rows(case, ny)] = case.params[INLET_VELOCITY[case.problem]]
        padded[name] = out
    legacy_mask = np.zeros((ny + 2, nx + 1), dtype=bool)
    legacy_mask[1:-1, 1:] = mask
    return LegacyFrames(padded, legacy_mask, _extend_axis(x, 1, 0), _extend_axis(y, 1, 1), legacy_params(case))
