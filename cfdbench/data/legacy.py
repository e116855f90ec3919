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

from cfdbench.data.cfdbench_release import SUBSET_ORDER, RawCase, cfdbench_split, split_counts, split_rounding

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


# --------------------------------------------------------------------------- CFDBench's autoregressive samples

# What CFDBench's autoregressive loaders (get_auto_dataset, ``src/dataset/<problem>.py``) assume and
# do (reference sections 5 and 6): a hard-coded interval between stored frames (the tube's 0.1 s is
# wrong, its data are 0.01 s apart), pairs (frame i, frame i + s) with s = int(delta_time / interval),
# and, except for the dam, no pair from the first i on where the mean change of the velocity
# magnitude |u| over the padded frame falls below 0.001.
CFDBENCH_FRAME_INTERVAL = {"cavity": 0.1, "tube": 0.1, "dam": 0.1, "cylinder": 0.001}
CFDBENCH_DELTA_TIME = 0.1  # train_auto.py's default --delta_time
STEADY_STATE_DIFF = 0.001
NO_STEADY_STATE_CUT = ("dam",)


def legacy_shape(problem: str, shape: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the frames CFDBench's loaders build from (ny, nx) frames: 66 x 65 from 64 x 64 for
    the padded problems, unchanged for the cavity."""
    ny, nx = shape
    return (ny + 2, nx + 1) if problem in PADDED else (ny, nx)


def cfdbench_stride(problem: str, delta_time: float = CFDBENCH_DELTA_TIME) -> int:
    """Frames between CFDBench's input and label at ``--delta_time``."""
    return int(delta_time / CFDBENCH_FRAME_INTERVAL[problem])


def autoregressive_pairs(problem: str, u: np.ndarray, v: np.ndarray, delta_time: float = CFDBENCH_DELTA_TIME) -> int:
    """How many (input, label) samples CFDBench's autoregressive loader takes from one case's
    frames (T, ny, nx). The padding is constant in time, so it adds nothing to the steady-state
    test but its cells to the mean's count."""
    stride = cfdbench_stride(problem, delta_time)
    pairs = max(len(u) - stride, 0) if stride > 0 else 0  # features[:-0] is empty: a stride of 0 takes nothing
    if problem in NO_STEADY_STATE_CUT or pairs == 0:
        return pairs
    cells = int(np.prod(legacy_shape(problem, u.shape[1:])))
    magnitude = np.sqrt(np.asarray(u, dtype=np.float32) ** 2 + np.asarray(v, dtype=np.float32) ** 2)
    change = np.abs(magnitude[:pairs] - magnitude[stride : stride + pairs]).sum(axis=(1, 2)) / cells
    steady = np.flatnonzero(change < STEADY_STATE_DIFF)
    return int(steady[0]) if steady.size else pairs


def smallest_complete_split(rounding: str) -> int:
    """The fewest cases for which CFDBench's 80/10/10 cut leaves no split empty (10 with int, 8 with round)."""
    n = 1
    while min(split_counts(n, rounding)) < 1:
        n += 1
    return n


def autoregressive_split_warning(problem: str, cases: dict[str, tuple[int, int]]) -> str | None:
    """One line when CFDBench's autoregressive loaders (get_auto_dataset) cannot train on these
    cases (case id ``<subset>-<n>`` -> (frames, samples at the default --delta_time)): its own split
    leaves a split without cases, or a split's cases give no sample. None when all three have samples."""
    order = sorted(cases, key=lambda c: (SUBSET_ORDER.index(c.split("-")[0]), int(c.split("-")[1])))  # its discovery order
    rounding = split_rounding(problem)
    split = cfdbench_split(order, rounding)
    reasons = []
    if empty := [name for name, ids in split.items() if not ids]:
        counts, need = "/".join(str(len(ids)) for ids in split.values()), smallest_complete_split(rounding)
        reasons.append(
            f"its own split of the {len(order)} cases ({rounding}(0.8 N), {rounding}(0.1 N): {counts} train/valid/test) "
            f"leaves {' and '.join(empty)} empty: export at least {need} cases (it ignores splits.json)"
        )
    stride, interval = cfdbench_stride(problem), CFDBENCH_FRAME_INTERVAL[problem]
    if all(frames <= stride for frames, _ in cases.values()):
        reasons.append(
            f"it pairs frames {stride} apart (int({CFDBENCH_DELTA_TIME} / {interval}) at its default --delta_time), more than "
            f"these cases hold: pass --delta_time {interval} to pair consecutive frames"
        )
    elif starved := [name for name, ids in split.items() if ids and not sum(cases[c][1] for c in ids)]:
        reasons.append(
            f"its {' and '.join(starved)} cases give no sample (it stops at the first pair whose mean change of |u| is under "
            f"{STEADY_STATE_DIFF}): export cases that start further from their steady state"
        )
    if not reasons:
        return None
    return f"CFDBench's get_auto_dataset would stop with 'stack expects a non-empty TensorList' on this {problem} export: " + (
        "; and ".join(reasons)
    )
