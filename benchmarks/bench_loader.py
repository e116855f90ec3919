"""Training-loader throughput and memory: cfdbench's AutoregressiveDataset (in-memory cache, lazy,
lazy with 2 worker processes, lazy from a loopback S3 server) vs plain per-sample h5py reads and a
CFDBench-style loader, and the peak memory of a split 4x larger than the cache budget.

Usage: ``python benchmarks/bench_loader.py [--dataset cavity-mini] [--quick]``

1. Finds the dataset (a folder, or a name under ``CFDBENCH_DATA``/``./data``). When it is not
   there, or not finished (no ``manifest.json``: another process may be writing it), it is
   generated with ``cfdbench.pipeline.ensure_dataset`` into a scratch folder of this benchmark
   (``--scratch``, default ``$TMPDIR/cfdbench-bench-data``); nothing under ``./data`` is touched.
2. Checks that both loaders give the same normalised samples (input, target, mask, params)
   for the whole training split; aborts otherwise, because a speed ratio between loaders that
   produce different data means nothing.
3. Runs each loader in a fresh Python process (``--only NAME``, one torch thread) so that its
   memory is its own, once per round (3 rounds, the loaders alternated within each; 1 with
   ``--quick``), keeping the median over rounds: ``ours`` (``AutoregressiveDataset`` as
   ``train_stage`` builds it, default cache mode, which is the in-memory cache when the split
   fits in 4 GiB), ``ours-lazy`` (``cache=False``: frames read from disk per batch),
   ``ours-lazy-2-workers`` (the same read by 2 ``--num-workers`` processes), ``ours-lazy-s3``
   (the same from ``s3://`` on moto's S3 server on 127.0.0.1, each round from an empty cache),
   ``h5py-per-sample`` (a plain ``Dataset`` reading each sample's two frames with h5py from files
   kept open, default collate) and ``reference`` (every (input, target) pair materialised in a
   list, then a plain ``DataLoader`` with the default collate, as CFDBench does). Each process
   records the time to build its loader, the first (warm-up) epoch, then training samples per
   second at batch 128 with shuffling, over whole epochs after that (median of timed repeats;
   ``--quick``: a few batches), and its peak resident memory above the baseline after imports.
   ``bounded-memory`` runs the default loader on a split 16x this one (links to its cases) with
   ``max_cache_bytes`` a quarter of that split, and records its peak memory against that budget
   plus the batches. ``2x-ours-lazy`` runs two lazy loaders in two processes at once: what this
   machine gives two readers, the ceiling of 2 workers.
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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from cfdbench.data.loader import AutoregressiveDataset, FieldScaler, ParameterScaler
from cfdbench.data.resolve import dataset_folder, open_dataset
from cfdbench.data.view import StoredDataset
from cfdbench.entries.entry import cpu_model
from cfdbench.pipeline import PLANAR_FIELDS as PREDICTED_FIELDS
from cfdbench.pipeline import ensure_dataset
from cfdbench.training.trainer import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import result_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "loader.md"
LOADERS = ("ours", "ours-lazy", "ours-lazy-2-workers", "h5py-per-sample", "reference", "ours-lazy-s3")
PAIR_RUN = "2x-ours-lazy"  # two independent lazy processes at once: the machine's ceiling for 2 workers
MEMORY_RUN = "bounded-memory"  # the default loader with a cache budget a quarter of the split
S3_URL_ENV = "BENCH_LOADER_S3_URL"  # set by the parent for the S3 rows
BATCH_SIZE = 128
AGREEMENT_TOLERANCE = 1e-6
DEFAULTS = TrainConfig()  # input_frames = stride = 1, seed 0: what train_stage uses for CFDBench's task


# ---------------------------------------------------------------------------- dataset
def locate_dataset(name: str, scratch: Path) -> Path:
    """The folder of a finished dataset: as given, else in ``scratch``, else generated into ``scratch``."""
    given = dataset_folder(name)
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
def build_ours(
    dataset: StoredDataset, cache: bool | None, workers: int = 0, max_cache_bytes: int | None = None
) -> tuple[AutoregressiveDataset, Iterable]:
    """Our training loader, constructed exactly as ``pipeline.train_stage`` and ``trainer.train`` do."""
    budget = {} if max_cache_bytes is None else {"max_cache_bytes": max_cache_bytes}
    samples = AutoregressiveDataset(
        dataset, "train", DEFAULTS.input_frames, DEFAULTS.stride, PREDICTED_FIELDS, cache=cache, **budget
    )
    return samples, samples.loader(BATCH_SIZE, shuffle=True, seed=DEFAULTS.seed, num_workers=workers, lend=True)


class H5pyPerSample(torch.utils.data.Dataset):
    """The plain way: one sample per ``__getitem__``, its input and target frames read with h5py
    (files kept open), normalised and masked in NumPy; batches by the default collate."""

    def __init__(self, dataset: StoredDataset):
        import h5py

        self.case_ids = dataset.split("train")
        self.files = [h5py.File(dataset.case_path(c), "r") for c in self.case_ids]
        self.masks = [np.ascontiguousarray(f["t0_fields/mask"][0].T, dtype=np.float32) for f in self.files]
        raw = [[float(f.attrs[name]) for name in f.attrs["simulation_parameters"]] for f in self.files]
        self.params = ParameterScaler.fit(np.asarray(raw)).transform(np.asarray(raw))
        scaler = FieldScaler.from_stats(dataset.stats, PREDICTED_FIELDS)
        self.mean, self.std = scaler.mean.numpy()[:, None, None], scaler.std.numpy()[:, None, None]
        self.index = [(c, t) for c, f in enumerate(self.files) for t in range(f["t1_fields/velocity"].shape[1] - 1)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        case, t = self.index[i]
        frames = self.files[case]["t1_fields/velocity"][0, t : t + 2]  # (2, x, y, (u, v))
        frames = (frames.transpose(0, 3, 2, 1) - self.mean) / self.std * self.masks[case]  # (2, C, y, x)
        return {
            "input": torch.from_numpy(frames[0].astype(np.float32)),
            "target": torch.from_numpy(frames[1].astype(np.float32)),
            "mask": torch.from_numpy(self.masks[case][None]),
            "params": self.params[case],
        }


def build_h5py(dataset: StoredDataset) -> tuple[H5pyPerSample, Iterable]:
    samples = H5pyPerSample(dataset)
    generator = torch.Generator().manual_seed(DEFAULTS.seed)
    return samples, torch.utils.data.DataLoader(samples, batch_size=BATCH_SIZE, shuffle=True, generator=generator)


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


def build(name: str, where: str) -> tuple[object, Iterable]:
    """(sample container, loader) for one of ``LOADERS``, from opening the dataset (a folder or URL) on."""
    dataset = open_dataset(where)
    if name == "ours":
        return build_ours(dataset, cache=None)
    if name in ("ours-lazy", "ours-lazy-s3"):
        return build_ours(dataset, cache=False)
    if name == "ours-lazy-2-workers":
        return build_ours(dataset, cache=False, workers=2)
    if name == "h5py-per-sample":
        return build_h5py(dataset)
    if name == "reference":
        return build_reference(dataset)
    if name == MEMORY_RUN:
        return build_ours(dataset, cache=None, max_cache_bytes=split_bytes(dataset) // 4)
    raise ValueError(f"unknown loader {name}; choose from {LOADERS}")


def split_bytes(dataset: StoredDataset) -> int:
    """Bytes of the training split's frames as the loader would cache them (float32, the predicted fields)."""
    total = 0
    for case_id in dataset.split("train"):
        with dataset.open_case(case_id) as case:
            total += 4 * len(PREDICTED_FIELDS) * case.n_frames * int(np.prod(case.shape))
    return total


