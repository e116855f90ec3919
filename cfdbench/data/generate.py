"""Generate a dataset from its card: simulate the sweep, store each case atomically, then
write the splits, the training-split statistics and the manifest.

Generation is resumable: complete case files are kept, leftovers of an interrupted write are
deleted, and only the missing cases are simulated. Ctrl-C therefore never leaves a partial
case under a final name.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cfdbench.cards import CaseSpec, DatasetCard
from cfdbench.data.dataset_dir import (
    compute_stats,
    forget_digest,
    make_splits,
    record_digest,
    unverified_cases,
    write_manifest,
    write_splits,
    write_stats,
)
from cfdbench.data.schema import SCHEMA_VERSION, CaseRecord
from cfdbench.data.store import list_cases, remove_partials, write_case
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError, SimulationDivergedError, UnknownNameError
from cfdbench.io import folder_lock
from cfdbench.solvers.flows import FLOWS, get_flow
from cfdbench.solvers.simulate import FlowCase, grid_cells, make_cases, simulate

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class GenerationReport:
    dataset_dir: Path
    generated: list[str]
    reused: list[str]
    seconds: float
    skipped: list[str] = field(default_factory=list)  # diverged cases left out (``on_diverged="skip"``)
    replaced: list[str] = field(default_factory=list)  # found but failing their digest: simulated again


def card_cases(card: DatasetCard, specs: Sequence[CaseSpec]) -> list[FlowCase]:
    """Checked set-ups of the card's cases: an ill-posed or unresolvable case stops generation before any work."""
    cases = make_cases(get_flow(card.problem), [(spec.case_id, {k: spec.params[k] for k in card.parameters}) for spec in specs])
    cases = [replace(case, reynolds=spec.reynolds) for case, spec in zip(cases, specs)]
    for case in cases:
        _check_resolution(card, case)
    return cases


def _check_resolution(card: DatasetCard, case: FlowCase) -> None:
    """Reject a Reynolds number the grid cannot resolve (cell Reynolds number above the card's limit)."""
    nx, ny = case_cells(card, case)
    cells_per_length = min(nx / case.setup.length_x, ny / case.setup.length_y)
    cell_reynolds = (1 / case.setup.nu) / cells_per_length
    limit = card.solver.max_cell_reynolds
    if cell_reynolds > limit:
        raise CfdbenchError(
            f"{card.name}: case {case.describe()} needs a finer grid: {cells_per_length:.3g} cells per scale length give "
            f"a cell Reynolds number {cell_reynolds:.3g} > limit {limit:g} (solver.max_cell_reynolds); "
            "use a finer preset or a lower Reynolds number"
        )


def case_cells(card: DatasetCard, case: FlowCase) -> tuple[int, int]:
    s = card.solver
    return grid_cells(case.setup, s.cells_per_length, s.cells_x, s.cells_y)


