"""Training-loader throughput and memory: cfdbench's AutoregressiveDataset vs a CFDBench-style loader.

Usage: ``python benchmarks/bench_loader.py [--dataset cavity-mini] [--quick]``

1. Finds the dataset (a folder, or a name under ``CFDBENCH_DATA``/``./data``). When it is not
   there, or not finished (no ``manifest.json``: another process may be writing it), it is
   generated with ``cfdbench.pipeline.ensure_dataset`` into a scratch folder of this benchmark
   (``--scratch``, default ``$TMPDIR/cfdbench-bench-data``); nothing under ``./data`` is touched.
2. Checks that both loaders give the same normalised samples (input, target, mask, params)
   for the whole training split; aborts otherwise, because a speed ratio between loaders that
   produce different data means nothing.
3. Runs each loader in a fresh Python process (``--only NAME``) so that its memory is its own,
   once per round (3 rounds, interleaved; 1 with ``--quick``), keeping the median over rounds:
   ``ours`` (``AutoregressiveDataset`` as ``train_stage`` builds it, default cache mode, which is
   the in-memory cache when the split fits in 4 GiB), ``ours-lazy`` (``cache=False``: frames read
   from disk per batch) and ``reference`` (every (input, target) pair materialised in a list,
   then a plain ``DataLoader`` with the default collate, as CFDBench does). Each process
   records the time to build its loader, then training samples per second at batch 128 with
   shuffling, over whole epochs after a warm-up epoch (median of timed repeats; ``--quick``:
   a few batches), and its peak resident memory above the baseline after imports.
4. Prints a Markdown table with the environment and writes it atomically to
   ``benchmarks/results/loader.md``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from cfdbench.data.loader import AutoregressiveDataset, FieldScaler, ParameterScaler
from cfdbench.data.view import StoredDataset, open_dataset
from cfdbench.leaderboard.entry import cpu_model
from cfdbench.pipeline import PLANAR_FIELDS as PREDICTED_FIELDS
from cfdbench.pipeline import dataset_path, ensure_dataset
from cfdbench.training.trainer import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import result_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "loader.md"
LOADERS = ("ours", "ours-lazy", "reference")
BATCH_SIZE = 128
AGREEMENT_TOLERANCE = 1e-6
DEFAULTS = TrainConfig()  # input_frames = stride = 1, seed 0: what train_stage uses for CFDBench's task


# ---------------------------------------------------------------------------- dataset
def locate_dataset(name: str, scratch: Path) -> Path:
    """The folder of a finished dataset: as given, else in ``scratch``, else generated into ``scratch``."""
    given = dataset_path(name)
    if (given / "manifest.json").is_file():
        return given.resolve()
    if (scratch / name / "manifest.json").is_file():
        return (scratch / name).resolve()
    print(f"dataset '{name}' not finished at {given}; generating it into {scratch} (about a minute) ...", flush=True)
    os.environ["CFDBENCH_DATA"] = str(scratch)  # ensure_dataset writes under data_root()
    started = time.perf_counter()
    generated = ensure_dataset(name)
    print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    return generated.path.resolve()


def disk_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# ---------------------------------------------------------------------------- loaders
def build_ours(dataset: StoredDataset, cache: bool | None) -> tuple[AutoregressiveDataset, Iterable]:
    """Our training loader, constructed exactly as ``pipeline.train_stage`` and ``trainer.train`` do."""
    samples = AutoregressiveDataset(dataset, "train", DEFAULTS.input_frames, DEFAULTS.stride, PREDICTED_FIELDS, cache=cache)
    return samples, samples.loader(BATCH_SIZE, shuffle=True, seed=DEFAULTS.seed)


class PairListDataset(torch.utils.data.Dataset):
    """CFDBench-style samples: a Python list holding one materialised dict of tensors per pair."""

    def __init__(self, pairs: list[dict[str, torch.Tensor]]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.pairs[index]


def reference_pairs(dataset: StoredDataset, fields: tuple[str, ...] = PREDICTED_FIELDS) -> list[dict[str, torch.Tensor]]:
    """Every (frame t -> frame t+1) pair of the training split, each array its own float32 copy.

    As in CFDBench's auto-regressive datasets: every case is read whole into memory, normalised,
    and split into per-pair tensors, so each inner frame is stored twice (target of one pair,
    input of the next) and the mask and parameters once per pair. Normalisation is the one our
    loader uses: z-scores from ``stats.yaml``, log10-standardised parameters fitted on the split,
    zero outside the fluid.
    """
    cases = []
    for case_id in dataset.split("train"):
        with dataset.open_case(case_id) as case:
            mask = np.ascontiguousarray(case.mask, dtype=np.float32)
            cases.append((case.read(fields, slice(None)), mask, list(case.params.values())))
    field_scaler = FieldScaler.from_stats(dataset.stats, fields)
    mean = field_scaler.mean.numpy()[:, None, None]
    std = field_scaler.std.numpy()[:, None, None]
    params = ParameterScaler.fit(np.asarray([p for _, _, p in cases], dtype=np.float64)).transform(
        np.asarray([p for _, _, p in cases])
    )
    pairs = []
    for (frames, mask, _), case_params in zip(cases, params):
        frames = (frames - mean) / std * mask
        for t in range(len(frames) - 1):
            pairs.append(
                {
                    "input": torch.tensor(frames[t]),
                    "target": torch.tensor(frames[t + 1]),
                    "mask": torch.tensor(mask[None]),
                    "params": case_params.clone(),
                }
            )
    return pairs


def build_reference(dataset: StoredDataset) -> tuple[PairListDataset, Iterable]:
    """The materialised pair list behind a plain ``DataLoader`` (default collate, shuffled)."""
    samples = PairListDataset(reference_pairs(dataset))
    generator = torch.Generator().manual_seed(DEFAULTS.seed)
    return samples, torch.utils.data.DataLoader(samples, batch_size=BATCH_SIZE, shuffle=True, generator=generator)


def build(name: str, dataset: StoredDataset) -> tuple[object, Iterable]:
    """(sample container, loader) for one of ``LOADERS``."""
    if name == "ours":
        return build_ours(dataset, cache=None)
    if name == "ours-lazy":
        return build_ours(dataset, cache=False)
    if name == "reference":
        return build_reference(dataset)
    raise ValueError(f"unknown loader {name}; choose from {LOADERS}")


def tensor_bytes(samples: object) -> int:
    """Bytes of the tensors a loader keeps between batches (its payload, without Python overhead)."""
    if isinstance(samples, PairListDataset):
        return sum(t.nbytes for pair in samples.pairs for t in pair.values())
    held = [samples.masks, samples.params, samples.sample_case, samples.sample_start]
    if samples._frames is not None:
        held.append(samples._frames)
    return sum(t.nbytes for t in held)


# ---------------------------------------------------------------------------- agreement
def check_agreement(dataset: StoredDataset) -> int:
    """Abort unless both loaders hold the same samples in the same (case, frame) order; returns their count."""
    ours = AutoregressiveDataset(dataset, "train", DEFAULTS.input_frames, DEFAULTS.stride, PREDICTED_FIELDS)
    pairs = reference_pairs(dataset)
    if len(ours) != len(pairs):
        sys.exit(f"ABORT: {len(ours)} samples in our loader, {len(pairs)} in the reference")
    batch = ours[list(range(len(ours)))]
    worst = max(
        (batch[key] - torch.stack([pair[key] for pair in pairs])).abs().max().item()
        for key in ("input", "target", "mask", "params")
    )
    print(f"agreement check ({len(pairs)} training samples): max |difference| = {worst:.3e}")
    if not worst <= AGREEMENT_TOLERANCE:
        sys.exit(f"ABORT: the loaders' samples differ by {worst:.3e} > {AGREEMENT_TOLERANCE:g}")
    return len(pairs)


# ---------------------------------------------------------------------------- one loader (child process)
def proc_status_bytes(key: str) -> int | None:
    """A ``/proc/self/status`` memory line (``VmRSS``: resident now, ``VmHWM``: peak) in bytes; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> None:
    """Lower this process's peak-RSS mark (``VmHWM``) to its current RSS (Linux >= 4.0), when allowed.

    Without the reset the peak-RSS baseline is the import peak, which hides increases smaller
    than the import transient. (``ru_maxrss`` is unusable here: a child started by fork/exec
    inherits its parent's maximum, so it starts at the parent's size.)
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def run_epochs(loader: Iterable, epochs: int, max_batches: int | None) -> int:
    """Draw every batch of ``epochs`` epochs (or ``max_batches`` per epoch); returns the samples drawn."""
    drawn = 0
    for _ in range(epochs):
        for batch in itertools.islice(loader, max_batches):
            drawn += len(batch["target"])
    return drawn


def samples_per_second(loader: Iterable, quick: bool) -> tuple[float, int]:
    """Median samples/s over timed repeats after a warm-up epoch; also the epochs per repeat.

    Full mode: 5 repeats of whole epochs, as many as make a repeat last about a second.
    ``--quick``: 3 repeats of 3 batches.
    """
    max_batches = 3 if quick else None
    start = time.perf_counter()
    run_epochs(loader, 1, max_batches)  # warm-up: first calls, allocator, page cache
    epochs = 1 if quick else max(1, math.ceil(1.0 / (time.perf_counter() - start)))
    rates = []
    for _ in range(3 if quick else 5):
        start = time.perf_counter()
        drawn = run_epochs(loader, epochs, max_batches)
        rates.append(drawn / (time.perf_counter() - start))
    return statistics.median(rates), epochs


def measure_one(name: str, path: Path, quick: bool) -> dict:
    """Build one loader in this (fresh) process and measure its build time, speed and memory."""
    dataset = open_dataset(path)
    with dataset.open_case(dataset.split("train")[0]) as case:
        case.read(PREDICTED_FIELDS, [0])  # imports and first-use set-up of the store, before the baseline
    gc.collect()
    reset_peak_rss()
    baseline_peak, baseline_now = proc_status_bytes("VmHWM"), proc_status_bytes("VmRSS")
    start = time.perf_counter()
    samples, loader = build(name, dataset)
    build_times = [time.perf_counter() - start]
    after_build = proc_status_bytes("VmRSS")
    rate, epochs = samples_per_second(loader, quick)
    peak = proc_status_bytes("VmHWM")
    payload = tensor_bytes(samples)
    del samples, loader
    for _ in range(0 if quick else 2):  # more builds for the timing only; the peak is already taken
        gc.collect()
        start = time.perf_counter()
        build(name, dataset)
        build_times.append(time.perf_counter() - start)
    return {
        "loader": name,
        "build_s": statistics.median(build_times),
        "samples_per_s": rate,
        "epochs_per_repeat": epochs,
        "peak_rss_increase": None if peak is None or baseline_peak is None else peak - baseline_peak,
        "rss_after_build": None if after_build is None or baseline_now is None else after_build - baseline_now,
        "tensor_bytes": payload,
    }


def measure_in_subprocess(name: str, path: Path, quick: bool) -> dict:
    """Run ``measure_one`` in a fresh interpreter so that peak memory is this loader's alone."""
    command = [sys.executable, str(Path(__file__).resolve()), "--only", name, "--dataset", str(path)]
    result = subprocess.run(command + (["--quick"] if quick else []), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"ABORT: measuring {name} failed:\n{result.stdout}{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_rounds(path: Path, quick: bool, rounds: int) -> list[dict]:
    """Every loader once per round, interleaved, each in a fresh process; one row per loader.

    Other processes on a shared machine slow some runs down; interleaving spreads that over
    all loaders, and the row keeps the median of the rounds plus the slowest and fastest rate.
    """
    runs: dict[str, list[dict]] = {name: [] for name in LOADERS}
    for round_number in range(1, rounds + 1):
        for name in LOADERS:
            print(f"round {round_number}/{rounds}: measuring {name} in a fresh process ...", flush=True)
            runs[name].append(measure_in_subprocess(name, path, quick))
    return [combine(results) for results in runs.values()]


def combine(results: list[dict]) -> dict:
    """Median over rounds of every measured number; also the rate's range."""
    row = dict(results[0])
    for key in ("build_s", "samples_per_s", "peak_rss_increase", "rss_after_build"):
        values = [r[key] for r in results if r[key] is not None]
        row[key] = statistics.median(values) if values else None
    rates = [r["samples_per_s"] for r in results]
    row["rate_range"] = (min(rates), max(rates))
    return row


# ---------------------------------------------------------------------------- report
def thread_env() -> str:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return ", ".join(f"{name}={os.environ.get(name, '(unset)')}" for name in names)


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f}"


