"""Speed of the 3D channel DNS against the 2D cavity solver on the same number of cells.

Usage: ``python benchmarks/bench_channel.py [--quick] [--device cpu] [--paper]``

For each grid (the tiny preset's 16x64x16 and two larger minimal-box grids; with ``--paper`` the
paper preset's 192x128x128 as well, meant for a GPU):

1. measures time per RK3 step and cell-updates per second (cells x steps / seconds) of a turbulent
   start at Re_tau = 180, float32, after a warm-up, as the median of timed repeats (the timing code
   of ``bench_solver.py``);
2. measures, in the same run, a lid-driven cavity whose square grid has the same number of cells
   (2D, fast-diagonalisation pressure) as the reference. The ratio channel / cavity is the price of
   the third dimension: FFTs in x and z and a dense per-mode eigenbasis in y.

Writes the Markdown table with the environment to ``benchmarks/results/channel-<device>.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from cfdbench.cards import find_channel_card
from cfdbench.solvers.channel import ChannelGrid, ChannelSolver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402
from bench_flows import cavity_reference  # noqa: E402
from bench_solver import alternate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SMALL_GRIDS = ((16, 64, 16), (32, 64, 32), (48, 96, 32))


def channel_stepper(grid: ChannelGrid, dt: float, device: str):
    solver = ChannelSolver(grid, 1 / 180, pressure_gradient=1.0, dtype=torch.float32, device=device)
    state = solver.turbulent_start(1, amplitude=0.1, seed=0)

    def advance(steps: int) -> None:
        nonlocal state
        for _ in range(steps):
            state = solver.step(state, dt)
        if state.u.is_cuda:
            torch.cuda.synchronize()

    return advance


def grids(paper: bool) -> list[tuple[ChannelGrid, float]]:
    tiny = find_channel_card("channel180-tiny")
    chosen = [(ChannelGrid(nx, ny, nz, tiny.dns.lx, tiny.dns.lz, tiny.dns.stretching), tiny.dt) for nx, ny, nz in SMALL_GRIDS]
    if paper:
        card = find_channel_card("channel180")
        chosen.append((card.dns, card.dt))
    return chosen


def measure(paper: bool, target: float, repeats: int, device: str) -> list[dict]:
    rows = []
    for grid, dt in grids(paper):
        cells = grid.nx * grid.ny * grid.nz
        side = round(math.sqrt(cells))
        sides = {"channel": channel_stepper(grid, dt, device), "cavity": cavity_reference((side, side), 1, device)}
        seconds_per_step = alternate(sides, target, repeats)  # channel, cavity, channel, ...: medians
        channel, cavity = 1 / seconds_per_step["channel"], 1 / seconds_per_step["cavity"]
        row = {"grid": grid, "cells": cells, "step": 1 / channel, "channel": channel * cells}
        row.update(side=side, cavity=cavity * side**2)
        rows.append(row)
        print(
            f"  {grid.nx}x{grid.ny}x{grid.nz}: {row['step'] * 1e3:.2f} ms/step, {row['channel']:.3e} cell-updates/s "
            f"(cavity {side}x{side}: {row['cavity']:.3e})",
            flush=True,
        )
    return rows


def report(rows: list[dict], quick: bool, device: str) -> str:
    header = [
        "# Channel DNS speed against the 2D cavity on the same number of cells, float32",
        "",
        *environment_lines(device, quick),
        "",
        "| DNS grid | cells | ms per RK3 step | cell-updates/s | cavity grid | cavity cell-updates/s | channel / cavity |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    body = [
        f"| {r['grid'].nx}x{r['grid'].ny}x{r['grid'].nz} | {r['cells']:,} | {r['step'] * 1e3:.2f} | {r['channel']:.3e} "
        f"| {r['side']}x{r['side']} | {r['cavity']:.3e} | {r['channel'] / r['cavity']:.2f} |"
        for r in rows
    ]
    notes = [
        "",
        "A cell-update is one cell advanced by one full RK3 step (three sub-steps, each with a",
        "pressure projection). Channel: Re_tau = 180, a turbulent start, the tiny preset's box and dt",
        "(the paper grid with its own). Reference: a lid-driven cavity on a square grid of the same",
        "cell count, measured in the same run.",
    ]
    return "\n".join(header + body + notes) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~0.3 s per repeat instead of ~2 s")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for both sides")
    parser.add_argument("--paper", action="store_true", help="also the paper grid 192x128x128 (for a GPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    target, repeats = (0.3, 3) if args.quick else (2.0, 3)
    print(f"timing ({args.device}, float32, {repeats} repeats of ~{target} s each) ...", flush=True)
    rows = measure(args.paper, target, repeats, args.device)
    publish(report(rows, args.quick, args.device), RESULTS / f"channel-{args.device.split(':')[0]}.md", args.quick)


if __name__ == "__main__":
    main()
