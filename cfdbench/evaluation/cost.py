"""What a surrogate saves: the numerical generator's time for the same physical time, per case.

The generator's cost is measured once per dataset and device type (``cfdbench data cost NAME``)
and recorded beside the dataset's card, in ``datasets/<card>/solver-cost.json``: the wall time of
generating the dataset's cases from rest (no spin-up), batched as ``data generate`` batches them,
per case and per stored frame interval. An entry's cost block compares that, scaled to the
rollout's span, with the model's own batched time per case; evaluation and verification never
re-run the solver. A dataset without a recorded cost on the evaluation's device type (converted
data, a new card) gets no speed-up rather than one measured on another kind of device.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cfdbench.cards import load_dataset_card
from cfdbench.errors import CfdbenchError
from cfdbench.io import write_json_atomic

COST_FILE = "solver-cost.json"
GENERATION_BATCH = 16  # data generate's default batch size


def cost_file(dataset: str) -> Path | None:
    """Where the solver cost of ``dataset`` (a card or variant name) is recorded; None without a card."""
    try:
        card = load_dataset_card(dataset)
    except CfdbenchError:
        return None
    return card.path.parent / COST_FILE if card.path else None


def recorded_cost(dataset: str, device_type: str) -> dict[str, Any] | None:
    """The recorded generator cost of ``dataset`` on a device of ``device_type`` ("cpu", "cuda"), or None."""
    path = cost_file(dataset)
    if path is None or not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CfdbenchError(
            f"{path}: unreadable solver cost ({err}); measure it again with `cfdbench data cost {dataset}`"
        ) from None
    return recorded.get(dataset, {}).get(device_type)


def solver_block(dataset: str, device_type: str, frame_intervals: int) -> dict[str, Any] | None:
    """The entry's ``cost.solver``: the recorded cost per case, scaled to ``frame_intervals`` stored
    intervals (a rollout's steps x stride), with where it was measured; None when none is recorded."""
    cost = recorded_cost(dataset, device_type)
    if cost is None:
        return None
    per_interval = cost["seconds_per_frame_interval"]
    return {
        "seconds_per_rollout": per_interval * frame_intervals,
        "seconds_per_frame_interval": per_interval,
        "batch_size": cost["batch_size"],
        "device": cost["device"],
        "hardware": cost["hardware"],
        "measured": cost["measured"],
    }


def measure_solver_cost(dataset: str, device: str, hardware: str, max_cases: int | None = None) -> dict[str, Any]:
    """Generate ``dataset``'s cases (its first ``max_cases``) from rest into a scratch folder, batched as
    ``data generate`` does, and return the seconds per case and stored frame interval (the batches'
    time: simulation, resampling and writes; not the splits, statistics and manifest)."""
    from cfdbench.data.generate import generate_dataset
    from cfdbench.entries.entry import utc_timestamp

    card = load_dataset_card(dataset)
    card = replace(card, solver=replace(card.solver, spinup=0.0))  # a rollout starts from a stored state
    marks: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cfdbench-cost-") as scratch:
        started = time.perf_counter()
        report = generate_dataset(
            card, Path(scratch) / card.name, device=device, batch_size=GENERATION_BATCH, max_cases=max_cases,
            progress=lambda done, total: marks.append(_synchronized(device) - started), finalize=False,
        )  # fmt: skip
    cases, intervals = len(report.generated), card.solver.n_frames - 1
    return {
        "seconds_per_frame_interval": marks[-1] / (cases * intervals),
        "cases": cases,
        "frame_intervals": intervals,
        "batch_size": GENERATION_BATCH,
        "device": device,
        "hardware": hardware,
        "measured": utc_timestamp(),
    }


def record_solver_cost(dataset: str, cost: dict[str, Any]) -> Path:
    """Write ``cost`` into the dataset card's cost file, under the dataset and its device type."""
    path = cost_file(dataset)
    if path is None:
        raise CfdbenchError(f"dataset '{dataset}' has no generator card in datasets/: its solver cost cannot be measured")
    recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    device_type = cost["device"].split(":")[0]
    recorded.setdefault(dataset, {})[device_type] = cost
    return write_json_atomic(path, recorded)


def _synchronized(device: str) -> float:
    """``time.perf_counter()`` once the device's queued work is done."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter()
