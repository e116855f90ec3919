"""Write a cfdbench dataset (generated or converted) in another suite's layout.

- ``cfdbench-raw``: CFDBench's release layout, ``<problem>/<subset>/caseNNNN/{u.npy, v.npy,
  case.json}`` (frames (T, ny, nx), row 0 at the bottom, CFDBench's ``case.json`` keys and sign
  conventions), so CFDBench's own code trains on cfdbench's data. Beside them, files CFDBench
  ignores keep what its layout cannot hold: ``p.npy`` (pressure), ``cfdbench.json`` (the frame
  interval, which CFDBench fixes per problem) and ``<problem>/splits.json`` (the dataset's
  published split). ``cfdbench data convert --splits`` reads them back, so export then convert
  reproduces the dataset exactly. CFDBench splits the cases itself (80/10/10 of a seeded
  shuffle): when that leaves a split without samples, its loader stops, and the report carries a
  one-line warning saying why and what to change.
- ``the-well``: The Well's layout, ``datasets/<name>/{<name>.yaml, stats.yaml, README.md,
  data/{train,valid,test}/<case>.hdf5}``, one trajectory per file (cases differ in length and
  parameters), nothing of cfdbench's in the files, statistics over every cell of the training
  split (The Well's convention; cfdbench's own use the fluid cells only).

Each case is written atomically and existing ones are kept, so an interrupted export resumes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from cfdbench.cards import DatasetCard, load_dataset_card
from cfdbench.data.case_file import write_well_file
from cfdbench.data.cfdbench_release import EXTRAS_FILE, PRESSURE_FILE, SIGNED_LOWER_BOUNDS, SUBSET_ORDER
from cfdbench.data.dataset_dir import SPLIT_NAMES, compute_stats
from cfdbench.data.legacy import autoregressive_pairs, autoregressive_split_warning
from cfdbench.data.resolve import open_dataset
from cfdbench.data.schema import CaseRecord
from cfdbench.data.view import StoredDataset
from cfdbench.data.well_format import check_well_file
from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.io import atomic_path, write_json_atomic, write_text_atomic

EXPORT_FORMATS = ("cfdbench-raw", "the-well")
RAW_CASE_ID = re.compile(rf"^({'|'.join(SUBSET_ORDER)})-(\d+)$")
WELL_FIELDS = {"velocity": ("u", "v"), "pressure": ("p",)}  # The Well's field -> cfdbench components


@dataclass
class ExportReport:
    out: Path
    written: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # one line each: what the target suite cannot do with the export


def export_dataset(dataset: str | Path, out: str | Path, fmt: str) -> ExportReport:
    """Export a sealed dataset (name or folder) to ``out`` in ``fmt`` (``cfdbench-raw`` or ``the-well``)."""
    if fmt not in EXPORT_FORMATS:
        raise UnknownNameError("export format", fmt, list(EXPORT_FORMATS))
    ds = open_dataset(dataset)
    if not ds.sealed:
        raise CfdbenchError(f"{ds.path}: not a finished dataset (no manifest or splits); finish `cfdbench data generate` first")
    meta = ds.metadata
    if meta.legacy:
        raise CfdbenchError(f"{ds.path}: a --legacy conversion holds CFDBench's padded frames; export the plain conversion")
    out = Path(out)
    return export_raw(ds, out, meta.problem) if fmt == "cfdbench-raw" else export_well(ds, out, meta.problem)


# --------------------------------------------------------------------------- CFDBench's raw layout


def _raw_folder(case_id: str) -> str:
    """``bc-0003`` -> ``bc/case0003``: CFDBench's case folders carry the subset and a number."""
    match = RAW_CASE_ID.match(case_id)
    if match is None:
        raise CfdbenchError(f"case '{case_id}' cannot be a CFDBench case folder (expected <prop|bc|geo>-<number>)")
    return f"{match.group(1)}/case{int(match.group(2)):04d}"


def raw_case_json(problem: str, record: CaseRecord) -> dict[str, float]:
    """CFDBench's ``case.json``: the parameters under its keys and signs (the cylinder's box as signed
    coordinates around the disc; the dam's cell sizes, which its loader reads)."""
    params = dict(record.params)
    for key in SIGNED_LOWER_BOUNDS.get(problem, ()):
        params[key] = -params[key]
    if problem == "dam":
        ny, nx = record.shape
        params |= {"dx": params["width"] / nx, "dy": params["height"] / ny}
    return params