def table(rows: list[dict]) -> list[str]:
    """Markdown table rows; ratios are against the reference row."""
    ref = next(r for r in rows if r["loader"] == "reference")
    lines = [
        "| loader | build (s) | samples/s | (range over rounds) | speed / reference | peak RSS increase (MiB) "
        "| memory / reference | RSS held after build (MiB) | tensor payload (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        memory = (
            "n/a"
            if None in (r["peak_rss_increase"], ref["peak_rss_increase"])
            else (f"{r['peak_rss_increase'] / max(ref['peak_rss_increase'], 1):.2f}")
        )
        lines.append(
            f"| {r['loader']} | {r['build_s']:.3f} | {r['samples_per_s']:,.0f} "
            f"| {r['rate_range'][0]:,.0f}-{r['rate_range'][1]:,.0f} | {r['samples_per_s'] / ref['samples_per_s']:.2f} "
            f"| {mib(r['peak_rss_increase'])} | {memory} | {mib(r['rss_after_build'])} | {mib(r['tensor_bytes'])} |"
        )
    return lines


def report(rows: list[dict], context: dict, quick: bool, rounds: int) -> str:
    """The Markdown document: environment, dataset, table, notes."""
    header = [
        f"# Training loader: cfdbench AutoregressiveDataset vs a CFDBench-style materialised loader, batch {BATCH_SIZE}",
        "",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores); load average (1, 5, 15 min) at the start "
        f"{context['load_start']}, at the end {load_average()}",
        f"- torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"Python {platform.python_version()}",
        f"- env: {thread_env()}",
        f"- dataset: {context['name']} ({context['path']}), {context['disk_mib']:.1f} MiB on disk; "
        f"train split {context['cases']} cases, {context['samples']} samples of "
        f"{context['shape'][0]}x{context['shape'][1]}, fields {', '.join(PREDICTED_FIELDS)}, "
        f"input_frames={DEFAULTS.input_frames}, stride={DEFAULTS.stride}",
        f"- mode: {'--quick (3 batches per repeat)' if quick else 'full'}, {rounds} round(s); {time.strftime('%Y-%m-%d %H:%M')}",
        "",
    ]
    epochs = ", ".join(f"{r['loader']} {r['epochs_per_repeat']}" for r in rows)
    notes = [
        "",
        "What is measured, each loader in a fresh Python process, once per round, the rounds interleaved",
        "(ours, ours-lazy, reference, ours, ...) so that load from other processes falls on all of",
        "them; the table gives the median over rounds, and the slowest and fastest round's samples/s.",
        "",
        "- **build**: constructing the loader from the stored dataset (opening the cases, reading",
        "  parameters, normalisation; for `ours` the frame cache, for `reference` the pair list),",
        "  files already in the page cache. Median of 3 builds (1 with `--quick`).",
        f"- **samples/s**: shuffled training batches of {BATCH_SIZE} drawn from the loader and nothing else",
        "  done with them (no model), median of 5 timed repeats of whole epochs after one warm-up",
        f"  epoch (epochs per repeat, sized to ~1 s: {epochs}). Speed ratio > 1: faster than the reference.",
        "- **peak RSS increase**: the process's peak resident memory (`VmHWM`) over the build and all",
        "  timed epochs minus its resident memory (`VmRSS`) after imports and opening the dataset, the",
        "  peak mark having been reset there (`/proc/self/clear_refs`). RSS, not tracemalloc, because",
        "  numpy, torch and h5py allocate outside Python's allocator; not `ru_maxrss`, which a child",
        "  inherits from the parent that started it. It includes transient copies made while",
        "  building. Memory ratio < 1: less than the reference.",
        "- **RSS held after build**: `VmRSS` right after the build minus `VmRSS` at the baseline; it",
        "  includes memory freed by the build but kept by the C allocator.",
        "- **tensor payload**: bytes of the tensors kept between batches (frames, masks, parameters,",
        "  index tensors), without Python object overhead.",
        "",
        "`ours` is `AutoregressiveDataset(dataset, 'train', 1, 1, ('u', 'v'))` and its `.loader()` exactly",
        "as `pipeline.train_stage` builds it; its default cache mode (`cache=None`) holds every frame",
        "of the split once, normalised, when it fits in 4 GiB, and gathers a batch by one indexing",
        "step. `ours-lazy` is the same with `cache=False`: every batch reads its frames from the",
        "HDF5 files. `reference` reads every case whole, then keeps one `{input, target, mask,",
        "params}` dict of separate float32 tensors per (t -> t+1) pair in a Python list (each inner",
        "frame stored twice, the mask once per pair), behind `DataLoader(batch_size=128,",
        "shuffle=True)` with the default collate, as CFDBench's auto-regressive datasets do. Both",
        "were checked to give identical normalised samples before timing. Other processes may",
        "have shared the CPU (see the load average).",
    ]
    return "\n".join(header + table(rows) + notes) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def dataset_context(path: Path, samples: int) -> dict:
    """Dataset facts for the report header."""
    dataset = open_dataset(path)
    train = dataset.split("train")
    with dataset.open_case(train[0]) as case:
        shape = tuple(case.shape)
    return {
        "name": dataset.name,
        "path": str(path),
        "disk_mib": disk_bytes(path) / 2**20,
        "cases": len(train),
        "samples": samples,
        "shape": shape,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cavity-mini", help="dataset name or folder (default: cavity-mini)")
    parser.add_argument("--quick", action="store_true", help="3 batches per timed repeat, one build")
    parser.add_argument("--rounds", type=int, help="fresh-process runs per loader, interleaved (default 3, 1 with --quick)")
    parser.add_argument("--only", choices=LOADERS, help="(internal) measure one loader and print JSON")
    parser.add_argument(
        "--scratch",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cfdbench-bench-data",
        help="where to generate the dataset when it is not finished under the data root",
    )
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure_one(args.only, Path(args.dataset), args.quick)))
        return
    path = locate_dataset(args.dataset, args.scratch)
    load_start = load_average()
    samples = check_agreement(open_dataset(path))
    rounds = args.rounds or (1 if args.quick else 3)
    rows = measure_rounds(path, args.quick, rounds)
    text = report(rows, {**dataset_context(path, samples), "load_start": load_start}, args.quick, rounds)
    print()
    print(text)
    target = result_path(RESULTS, args.quick)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, text)
    print(f"written to {target}")


if __name__ == "__main__":
    main()