def simulate_records(
    specs: Sequence[CaseSpec], cases: Sequence[FlowCase], card: DatasetCard, device: str, compile: bool = False
) -> list[CaseRecord]:
    """Simulate one batch (cases sharing a grid) and package each case as a record in SI units."""
    flow, s = get_flow(card.problem), card.solver
    cells = case_cells(card, cases[0])
    frames = simulate(
        flow,
        cases,
        cells,
        s.frame_interval,
        s.n_frames,
        card.frame_shape,
        cfl=s.cfl,
        spinup=s.spinup,
        dtype=DTYPES[s.dtype],
        device=device,
        solver_grid_every=s.solver_grid_every if s.store_solver_grid else 0,
        compile=compile,
    )
    records = []
    for b, (spec, case) in enumerate(zip(specs, cases)):
        solver_fields = dict(frames.solver_fields[b]) if frames.solver_fields else {}
        field_attrs = {name: _native_attrs(name, s.solver_grid_every) for name in solver_fields}
        if frames.body_force:
            solver_fields["body_force"] = frames.body_force[b].astype(np.float64)
            field_attrs["body_force"] = {
                "units": "N/m",
                "description": "force of the fluid on the body per unit depth at each frame, columns (drag x, lift y)",
            }
        records.append(
            CaseRecord(
                case_id=spec.case_id,
                subset=spec.subset,
                params=dict(case.params),
                dt=float(frames.dt[b]),
                x=frames.x[b],
                y=frames.y[b],
                fields={"u": frames.u[b], "v": frames.v[b], "p": frames.p[b]},
                mask=frames.fluid_fraction[b],
                boundary_conditions=dict(flow.boundary_conditions),
                attrs={
                    "reynolds": spec.reynolds,
                    "parameter_units": {k: flow.units[k] for k in card.parameters},
                    "frame_interval_convective": s.frame_interval,
                    **({"spinup_convective": s.spinup} if s.spinup > 0 else {}),
                    "solver": "cfdbench MAC RK3 projection (viscosity explicit where stable, else Crank-Nicolson)",
                    "solver_compiled": bool(compile),
                    "solver_cells": f"{cells[0]}x{cells[1]}",
                    "solver_dtype": s.dtype,
                    "solver_steps": int(frames.steps[b]),
                    "device": str(device),
                },
                solver_fields=solver_fields,
                solver_field_attrs=field_attrs,
            )
        )
    return records


_NATIVE_FIELDS = {
    "u_faces": ("m/s", "x velocity on the solver's vertical cell faces"),
    "v_faces": ("m/s", "y velocity on the solver's horizontal cell faces"),
    "p_cells": ("Pa", "pressure at the solver's cell centres"),
}


def _native_attrs(name: str, every: int) -> dict:
    """Units, meaning and frame stride of a native solver-grid array (frames 0, k, 2k, ... of the stored frames)."""
    units, description = _NATIVE_FIELDS[name]
    return {"units": units, "description": f"{description}, (T, y, x)", "frame_stride": every}


def _batches(specs: Sequence[CaseSpec], cases: Sequence[FlowCase], card: DatasetCard, batch_size: int):
    """Batches of cases that share a grid, ordered by their smallest stable step, card order among equals.

    A batch advances with one time step, the smallest any of its cases allows, so cases whose cells
    force short steps (the flat cavities of a GEO sweep) go together instead of slowing the rest.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for index, case in enumerate(cases):
        groups.setdefault(case_cells(card, case), []).append(index)
    for cells, indices in groups.items():
        indices = sorted(indices, key=lambda i: _cfl_floor(cases[i], cells))
        for first in range(0, len(indices), batch_size):
            chosen = indices[first : first + batch_size]
            yield [specs[i] for i in chosen], [cases[i] for i in chosen]


def _cfl_floor(case: FlowCase, cells: tuple[int, int]) -> float:
    """1/dx + 1/dy in scale lengths: the step limit of a case moving at its reference speed (``stable_dt``'s floor)."""
    return round(cells[0] / case.setup.length_x + cells[1] / case.setup.length_y, 9)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0-based shard i of n, a SLURM array index) -> (i, n)."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CfdbenchError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise CfdbenchError(f"--shard {text}: need 0 <= i < n")
    return index, count