def export_raw(ds: StoredDataset, out: Path, problem: str) -> ExportReport:
    """CFDBench's case folders, the side files, and a warning when CFDBench's own loader could not
    train on them (its split of these cases leaves a split without samples)."""
    folders = {case_id: _raw_folder(case_id) for case_id in ds.case_ids}
    report = ExportReport(out / problem)
    samples = {}  # case id -> (frames, CFDBench's autoregressive samples)
    for case_id, relative in folders.items():
        final = out / problem / relative
        if final.is_dir():
            u, v = (np.load(final / f"{name}.npy", mmap_mode="r") for name in ("u", "v"))
            samples[case_id] = (len(u), autoregressive_pairs(problem, u, v))
            report.reused.append(case_id)
            continue
        with ds.open_case(case_id) as case:
            record = case.to_record(include_solver_fields=False)
        samples[case_id] = (len(record.fields["u"]), autoregressive_pairs(problem, record.fields["u"], record.fields["v"]))
        with atomic_path(final) as tmp:
            tmp.mkdir()
            np.save(tmp / "u.npy", record.fields["u"])
            np.save(tmp / "v.npy", record.fields["v"])
            if "p" in record.fields:
                np.save(tmp / PRESSURE_FILE, record.fields["p"])
            (tmp / "case.json").write_text(json.dumps(raw_case_json(problem, record)))
            (tmp / EXTRAS_FILE).write_text(json.dumps({"dt": record.dt, "case_id": case_id, "dataset": ds.name}))
        report.written.append(case_id)
    splits = {name: [folders[c] for c in ds.split(name)] for name in SPLIT_NAMES}
    write_json_atomic(out / problem / "splits.json", {"dataset": ds.name, **splits})
    if warning := autoregressive_split_warning(problem, samples):
        report.warnings.append(warning)
    return report


# --------------------------------------------------------------------------- The Well's layout


def export_well(ds: StoredDataset, out: Path, problem: str) -> ExportReport:
    root = out / "datasets" / ds.name
    report = ExportReport(root)
    layouts = [_layout(ds, c) for c in ds.case_ids]  # one look at each case: grid size and stored fields
    resolutions = {shape for shape, _ in layouts}
    if len(resolutions) != 1:
        raise CfdbenchError(f"{ds.path}: cases differ in grid size {sorted(resolutions)}; The Well needs one resolution")
    for split in SPLIT_NAMES:
        for case_id in ds.split(split):
            final = root / "data" / split / f"{case_id}.hdf5"
            if final.is_file() and not check_well_file(final):  # an older export's file is rewritten
                report.reused.append(case_id)
                continue
            with ds.open_case(case_id) as case:
                write_conforming_well_file(final, case.to_record(include_solver_fields=False), ds.name)
            report.written.append(case_id)
    fields = ("u", "v", "p") if all("p" in stored for _, stored in layouts) else ("u", "v")
    write_text_atomic(root / "stats.yaml", yaml.safe_dump(well_stats(ds, fields), sort_keys=False))
    write_text_atomic(root / f"{ds.name}.yaml", yaml.safe_dump(well_metadata(root, ds, fields), sort_keys=False))
    write_text_atomic(root / "README.md", well_readme(ds, _card_for(ds, problem), fields))
    return report


def write_conforming_well_file(final: Path, record: CaseRecord, dataset_name: str) -> None:
    """One case as The Well's checkers want it, atomically: cfdbench's Well tree, with
    ``dimensions/time`` flagged ``time_varying`` (The Well's format checker derives its expected
    shape (T,) from that flag) and ``bc_type`` upper-case (its data checker flags lower case; its
    reader upper-cases anyway). cfdbench's own case files keep the older flags: changing them would
    change the bytes, hence the published hashes, of every stored dataset."""
    import h5py

    with atomic_path(final) as tmp:
        write_well_file(tmp, record, dataset_name)
        with h5py.File(tmp, "r+") as f:
            f["dimensions/time"].attrs["time_varying"] = True
            for condition in f["boundary_conditions"].values():
                condition.attrs["bc_type"] = str(condition.attrs["bc_type"]).upper()


def _layout(ds: StoredDataset, case_id: str) -> tuple[tuple[int, int], tuple[str, ...]]:
    """(ny, nx) and the stored fields of one case."""
    with ds.open_case(case_id) as case:
        return tuple(case.mask.shape), tuple(case.field_names)


def well_stats(ds: StoredDataset, fields: tuple[str, ...]) -> dict[str, dict]:
    """The Well's ``stats.yaml``: statistic -> field -> value (a list per component for vectors),
    over every cell of the training split, population moments in float64; the constant mask gets
    ``mean``, ``std`` and ``rms`` too, which The Well's normalisations read for constant fields."""
    per_component = compute_stats(ds.path, ds.split("train"), fields, fluid_only=False)
    stats: dict[str, dict] = {}
    for key in ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta"):
        stats[key] = {}
        for name, components in WELL_FIELDS.items():
            if set(components) <= set(fields):
                values = [float(per_component[c][key]) for c in components]
                stats[key][name] = values if len(values) > 1 else values[0]
    for key, value in _mask_stats(ds).items():
        stats[key]["mask"] = value
    return stats


