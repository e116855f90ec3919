"""Wall time of ``cfdbench data generate`` on an idle CPU and beside a busy process, for the solver's
thread choice (``cfdbench.solvers.threads``) against a pinned count.

Usage: ``python benchmarks/bench_threads.py [--quick] [--dataset dam-tiny] [--max-cases 3] [--rounds 3]``

Torch's OpenMP threads spin at every barrier, so on cores shared with other work a multi-threaded
solver step can wait out whole scheduler slices. Three sides, each a fresh ``cfdbench data generate``
process into an empty folder: the default (each frame on the cores other processes left idle over
the frames before, at most torch's thread count), ``OMP_NUM_THREADS=1`` and
``OMP_NUM_THREADS=<all cores>`` (pinned: no choice). Each runs on the idle machine and beside one
process that spins on a core (what a neighbouring job does); sides alternated within each round, medians over rounds. Every side's
manifest (the case files' digests) must equal the first one's: the thread count may not change a
byte. This is threading itself being measured, so the sides are threaded as they say.

Writes ``benchmarks/results/threads.md`` (``--quick``: ``benchmarks/results/quick/``, not committed).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def sides() -> dict[str, dict[str, str]]:
    """Side name -> the environment it adds (and removes: an empty value unsets the variable)."""
    cores = str(os.cpu_count() or 1)
    return {
        "idle cores (default)": {"OMP_NUM_THREADS": ""},
        "1 thread": {"OMP_NUM_THREADS": "1"},
        f"{cores} threads": {"OMP_NUM_THREADS": cores},
    }


def spin(seconds: float) -> None:
    """Keep one core busy, as a neighbouring job would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def generate(dataset: str, max_cases: int, extra_env: dict[str, str], folder: Path) -> tuple[float, bytes]:
    """(wall seconds, manifest bytes) of one ``cfdbench data generate`` in a fresh process."""
    env = {**os.environ, "CFDBENCH_DATA": str(folder)}
    for key, value in extra_env.items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    command = [sys.executable, "-m", "cfdbench", "data", "generate", dataset, "--device", "cpu", "--max-cases", str(max_cases)]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"generation failed ({extra_env}): {result.stderr[-1500:]}")
    return seconds, (folder / dataset / "manifest.json").read_bytes()


def measure(dataset: str, max_cases: int, rounds: int) -> dict[tuple[str, str], list[float]]:
    """Seconds per (load, side) over the rounds; every manifest checked against the first."""
    times: dict[tuple[str, str], list[float]] = {}
    reference = None
    with tempfile.TemporaryDirectory(prefix="cfdbench-bench-threads-") as scratch:
        for round_ in range(rounds):
            for load in ("idle", "beside a busy process"):
                busy = None
                if load != "idle":
                    busy = multiprocessing.Process(target=spin, args=(3600.0,), daemon=True)
                    busy.start()
                try:
                    for side, extra in sides().items():
                        folder = Path(scratch) / f"{round_}-{len(times)}"
                        seconds, manifest = generate(dataset, max_cases, extra, folder)
                        shutil.rmtree(folder)
                        reference = reference or manifest
                        if manifest != reference:
                            raise SystemExit(
                                f"{side} ({load}) generated other bytes than the first side: threads changed the data"
                            )
                        times.setdefault((load, side), []).append(seconds)
                        print(f"round {round_ + 1}/{rounds}, {load}, {side}: {seconds:.1f} s", flush=True)
                finally:
                    if busy is not None:
                        busy.terminate()
                        busy.join()
    return times


def report(times: dict[tuple[str, str], list[float]], dataset: str, max_cases: int, rounds: int, quick: bool) -> str:
    lines = [
        "# Generator threads: idle and beside a busy process",
        "",
        *environment_lines("cpu", quick),
        f"- `cfdbench data generate {dataset} --device cpu --max-cases {max_cases}`, each side a fresh process, "
        f"{rounds} round(s), sides alternated; identical manifests (case digests) on every side",
        "",
        "| load | side | seconds (median) | range | / idle cores |",
        "|---|---|---:|---:|---:|",
    ]
    for load in ("idle", "beside a busy process"):
        base = statistics.median(times[(load, "idle cores (default)")])
        for side in sides():
            values = times[(load, side)]
            median = statistics.median(values)
            lines.append(f"| {load} | {side} | {median:.1f} | {min(values):.1f}-{max(values):.1f} | {median / base:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, one case")
    parser.add_argument("--dataset", default="dam-tiny")
    parser.add_argument("--max-cases", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds, max_cases = (1, 1) if args.quick else (args.rounds, args.max_cases)
    times = measure(args.dataset, max_cases, rounds)
    publish(report(times, args.dataset, max_cases, rounds, args.quick), RESULTS / "threads.md", args.quick)


if __name__ == "__main__":
    main()