def batch_bytes(samples: AutoregressiveDataset) -> int:
    """Bytes of one batch's tensors: input, target, mask, params and indices."""
    batch = samples[list(range(min(BATCH_SIZE, len(samples))))]
    return sum(t.nbytes for t in batch.values())


def tensor_bytes(samples: object) -> int:
    """Bytes of the tensors a loader keeps between batches (its payload, without Python overhead)."""
    if isinstance(samples, PairListDataset):
        return sum(t.nbytes for pair in samples.pairs for t in pair.values())
    if isinstance(samples, H5pyPerSample):
        return sum(m.nbytes for m in samples.masks) + samples.params.nbytes
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
    plain = build_h5py(dataset)[0]
    worst = max(
        worst,
        *(
            (batch[key] - torch.stack([plain[i][key] for i in range(len(plain))])).abs().max().item()
            for key in ("input", "target", "mask", "params")
        ),
    )
    print(f"agreement check ({len(pairs)} training samples, 3 loaders): max |difference| = {worst:.3e}")
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


def samples_per_second(loader: Iterable, quick: bool) -> tuple[float, int, float]:
    """Median samples/s over timed repeats after a warm-up epoch; also the epochs per repeat and
    the warm-up epoch's seconds (the first epoch: cold caches, workers starting, fetches).

    Full mode: 5 repeats of whole epochs, as many as make a repeat last about a second.
    ``--quick``: 3 repeats of 3 batches.
    """
    max_batches = 3 if quick else None
    start = time.perf_counter()
    run_epochs(loader, 1, max_batches)  # warm-up: first calls, allocator, page cache
    first_epoch = time.perf_counter() - start
    epochs = 1 if quick else max(1, math.ceil(1.0 / first_epoch))
    rates = []
    for _ in range(3 if quick else 5):
        start = time.perf_counter()
        drawn = run_epochs(loader, epochs, max_batches)
        rates.append(drawn / (time.perf_counter() - start))
    return statistics.median(rates), epochs, first_epoch