def _mask_stats(ds: StoredDataset) -> dict[str, float]:
    """Mean, std and rms of the stored mask (each cell's fluid fraction, 0 or 1 away from body edges)
    over the training cases' cells, in float64."""
    total = squares = cells = 0.0
    for case_id in ds.split("train"):
        with ds.open_case(case_id) as case:
            fraction = case.fluid_fraction.astype(np.float64)
            total, squares, cells = total + fraction.sum(), squares + (fraction**2).sum(), cells + fraction.size
    mean, mean_square = float(total / cells), float(squares / cells)
    return {"mean": mean, "std": math.sqrt(max(mean_square - mean**2, 0.0)), "rms": math.sqrt(mean_square)}


def well_metadata(root: Path, ds: StoredDataset, fields: tuple[str, ...]) -> dict:
    """The serialised ``WellMetadata``; file counts describe the validation split, as The Well's
    ``generate_metadata.py`` does."""
    import h5py

    files = sorted((root / "data" / "valid").glob("*.hdf5")) or sorted((root / "data" / "train").glob("*.hdf5"))
    steps, bc_types = [], set()
    for path in files:
        with h5py.File(path, "r") as f:
            steps.append(int(f["dimensions/time"].shape[0]))
            bc_types |= {str(bc.attrs["bc_type"]).upper() for bc in f["boundary_conditions"].values()}
            params = [str(p) for p in f.attrs["simulation_parameters"]]
            resolution = [f["dimensions"][axis].shape[0] for axis in ("x", "y")]
    return {
        "dataset_name": ds.name,
        "n_spatial_dims": 2,
        "spatial_resolution": resolution,
        "scalar_names": [],
        "constant_scalar_names": params,
        "field_names": {0: ["pressure"] if "p" in fields else [], 1: ["velocity"], 2: []},
        "constant_field_names": {0: ["mask"], 1: [], 2: []},
        "boundary_condition_types": sorted(bc_types),
        "n_files": len(files),
        "n_trajectories_per_file": [1] * len(files),
        "n_steps_per_trajectory": steps,
        "grid_type": "cartesian",
    }


def _card_for(ds: StoredDataset, problem: str) -> DatasetCard:
    """The dataset's own card when it has one (generated data), else its problem's (converted data)."""
    try:
        return load_dataset_card(ds.name)
    except CfdbenchError:
        return load_dataset_card(problem)


def well_readme(ds: StoredDataset, card: DatasetCard, fields: tuple[str, ...]) -> str:
    """A dataset card under The Well's fixed headings, from cfdbench's card and manifest."""
    meta = ds.metadata
    counts = {split: len(ds.split(split)) for split in SPLIT_NAMES}
    (ny, nx), dt, bcs = meta.grid_shape, meta.dt, dict(meta.boundary_conditions)
    generator = meta.generator or {}
    equation = (
        r"$$\partial_t \mathbf{u} + (\mathbf{u}\cdot\nabla)\mathbf{u} = -\nabla p/\rho + \nu \nabla^2 \mathbf{u},"
        r" \qquad \nabla\cdot\mathbf{u} = 0.$$"
    )
    about = {
        "Dimension of discretized data": f"trajectories of varying length on {nx} x {ny} cells (x, y).",
        "Fields available in the data": "velocity (t1)"
        + (", pressure (t0)" if "p" in fields else "")
        + "; the fluid mask as a constant t0 field.",
        "Number of trajectories": f"{len(ds)} ({counts['train']} train, {counts['valid']} valid, {counts['test']} test; "
        "split by case).",
        "Grid type": "uniform cartesian, cell centres.",
        "Initial conditions": "the fluid at rest (for converted data: CFDBench's first released frame).",
        "Boundary conditions": ", ".join(f"{axis}: {kind}" for axis, kind in bcs.items())
        + "; obstacles are no-slip and marked by the mask.",
        "Data are stored separated by ($\\Delta t$)": f"a constant interval per case ({dt:.6g} s in the first case).",
        "Coefficients": f"{', '.join(card.parameters)} per case (root attributes and `scalars/`); "
        f"Reynolds number {card.reynolds_range[0]:g} to {card.reynolds_range[1]:g}.",
        "Approximate time and hardware to generate the data": "see cfdbench's `docs/benchmarks.md`.",
    }
    lines = [
        f"# {ds.name}",
        "",
        f"**One line description of the data:** {card.problem} flow from cfdbench's `{card.name}` card.",
        "",
        f"**Longer description of the data:** {' '.join(card.description.split())}",
        "",
        "**Associated paper**: CFDBench (Luo, Chen, Zhang, arXiv:2310.05963) for the set-up; cfdbench for this data.",
        "",
        f"**Data generated by**: {meta.source or 'cfdbench generator, ' + str(generator.get('dtype', 'float32'))}.",
        "",
        f"**Code or software used to generate the data**: cfdbench, dataset card `{card.name}` version {card.version}.",
        "",
        f"**Equation**: incompressible Navier-Stokes, {equation}",
        "",
        "## About the data",
        "",
        *[f"**{key}:** {value}\n" for key, value in about.items()],
        "## What is interesting and challenging about the data",
        "",
        f"Generalisation across the {', '.join(card.subsets)} sweeps and long autoregressive rollouts, scored inside the mask.",
    ]
    return "\n".join(lines) + "\n"
