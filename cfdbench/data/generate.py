"""Generate a dataset from its card: simulate the sweep, store each case atomically, then
write the splits, the training-split statistics and the manifest.

Generation is resumable: complete case files are kept, leftovers of an interrupted write are
deleted, and only the missing cases are simulated. Ctrl-C therefore never leaves a partial
case under a final name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cfdbench.cards import CaseSpec, DatasetCard
from cfdbench.data.dataset_dir import compute_stats, make_splits, write_manifest, write_splits, write_stats
from cfdbench.data.schema import SCHEMA_VERSION, CaseRecord
from cfdbench.data.store import list_cases, remove_partials, write_case
from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.solvers.cavity import CAVITY_PARAMETER_UNITS, CavityCase, simulate_cavities

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class GenerationReport:
    dataset_dir: Path
    generated: list[str]
    reused: list[str]
    seconds: float


def _cavity_records(specs: Sequence[CaseSpec], card: DatasetCard, device: str) -> list[CaseRecord]:
    """Simulate a batch of cavity cases and package them as records (SI units)."""
    s = card.solver
    cases = [CavityCase(label=spec.case_id, **{k: spec.params[k] for k in card.parameters}) for spec in specs]
    frames = simulate_cavities(
        cases,
        s.cells_x,
        s.cells_y,
        s.frame_interval,
        s.n_frames,
        card.frame_shape,
        cfl=s.cfl,
        dtype=DTYPES[s.dtype],
        device=device,
        keep_solver_fields=s.store_solver_grid,
    )
    ny, nx = card.frame_shape
    records = []
    for b, (spec, case) in enumerate(zip(specs, cases)):
        records.append(
            CaseRecord(
                case_id=spec.case_id,
                subset=spec.subset,
                params={k: spec.params[k] for k in card.parameters},
                dt=float(frames.dt[b]),
                x=((np.arange(nx) + 0.5) * case.width / nx).astype(np.float64),
                y=((np.arange(ny) + 0.5) * case.height / ny).astype(np.float64),
                fields={"u": frames.u[b], "v": frames.v[b], "p": frames.p[b]},
                mask=np.ones((ny, nx), dtype=bool),
                boundary_conditions={"x": "wall", "y": "wall"},
                attrs={
                    "reynolds": spec.reynolds,
                    "parameter_units": {k: CAVITY_PARAMETER_UNITS[k] for k in card.parameters},
                    "frame_interval_convective": s.frame_interval,
                    "solver": "cfdbench MAC RK3/Crank-Nicolson projection",
                    "solver_cells": f"{s.cells_x}x{s.cells_y}",
                    "solver_dtype": s.dtype,
                    "solver_steps": frames.steps,
                    "device": str(device),
                },
                solver_fields=frames.solver_fields[b] if frames.solver_fields else {},
            )
        )
    return records


PROBLEMS: dict[str, Callable[[Sequence[CaseSpec], DatasetCard, str], list[CaseRecord]]] = {
    "cavity": _cavity_records,
}


def generate_dataset(
    card: DatasetCard,
    out_dir: Path,
    fmt: str = "hdf5",
    device: str = "cpu",
    batch_size: int = 16,
    max_cases: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationReport:
    """Simulate every missing case of ``card`` into ``out_dir`` and finalise the dataset folder.

    ``max_cases`` limits the sweep to its first cases (in card order) for quick trials.
    ``progress(done, total)`` is called after each stored batch.
    """
    if card.problem not in PROBLEMS:
        raise UnknownNameError("problem", card.problem, list(PROBLEMS))
    if fmt not in ("hdf5", "zarr"):
        raise UnknownNameError("format", fmt, ["hdf5", "zarr"])
    if batch_size < 1:
        raise CfdbenchError(f"batch size must be positive, got {batch_size}")
    specs = card.cases()[: max_cases or None]
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_partials(out_dir)
    existing = list_cases(out_dir)
    todo = [spec for spec in specs if spec.case_id not in existing]
    reused = [spec.case_id for spec in specs if spec.case_id in existing]
    start = time.perf_counter()
    done = len(reused)
    if progress:
        progress(done, len(specs))
    for first in range(0, len(todo), batch_size):
        batch = todo[first : first + batch_size]
        for record in PROBLEMS[card.problem](batch, card, device):
            write_case(out_dir, record, card.name, fmt=fmt)
        done += len(batch)
        if progress:
            progress(done, len(specs))
    finalize_dataset(card, out_dir, [spec.case_id for spec in specs], fmt, device)
    return GenerationReport(out_dir, [s.case_id for s in todo], reused, time.perf_counter() - start)


def finalize_dataset(card: DatasetCard, out_dir: Path, case_ids: list[str], fmt: str, device: str) -> None:
    """Fixed case-id splits, statistics of the training split, and the manifest (last: it seals the folder)."""
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
            "generator": {"device": device, **card.solver.__dict__},
        },
    )
