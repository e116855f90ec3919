"""CPU speed of every flow's solver, single and batched, against the cavity on the same grid.

Usage: ``python benchmarks/bench_flows.py [--quick] [--batch 8] [--device cpu]``

For each dataset card (cavity, tube, dam, cylinder) at its ``paper`` resolution:

1. takes the card's first ``bc`` cases that share one grid (the cases a generation batch holds);
2. measures cell-updates per second (cells x cases x RK3 steps / seconds) for 1 case and for
   ``--batch`` cases in one batch, float32, after a warm-up, as the median of timed repeats
   (same timing code as ``bench_solver.py``);
3. measures, in the same run, a lid-driven cavity on the same cell counts (walls all round, a
   direct fast-diagonalisation pressure solve, no body) as the reference. The ratio
   flow / cavity is the price of the flow's boundary conditions and body: an inlet and outlet
   (still direct), a disc (direct, plus the forcing), or a grid-aligned block (the
   pressure solved by preconditioned CG on the fluid cells).

Writes the Markdown table with the environment to ``benchmarks/results/flows.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cfdbench.cards import load_dataset_card
from cfdbench.data.generate import card_cases, case_cells
from cfdbench.solvers.simulate import build_solver, flow_solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402
from bench_solver import alternate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "flows.md"
DATASETS = ("cavity", "tube", "dam", "cylinder")
CFL = 0.5  # of the initial (inflow or lid) speed: no timed run blows up


def batch_cases(dataset: str, batch: int):
    """The first ``batch`` bc cases of a dataset's paper card that share its first case's grid, and that grid."""
    card = load_dataset_card(dataset).variant("paper", "bc")
    cases = card_cases(card, card.cases())
    cells = case_cells(card, cases[0])
    same_grid = [case for case in cases if case_cells(card, case) == cells][:batch]
    if len(same_grid) < batch:
        sys.exit(f"ABORT: {dataset} has only {len(same_grid)} bc cases on one grid, fewer than --batch {batch}")
    return same_grid, cells


def stepper(solver, state) -> Callable[[int], None]:
    """A function advancing ``state`` by k steps of the CFL-limited step at the initial speed."""
    dt = solver.time_step(solver.stable_dt(state, CFL))  # per case, computed once

    def advance(steps: int) -> None:
        nonlocal state
        for _ in range(steps):
            state = solver.step(state, dt)
        if state.u.is_cuda:
            torch.cuda.synchronize()

    return advance


def cavity_reference(cells: tuple[int, int], batch: int, device: str) -> Callable[[int], None]:
    """Cavities on ``cells`` (nx, ny) with square cells, Re 100 .. 1000."""
    nx, ny = cells
    params = [
        dict(vel_top=1.0, density=1.0, viscosity=1.0 / re, height=ny / nx, width=1.0) for re in np.geomspace(100, 1000, batch)
    ]
    return stepper(*flow_solver("cavity", params, cells, torch.float32, device))


def measure(batch: int, target: float, repeats: int, device: str) -> list[dict]:
    rows = []
    for dataset in DATASETS:
        cases, cells = batch_cases(dataset, batch)
        for size in sorted({1, batch}):
            sides = {"flow": stepper(*build_solver(cases[:size], *cells, torch.float32, device))}
            sides["cavity"] = cavity_reference(cells, size, device)
            seconds_per_step = alternate(sides, target, repeats)  # flow, cavity, flow, cavity, ...: medians
            flow, cavity = 1 / seconds_per_step["flow"], 1 / seconds_per_step["cavity"]
            per_step = cells[0] * cells[1] * size
            row = {"dataset": dataset, "cells": cells, "cases": size, "flow": flow * per_step, "cavity": cavity * per_step}
            rows.append(row)
            print(
                f"  {dataset:8s} {cells[0]}x{cells[1]} x {size:2d}: {row['flow']:.3e} cell-updates/s "
                f"(cavity on the same grid {row['cavity']:.3e})",
                flush=True,
            )
    return rows


def report(rows: list[dict], quick: bool, device: str) -> str:
    single = {r["dataset"]: r["flow"] for r in rows if r["cases"] == 1}
    header = [
        "# Flow solver speed: every flow, single and batched, against the cavity on the same grid, float32",
        "",
        *environment_lines(device, quick),
        "",
        "| dataset | grid (paper) | cases | cell-updates/s | batched / single | cavity, same grid | flow / cavity |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    body = [
        f"| {r['dataset']} | {r['cells'][0]}x{r['cells'][1]} | {r['cases']} | {r['flow']:.3e} "
        f"| {r['flow'] / single[r['dataset']]:.2f} | {r['cavity']:.3e} | {r['flow'] / r['cavity']:.2f} |"
        for r in rows
    ]
    notes = [
        "",
        "A cell-update is one cell advanced by one full RK3 step. Cases: the first bc cases of the",
        "card's paper resolution (one generation batch shares a grid). Reference: a lid-driven cavity",
        "on the same cell counts in the same run (fast-diagonalisation pressure, no body).",
    ]
    return "\n".join(header + body + notes) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~0.2 s per repeat instead of ~1.5 s")
    parser.add_argument("--batch", type=int, default=8, help="cases in the batched measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for both sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    target, repeats = (0.2, 3) if args.quick else (1.5, 3)
    print(f"timing ({args.device}, float32, {repeats} repeats of ~{target} s each) ...", flush=True)
    rows = measure(args.batch, target, repeats, args.device)
    text = report(rows, args.quick, args.device)
    publish(text, RESULTS, args.quick)


if __name__ == "__main__":
    main()