def generate_dataset(
    card: DatasetCard,
    out_dir: Path,
    fmt: str = "hdf5",
    device: str = "cpu",
    batch_size: int = 16,
    max_cases: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    shard: tuple[int, int] | None = None,
    on_diverged: str = "stop",
    finalize: bool = True,
    compile: bool = False,
    zarr_shards: bool = False,
) -> GenerationReport:
    """Simulate every missing case of ``card`` into ``out_dir`` and finalise the dataset folder.

    ``max_cases`` limits the sweep to its first cases (in card order) for quick trials.
    ``shard = (i, n)`` simulates only cases i, i + n, i + 2n, ... (independent jobs or ranks each
    write their own files); the folder is finalised (splits, statistics, manifest) by whichever
    call finds every case present, unless ``finalize`` is false. ``on_diverged``: ``"stop"``
    raises on a blow-up, ``"skip"`` leaves the diverging cases out (they are reported; a
    dataset with skipped cases is not finalised). ``progress(done, total)`` follows each batch.
    ``compile`` fuses the solver step with ``torch.compile``: faster, and equal to the eager (published)
    bytes only to round-off, which the case files and the manifest record. ``zarr_shards`` stores each
    zarr array as one object (a few large objects per case, for object stores).
    """
    if fmt not in ("hdf5", "zarr"):
        raise UnknownNameError("format", fmt, ["hdf5", "zarr"])
    if zarr_shards and fmt != "zarr":
        raise CfdbenchError(f"--zarr-shards is a zarr layout; the {fmt} format has none (use --format zarr)")
    if on_diverged not in ("stop", "skip"):
        raise UnknownNameError("on-diverged policy", on_diverged, ["stop", "skip"])
    if batch_size < 1:
        raise CfdbenchError(f"batch size must be positive, got {batch_size}")
    specs = card.cases()[: max_cases or None]
    cases = card_cases(card, specs)  # validates every case before any work
    mine = [i for i in range(len(specs)) if shard is None or i % shard[1] == shard[0]]
    out_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(out_dir, "cfdbench data generate", "all" if shard is None else f"{shard[0]}/{shard[1]}"):
        remove_partials(out_dir)
        existing = list_cases(out_dir)
        found = {specs[i].case_id: existing[specs[i].case_id] for i in mine if specs[i].case_id in existing}
        replaced = _discard_unverified(out_dir, found)
        existing = {case_id: path for case_id, path in existing.items() if case_id not in replaced}
        todo = [i for i in mine if specs[i].case_id not in existing]
        reused = [specs[i].case_id for i in mine if specs[i].case_id in existing]
        start = time.perf_counter()
        done, skipped = len(reused), []
        if progress:
            progress(done, len(mine))
        for batch_specs, batch_cases in _batches([specs[i] for i in todo], [cases[i] for i in todo], card, batch_size):
            for record in _simulate_or_skip(batch_specs, batch_cases, card, device, on_diverged, skipped, compile):
                record_digest(write_case(out_dir, record, card.name, fmt=fmt, zarr_shards=zarr_shards))
            done += len(batch_specs)
            if progress:
                progress(done, len(mine))
        all_ids = [spec.case_id for spec in specs]
        if finalize and not skipped and set(all_ids) <= set(list_cases(out_dir)):
            seal_generated(card, out_dir, all_ids, fmt, device, compile)
    generated = [specs[i].case_id for i in todo if specs[i].case_id not in skipped]
    return GenerationReport(out_dir, generated, reused, time.perf_counter() - start, skipped, replaced)


def _discard_unverified(out_dir: Path, found: dict[str, Path]) -> list[str]:
    """Delete the case files that fail their recorded digest (or have none), so they are simulated again:
    a file altered after it was written (truncated, edited) is never reused or sealed."""
    bad = unverified_cases(out_dir, found)
    for case_id in bad:
        path = found[case_id]
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        forget_digest(path)
    return bad


def seal_generated(card: DatasetCard, out_dir: Path, case_ids: list[str], fmt: str, device: str, compile: bool = False) -> None:
    """Finalise a generated folder once every case verifies against the digest recorded when it was written."""
    bad = unverified_cases(out_dir, list_cases(out_dir))
    if bad:
        raise CfdbenchError(
            f"{out_dir}: {len(bad)} case file(s) changed since they were written ({', '.join(bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}); rerun `cfdbench data generate` to simulate them again"
        )
    finalize_dataset(card, out_dir, case_ids, fmt, device, compiled=compile)


def _simulate_or_skip(specs, cases, card, device, on_diverged: str, skipped: list[str], compile: bool = False) -> list[CaseRecord]:
    """A batch's records; with ``skip``, a diverging batch is retried case by case and the bad ones dropped."""
    try:
        return simulate_records(specs, cases, card, device, compile)
    except SimulationDivergedError:
        if on_diverged == "stop":
            raise
        if len(specs) == 1:
            skipped.append(specs[0].case_id)
            return []
    records = []
    for spec, case in zip(specs, cases):
        records.extend(_simulate_or_skip([spec], [case], card, device, on_diverged, skipped, compile))
    return records


