"""Samples per second delivered to a GPU by the training loader (cache, lazy, lazy with workers)
against the FNO's training-step time on that GPU: does the loader keep the model fed?

Usage: ``python benchmarks/bench_gpu_feed.py [--dataset cavity-mini] [--device cuda] [--workers 2 4] [--quick]``
(``scripts/gpu/throughput.sh`` runs it after the model table; on the CPU it runs as a smoke test).

Each feed is ``AutoregressiveDataset`` and its ``BatchLoader`` exactly as the trainer builds them
(the order drawn in the main process, ``--num-workers`` processes reading, pinned memory on
CUDA), and every batch is copied to the device with ``non_blocking=True`` (``to_device``), the
device synchronised at the end of each epoch. Samples/s is the median over 5 timed epochs after
a warm-up epoch; the feeds are alternated over 3 rounds (A B C A B C ...) and the median round
kept. The FNO's training step (forward, masked NMSE, backward, Adam; fp32 and the trainer's
bf16 on CUDA) comes from ``bench_models.measure_one`` at the same batch size: the loader keeps
up when its samples/s exceeds batch / step time. Writes ``benchmarks/results/gpu-feed-<device>.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402
from bench_loader import locate_dataset  # noqa: E402
from bench_models import measure_one as model_step  # noqa: E402

from cfdbench.data.batches import (  # noqa: E402
    BatchLoader,
    RankBatches,
    Ranks,  # noqa: E402
    to_device,
)
from cfdbench.data.loader import AutoregressiveDataset  # noqa: E402
from cfdbench.data.resolve import open_dataset  # noqa: E402
from cfdbench.pipeline import PLANAR_FIELDS  # noqa: E402

BATCH = 128
RESULTS = Path(__file__).resolve().parent / "results"


def feeds(workers: list[int]) -> list[tuple[str, bool, int]]:
    """(label, lazy, workers) of every feed measured."""
    return [("in-memory cache", False, 0), ("lazy", True, 0), *((f"lazy, {n} workers", True, n) for n in workers)]


def delivered_per_second(path: Path, lazy: bool, workers: int, device: torch.device, epochs: int) -> float:
    """Median samples/s over ``epochs`` epochs of batches copied to ``device``, after a warm-up epoch."""
    samples = AutoregressiveDataset(open_dataset(path), "train", fields=PLANAR_FIELDS, cache=False if lazy else None)
    schedule = RankBatches(len(samples), BATCH, Ranks(device=device), seed=0)
    loader = BatchLoader(samples, schedule, workers, pin_memory=device.type == "cuda", lend=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rates = []
    for epoch in range(epochs + 1):
        loader.set_epoch(epoch + 1)
        start, drawn = time.perf_counter(), 0
        for batch, _ in loader:
            on_device = to_device(batch, device)
            drawn += len(on_device["target"])
        sync()
        if epoch:  # the first is the warm-up
            rates.append(drawn / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(path: Path, device: torch.device, workers: list[int], rounds: int, epochs: int) -> dict[str, float]:
    """Median over rounds of each feed's samples/s, the feeds alternated within each round."""
    runs: dict[str, list[float]] = {label: [] for label, _, _ in feeds(workers)}
    for round_number in range(rounds):
        for label, lazy, count in feeds(workers):
            print(f"round {round_number + 1}/{rounds}: {label} ...", flush=True)
            runs[label].append(delivered_per_second(path, lazy, count, device, epochs))
    return {label: statistics.median(rates) for label, rates in runs.items()}


def report(rates: dict[str, float], steps: dict[str, float], args, path: Path) -> str:
    lines = [
        f"# Samples/s delivered to the device by the training loader vs the FNO's training step, batch {BATCH}",
        "",
        *environment_lines(args.device, args.quick),
        f"- dataset: {path}; {args.rounds} round(s) alternating the feeds, {args.epochs} timed epochs each",
        "",
        "| feed | samples/s delivered | " + " | ".join(f"/ FNO step ({name})" for name in steps) + " |",
        "|---|---:|" + "---:|" * len(steps),
    ]
    for label, rate in rates.items():
        ratios = " | ".join(f"{rate * seconds / BATCH:.2f}" for seconds in steps.values())
        lines.append(f"| {label} | {rate:,.0f} | {ratios} |")
    lines += [
        "",
        "FNO training step: "
        + ", ".join(f"{name} {seconds * 1e3:.1f} ms ({BATCH / seconds:,.0f} samples/s)" for name, seconds in steps.items()),
        "",
        "A ratio >= 1: the feed delivers batches faster than the FNO consumes them (the loader is not",
        "the bottleneck); below 1 the GPU waits for data at that rate.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cavity-mini")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--quick", action="store_true", help="1 round, 1 timed epoch, workers 2 only")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "cfdbench-bench-data")
    args = parser.parse_args()
    args.rounds, args.epochs = (1, 1) if args.quick else (3, 5)
    workers = [2] if args.quick else args.workers
    path = locate_dataset(args.dataset, args.scratch)
    device = torch.device(args.device)
    precisions = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
    steps = {name: model_step("fno", BATCH, args.device, 1 if args.quick else 20, name)["train_step"] for name in precisions}
    rates = measure(path, device, workers, args.rounds, args.epochs)
    publish(report(rates, steps, args, path), RESULTS / f"gpu-feed-{device.type}.md", args.quick)


if __name__ == "__main__":
    main()