def measure_one(name: str, path: Path, quick: bool) -> dict:
    """Build one loader in this (fresh) process and measure its build time, speed and memory."""
    torch.set_num_threads(1)
    where = os.environ[S3_URL_ENV] if name == "ours-lazy-s3" else str(path)
    dataset = open_dataset(path)  # the local copy: imports and first-use set-up of the store, before the baseline
    with dataset.open_case(dataset.split("train")[0]) as case:
        case.read(PREDICTED_FIELDS, [0])
    if name == "ours-lazy-s3":
        import s3fs  # noqa: F401

        import cfdbench.data.remote  # noqa: F401 - the S3 driver's imports too
    gc.collect()
    reset_peak_rss()
    baseline_peak, baseline_now = proc_status_bytes("VmHWM"), proc_status_bytes("VmRSS")
    start = time.perf_counter()
    samples, loader = build(name, where)
    build_times = [time.perf_counter() - start]
    after_build = proc_status_bytes("VmRSS")
    rate, epochs, first_epoch = samples_per_second(loader, quick)
    peak = proc_status_bytes("VmHWM")
    payload = tensor_bytes(samples)
    memory = memory_budget(samples, path) if name == MEMORY_RUN else {}
    del samples, loader
    for _ in range(0 if quick or name == "ours-lazy-s3" else 2):  # more builds for the timing only; the peak is already taken
        gc.collect()
        start = time.perf_counter()
        build(name, where)
        build_times.append(time.perf_counter() - start)
    return {
        "loader": name,
        "build_s": statistics.median(build_times),
        "first_epoch_s": build_times[0] + first_epoch,
        "samples_per_s": rate,
        "epochs_per_repeat": epochs,
        **memory,
        "peak_rss_increase": None if peak is None or baseline_peak is None else peak - baseline_peak,
        "rss_after_build": None if after_build is None or baseline_now is None else after_build - baseline_now,
        "tensor_bytes": payload,
    }


def memory_budget(samples: AutoregressiveDataset, path: Path) -> dict:
    """The bounded-memory run's budget: the cache limit it was given and one batch's bytes."""
    return {
        "split_bytes": split_bytes(open_dataset(path)),
        "cache_budget": split_bytes(open_dataset(path)) // 4,
        "cached": bool(samples.cached),
        "batch_bytes": batch_bytes(samples),
    }