def distributed_rank() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when launched by torchrun with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def generate_on_ranks(card: DatasetCard, out_dir: Path, rank: tuple[int, int, int], **options) -> GenerationReport:
    """Each torchrun rank simulates its own cases (shard rank/world); rank 0 seals the folder once all are done.

    The process group uses gloo (it only synchronises; the simulation runs on each rank's device).
    """
    import torch.distributed as dist

    index, world, _ = rank
    dist.init_process_group("gloo", rank=index, world_size=world)
    try:
        report = generate_dataset(card, out_dir, shard=(index, world), finalize=False, **options)
        skipped = torch.tensor([len(report.skipped)])
        dist.all_reduce(skipped)  # also the barrier: every rank has written its cases
        specs = card.cases()[: options.get("max_cases") or None]
        ids = [spec.case_id for spec in specs]
        if index == 0 and int(skipped) == 0:
            seal_generated(card, out_dir, ids, options.get("fmt", "hdf5"), options.get("device", "cpu"), options.get("compile", False))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return report


def finalize_dataset(
    card: DatasetCard, out_dir: Path, case_ids: list[str], fmt: str, device: str, generator: dict | None = None, compiled: bool = False
) -> None:
    """Fixed case-id splits, statistics of the training split, and the manifest (last: it seals the
    folder). ``generator`` describes how the cases were made (default: the card's solver settings);
    any card with a name, version, problem, splits, fields and content hash will do."""
    splits = make_splits(case_ids, card.splits.seed, card.splits.train, card.splits.valid)
    write_splits(out_dir, splits, card.splits.seed, (card.splits.train, card.splits.valid))
    stats = compute_stats(out_dir, splits["train"], card.fields)
    write_stats(out_dir / "stats.yaml", stats)
    write_manifest(
        out_dir,
        {
            "dataset": card.name,
            "version": card.version,
            "problem": card.problem,
            "card_sha256": card.content_hash(),
            "format": fmt,
            "schema_version": SCHEMA_VERSION,
            "n_cases": len(case_ids),
            "generator": {"device": device, **({**card.solver.__dict__, "compiled": compiled} if generator is None else generator)},
        },
    )


# --------------------------------------------------------------------------- re-running a stored dataset


@dataclass(frozen=True)
class DatasetGenerator:
    """How a stored dataset was generated (its manifest) and its cases: enough to re-run them."""

    problem: str
    settings: dict  # the manifest's generator block: cells, cfl, dtype, frame interval, frames, spin-up
    frame_shape: tuple[int, int]
    cases: dict[str, FlowCase]

    @classmethod
    def of(cls, dataset: StoredDataset) -> "DatasetGenerator":
        """The generator of ``dataset``; converted data (no generator) and the channel are refused."""
        problem, settings = dataset.metadata.problem, dataset.metadata.generator
        if problem not in FLOWS:
            raise CfdbenchError(f"re-running the generator needs a 2D flow {list(FLOWS)}; '{dataset.name}' holds {problem} data")
        if not settings:
            raise CfdbenchError(
                f"re-running the solver that generated the data needs its settings; '{dataset.name}' was not generated (converted data?)"
            )
        labelled = []
        for case_id in dataset.case_ids:
            with dataset.open_case(case_id) as case:
                labelled.append((case_id, dict(case.params)))
                frame_shape = tuple(np.asarray(case.mask).shape)
        cases = make_cases(get_flow(problem), labelled)
        return cls(problem, dict(settings), frame_shape, {case.label: case for case in cases})

    def cells(self, case: FlowCase) -> tuple[int, int]:
        s = self.settings
        return grid_cells(case.setup, s.get("cells_per_length"), s["cells_x"], s["cells_y"])
