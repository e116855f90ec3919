"""Time to generate a dataset subset end to end (simulation, resampling, atomic writes), per case.

Usage, on a GPU machine (one command; the ``paper`` subset, CFDBench's case count):

    python benchmarks/bench_generate.py --dataset cylinder --subset bc --device cuda

and as a CPU smoke run: ``python benchmarks/bench_generate.py --dataset tube --preset tiny``.

Generates into a fresh folder (``--out``, default a temporary directory that is deleted
afterwards, so nothing is reused), with the library's own ``generate_dataset`` and batching,
times every batch, and writes a Markdown table with the environment to
``benchmarks/results/generate-<variant>-<device>.md``. The reference in the same run is the
first batch: later batches on a GPU should not be slower (no recompilation, no memory growth).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cfdbench.cards import load_dataset_card
from cfdbench.data.generate import generate_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import describe_device, publish  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def timed_generation(
    card, out_dir: Path, device: str, batch_size: int, max_cases: int | None, compile: bool = False
) -> list[tuple[int, float]]:
    """Generate ``card`` into ``out_dir``; return (cases finished, seconds since start) after each batch,
    and last (cases, total seconds including splits, statistics and manifest)."""
    marks: list[tuple[int, float]] = []
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        marks.append((done, time.perf_counter() - start))
        print(f"  {done}/{total} cases after {marks[-1][1]:.1f} s", flush=True)

    generate_dataset(card, out_dir, device=device, batch_size=batch_size, max_cases=max_cases, progress=progress, compile=compile)
    marks.append((marks[-1][0], time.perf_counter() - start))
    return marks


def report(card, marks: list[tuple[int, float]], device: str, batch_size: int) -> str:
    batches = [(b - a, t1 - t0) for (a, t0), (b, t1) in zip(marks[:-2], marks[1:-1])]
    per_case = [seconds / cases for cases, seconds in batches]
    total_cases, total_seconds = marks[-1][0], marks[-1][1]
    s = card.solver
    lines = [
        f"# Generation time per case: {card.name} on {device}",
        "",
        f"- device: {describe_device(device)}",
        f"- torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        f"- solver: {s.dtype}, cfl {s.cfl}, {s.n_frames} frames every {s.frame_interval} scale times, spin-up {s.spinup}; "
        f"batch size {batch_size}",
        "",
        "| batch | cases | seconds | seconds per case |",
        "|---:|---:|---:|---:|",
        *(f"| {i} | {cases} | {seconds:.1f} | {seconds / cases:.2f} |" for i, (cases, seconds) in enumerate(batches)),
        "",
        f"Total: {total_cases} cases in {total_seconds:.1f} s, {total_seconds / max(total_cases, 1):.2f} s per case "
        f"(median batch {np.median(per_case):.2f} s per case; first batch, with warm-up, {per_case[0]:.2f}); "
        f"includes {marks[-1][1] - marks[-2][1]:.1f} s for splits, statistics and manifest.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cylinder", help="cavity, tube, dam or cylinder")
    parser.add_argument("--subset", default="bc", help="bc, prop, geo or all")
    parser.add_argument("--preset", default="paper", help="paper (CFDBench's case counts) or tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16, help="cases simulated together")
    parser.add_argument("--max-cases", type=int, default=None, help="only the first cases (trials)")
    parser.add_argument("--out", type=Path, default=None, help="keep the data here (default: a deleted temporary folder)")
    parser.add_argument("--quick", action="store_true", help="smoke run: the tube's tiny preset, two cases")
    parser.add_argument("--compile", action="store_true", help="the solver step through torch.compile")
    args = parser.parse_args()
    if args.quick:
        args.dataset, args.preset, args.subset, args.max_cases = "tube", "tiny", "bc", 2
    card = load_dataset_card(args.dataset).variant(args.preset, args.subset)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="cfdbench-bench-"))
    if args.out is not None and any(out_dir.glob("*")):
        parser.error(f"--out {out_dir} is not empty: a timing run must not reuse cases")
    print(f"generating {card.name} ({len(card.cases()[: args.max_cases or None])} cases) on {args.device} into {out_dir}")
    try:
        marks = timed_generation(card, out_dir, args.device, args.batch_size, args.max_cases, args.compile)
    finally:
        if args.out is None:
            shutil.rmtree(out_dir, ignore_errors=True)
    text = report(card, marks, args.device, args.batch_size)
    publish(text, RESULTS / f"generate-{card.name}-{args.device.split(':')[0]}.md", args.quick)


if __name__ == "__main__":
    main()
