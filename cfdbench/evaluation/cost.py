"""What a surrogate saves: the numerical generator's time for the same rollout.

The generator re-simulates the first test case over the rollout's span (``steps x stride``
frame intervals, from rest, without spin-up or storage) at its card's resolution on the
evaluation device, so the comparison is against the solver that made the data, doing the same
physical time. Converted data (no generator card) has no solver time.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from cfdbench.cards import load_dataset_card
from cfdbench.data.generate import card_cases, simulate_records
from cfdbench.errors import CfdbenchError


def solver_seconds(dataset_name: str, case_id: str, frame_intervals: int, device: torch.device | str) -> float | None:
    """Wall seconds for the generator to advance ``case_id`` by ``frame_intervals`` stored frames;
    None when the dataset has no generator card or the case is not one of its cases."""
    try:
        card = load_dataset_card(dataset_name)
    except CfdbenchError:
        return None
    spec = next((s for s in card.cases() if s.case_id == case_id), None)
    if spec is None:
        return None
    solver = replace(card.solver, n_frames=frame_intervals + 1, spinup=0.0, store_solver_grid=False)
    short = replace(card, solver=solver)
    cases = card_cases(short, [spec])
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    simulate_records([spec], cases, short, str(device))
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started