def measure_in_subprocess(name: str, path: Path, quick: bool, env: dict[str, str] | None = None) -> dict:
    """Run ``measure_one`` in a fresh interpreter (one torch thread) so that peak memory is this loader's alone."""
    command = [sys.executable, str(Path(__file__).resolve()), "--only", name, "--dataset", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run(command + (["--quick"] if quick else []), capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"ABORT: measuring {name} failed:\n{result.stdout}{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


MEMORY_COPIES = 16  # the bounded-memory run's split: this many links to each training case
FEW_BATCHES = 4  # "the cache plus a few batches": the batch in use, the reader's buffers, the next


def scaled_copy(path: Path, copies: int, scratch: Path) -> Path:
    """A dataset whose training split is ``copies`` times the given one: symbolic links to its
    training cases under new ids, its statistics, and a split listing them (the memory run reads
    the split's frames through the lazy reader, so the same page-cached bytes serve every copy)."""
    dataset = open_dataset(path)
    target = scratch / f"{dataset.name}-x{copies}"
    shutil.rmtree(target, ignore_errors=True)
    (target / "cases").mkdir(parents=True)
    ids = []
    for case_id in dataset.split("train"):
        source = dataset.case_path(case_id)
        for copy in range(copies):
            ids.append(f"{case_id}-c{copy:02d}")
            (target / "cases" / f"{ids[-1]}{source.suffix}").symlink_to(source.resolve())
    shutil.copyfile(path / "stats.yaml", target / "stats.yaml")
    splits = {"schema_version": "1.0", "seed": 0, "fractions": {"train": 1.0, "valid": 0.0, "test": 0.0}}
    (target / "splits.json").write_text(json.dumps({**splits, "splits": {"train": sorted(ids), "valid": [], "test": []}}))
    return target


def measure_rounds(path: Path, quick: bool, rounds: int, s3_env: dict[str, str] | None, scaled: Path) -> list[dict]:
    """Every loader once per round, interleaved, each in a fresh process; one row per loader.

    Other processes on a shared machine slow some runs down; interleaving spreads that over
    all loaders, and the row keeps the median of the rounds plus the slowest and fastest rate.
    The S3 loader starts every round from an empty cache (its first epoch fetches the split).
    """
    names = [*(n for n in LOADERS if n != "ours-lazy-s3" or s3_env), PAIR_RUN, MEMORY_RUN]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for round_number in range(1, rounds + 1):
        for name in names:
            print(f"round {round_number}/{rounds}: measuring {name} in a fresh process ...", flush=True)
            if name == PAIR_RUN:
                runs[name].append(measure_pair(path, quick))
                continue
            env = None
            if name == "ours-lazy-s3":
                env = {
                    **{k: v for k, v in s3_env.items() if k != "raw_seconds"},
                    "CFDBENCH_CACHE": tempfile.mkdtemp(prefix="cfdbench-bench-cache-"),
                }
            runs[name].append(measure_in_subprocess(name, scaled if name == MEMORY_RUN else path, quick, env))
            if env:
                shutil.rmtree(env["CFDBENCH_CACHE"], ignore_errors=True)
    return [combine(results) for results in runs.values()]


def raw_download_seconds(url: str, dataset: StoredDataset) -> float:
    """Seconds to GET the training split's case objects from the server, all at once through s3fs
    (median of 3): how fast this server hands out those bytes at all."""
    from cfdbench.data.remote import filesystem

    fs, root = filesystem(url)
    objects = [f"{root}/{dataset.case_path(c).relative_to(dataset.path).as_posix()}" for c in dataset.split("train")]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fs.cat(objects)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_pair(path: Path, quick: bool) -> dict:
    """Two independent lazy loaders in two processes at once, their samples/s summed: what this
    machine gives two processes that read at the same time, the ceiling of 2 workers."""
    command = [sys.executable, str(Path(__file__).resolve()), "--only", "ours-lazy", "--dataset", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pair = [
        subprocess.Popen(command + (["--quick"] if quick else []), stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    results = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in pair]
    return {
        **results[0],
        "loader": PAIR_RUN,
        "samples_per_s": sum(r["samples_per_s"] for r in results),
        "peak_rss_increase": None,
    }


@contextmanager
def loopback_s3(path: Path) -> Iterator[dict[str, str] | None]:
    """moto's S3 server on 127.0.0.1 holding the dataset (pushed with ``data push``'s code); the
    environment that points the S3 driver at it, or None when moto or s3fs is not installed."""
    try:
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError:
        print("moto[server] or s3fs not installed: no S3 row")
        yield None
        return
    import logging

    from cfdbench.data.remote import filesystem, push_dataset

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",
        S3_URL_ENV: f"s3://bench-loader/{path.name}",
    }
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        fs, _ = filesystem("s3://bench-loader")
        fs.mkdir("bench-loader")
        push_dataset(path, env[S3_URL_ENV])
        yield {**env, "raw_seconds": raw_download_seconds(env[S3_URL_ENV], open_dataset(path))}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def combine(results: list[dict]) -> dict:
    """Median over rounds of every measured number; also the rate's range."""
    row = dict(results[0])
    for key in ("build_s", "first_epoch_s", "samples_per_s", "peak_rss_increase", "rss_after_build"):
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


LABELS = {
    "ours": "cfdbench, in-memory cache (default)",
    "ours-lazy": "cfdbench, lazy (`cache=False`)",
    "ours-lazy-2-workers": "cfdbench, lazy, `--num-workers 2`",
    "ours-lazy-s3": "cfdbench, lazy, from loopback S3 (empty cache)",
    "h5py-per-sample": "plain per-sample h5py reads",
    "reference": "CFDBench-style materialised pairs",
    PAIR_RUN: "two independent lazy processes at once (sum)",
}


def table(rows: list[dict]) -> list[str]:
    """Markdown table rows; speed ratios are against the in-memory cache and the reference."""
    by_name = {r["loader"]: r for r in rows}
    cache, ref = by_name["ours"], by_name["reference"]
    lines = [
        "| loader | build (s) | first epoch, build included (s) | samples/s (later epochs) | (range over rounds) "
        "| / cache | / reference | peak RSS increase (MiB) | RSS held after build (MiB) | tensor payload (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["loader"] == MEMORY_RUN:
            continue
        lines.append(
            f"| {LABELS[r['loader']]} | {r['build_s']:.3f} | {r['first_epoch_s']:.3f} | {r['samples_per_s']:,.0f} "
            f"| {r['rate_range'][0]:,.0f}-{r['rate_range'][1]:,.0f} | {r['samples_per_s'] / cache['samples_per_s']:.3f} "
            f"| {r['samples_per_s'] / ref['samples_per_s']:.3f} | {mib(r['peak_rss_increase'])} | {mib(r['rss_after_build'])} "
            f"| {mib(r['tensor_bytes'])} |"
        )
    return lines


def targets(rows: list[dict], samples: int, raw_seconds: float | None = None) -> list[str]:
    """The issue's targets, each with the measured ratio and whether it is met."""
    by_name = {r["loader"]: r for r in rows}
    lazy = by_name["ours-lazy"]

    def line(what: str, value: float, goal: str, met: bool) -> str:
        return f"| {what} | {value:.2f} | {goal} | {'met' if met else '**not met**'} |"

    lines = ["| target | measured | goal | |", "|---|---:|---|---|"]
    ratio = lazy["samples_per_s"] / by_name["ours"]["samples_per_s"]
    lines.append(line("lazy / in-memory cache, samples/s", ratio, ">= 0.2", ratio >= 0.2))
    ratio = lazy["samples_per_s"] / by_name["h5py-per-sample"]["samples_per_s"]
    lines.append(line("lazy / plain per-sample h5py, samples/s", ratio, ">= 1", ratio >= 1))
    ratio = by_name["ours-lazy-2-workers"]["samples_per_s"] / lazy["samples_per_s"]
    lines.append(line("lazy with 2 workers / lazy without, samples/s", ratio, ">= 1.5", ratio >= 1.5))
    ceiling = by_name[PAIR_RUN]["samples_per_s"] / lazy["samples_per_s"]
    lines.append(f"| (this machine's ceiling: two independent lazy processes / one) | {ceiling:.2f} | | |")
    if "ours-lazy-s3" in by_name:
        s3 = by_name["ours-lazy-s3"]
        ratio = lazy["first_epoch_s"] / s3["first_epoch_s"]  # same samples: the ratio of their rates
        lines.append(line("S3 first epoch / local lazy first epoch, samples/s (build included)", ratio, ">= 0.3", ratio >= 0.3))
        if raw_seconds:
            lines.append(
                f"| (the server's ceiling: GET of the split's objects alone, {raw_seconds:.3f} s, against the S3 first "
                f"epoch's {s3['first_epoch_s']:.3f} s) | {raw_seconds / s3['first_epoch_s']:.2f} | | |"
            )
        ratio = s3["samples_per_s"] / lazy["samples_per_s"]
        lines.append(
            line("S3 later epochs / local lazy, samples/s", ratio, "= 1 (within the rounds' spread)", _overlap(s3, lazy))
        )
    memory = by_name[MEMORY_RUN]
    if memory["peak_rss_increase"] is not None:
        bound = memory["cache_budget"] + FEW_BATCHES * memory["batch_bytes"]
        lines.append(
            f"| peak RSS increase (MiB), split {mib(memory['split_bytes'])} MiB ({MEMORY_COPIES}x this one's) = 4x the cache "
            f"budget (so {'cached' if memory['cached'] else 'lazy'}) | {mib(memory['peak_rss_increase'])} | <= budget "
            f"{mib(memory['cache_budget'])} + {FEW_BATCHES} batches of {mib(memory['batch_bytes'])} = {mib(bound)} | "
            f"{'met' if memory['peak_rss_increase'] <= bound else '**not met**'} |"
        )
    return lines


def _overlap(a: dict, b: dict) -> bool:
    """Whether two rows' ranges of samples/s over the rounds overlap (equal within the noise)."""
    return a["rate_range"][0] <= b["rate_range"][1] and b["rate_range"][0] <= a["rate_range"][1]


def report(rows: list[dict], context: dict, quick: bool, rounds: int) -> str:
    """The Markdown document: environment, dataset, table, targets, notes."""
    header = [
        f"# Training loader: cfdbench AutoregressiveDataset (cache, lazy, workers, S3) vs per-sample h5py "
        f"and a CFDBench-style loader, batch {BATCH_SIZE}",
        "",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores); load average (1, 5, 15 min) at the start "
        f"{context['load_start']}, at the end {load_average()}",
        f"- torch {torch.__version__} (1 thread per process), numpy {np.__version__}, Python {platform.python_version()}",
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
        "What is measured, each loader in a fresh Python process with one torch thread, once per round,",
        "the loaders alternated within each round (A B C ... A B C ...) so that load from other",
        "processes falls on all of them; the table gives the median over rounds, and the slowest and",
        "fastest round's samples/s. Files are in the page cache (read before), except the S3 row's,",
        "which come from the server through an empty local cache in every round.",
        "",
        "- **build**: opening the dataset and constructing the loader (cases' metadata and parameters,",
        "  normalisation; for `ours` the frame cache, for `reference` the pair list; for S3 the",
        "  manifest and every training case fetched and verified). Median of 3 builds (1 with",
        "  `--quick`, and 1 for S3: later builds would find the cache filled).",
        "- **first epoch, build included**: build plus the first (warm-up) epoch: what a training",
        "  run waits for before its second epoch; workers start here.",
        f"- **samples/s**: shuffled training batches of {BATCH_SIZE} drawn from the loader and nothing else",
        "  done with them (no model), median of 5 timed repeats of whole epochs after the warm-up",
        f"  epoch (epochs per repeat, sized to ~1 s: {epochs}).",
        "- **peak RSS increase**: the process's peak resident memory (`VmHWM`) over the build and all",
        "  timed epochs minus its resident memory (`VmRSS`) after imports and opening the dataset, the",
        "  peak mark having been reset there (`/proc/self/clear_refs`). Worker processes' memory is",
        "  their own and not included.",
        "- **RSS held after build**, **tensor payload**: resident memory right after the build, and",
        "  the bytes of the tensors a loader keeps between batches.",
        "",
        "`ours` is `AutoregressiveDataset(dataset, 'train', 1, 1, ('u', 'v'))` and its `.loader()` exactly",
        "as `pipeline.train_stage` builds it (default `cache=None`: the whole split in memory when it",
        "fits in `max_cache_bytes`, 4 GiB). `ours-lazy` is the same with `cache=False`: every batch",
        "reads its frames from the case files (`FrameReader`). `--num-workers 2` reads the same",
        "batches in 2 worker processes. `plain per-sample h5py` reads each sample's two frames with",
        "h5py from files kept open and collates 128 samples; `reference` materialises every pair in",
        "a list, as CFDBench's auto-regressive datasets do. The cache, lazy, h5py and reference",
        "loaders were checked to give identical normalised samples before timing.",
    ]
    return (
        "\n".join(
            header + table(rows) + ["", "Targets:", ""] + targets(rows, context["samples"], context.get("raw_s3_seconds")) + notes
        )
        + "\n"
    )


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
    parser.add_argument("--only", choices=[*LOADERS, MEMORY_RUN], help="(internal) measure one loader and print JSON")
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
    scaled = scaled_copy(path, MEMORY_COPIES, args.scratch)
    with loopback_s3(path) as s3_env:
        rows = measure_rounds(path, args.quick, rounds, s3_env, scaled)
    context = {**dataset_context(path, samples), "load_start": load_start, "raw_s3_seconds": (s3_env or {}).get("raw_seconds")}
    text = report(rows, context, args.quick, rounds)
    print()
    print(text)
    target = result_path(RESULTS, args.quick)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, text)
    print(f"written to {target}")


if __name__ == "__main__":
    main()
