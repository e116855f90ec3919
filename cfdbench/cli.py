"""The ``cfdbench`` command line.

Errors in the user's input or environment print one readable line and exit with status 2
(a traceback only with ``--debug``); Ctrl-C exits with 130 after atomic writes have left
only complete files behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from cfdbench.errors import CfdbenchError, UnknownNameError

app = typer.Typer(
    help="cfdbench: verified CFD data, neural-operator training and honest rollout benchmarks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Generate, inspect and list datasets.", no_args_is_help=True)
leaderboard_app = typer.Typer(help="Submit, verify, build and publish leaderboard entries.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(leaderboard_app, name="leaderboard")

def _console(stderr: bool = False) -> Console:
    """Rich console; off a terminal (a pipe, a log file) tables are not cut at 80 columns."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, width=width)


console = _console()
err_console = _console(stderr=True)
_state = {"debug": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


def _generation_progress():
    """A rich progress display and the callback that drives it, one bar per stage: a 2D dataset's
    cases, or a channel DNS's stages (spin-up, trajectories) in units of δ/u_τ."""
    progress = Progress(
        TextColumn("[bold]generate[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, done: float, total: float | None) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage if stage == "cases" else f"{stage} (δ/u_τ)", total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return progress, update


# --------------------------------------------------------------------------- data


@data_app.command("generate")
def data_generate(
    name: str = typer.Argument(..., help="Dataset card name (see `cfdbench data list`) or a card .yaml path."),
    subset: str = typer.Option("all", help="Sweep to generate: bc, prop, geo (those the card has) or all."),
    preset: str = typer.Option("paper", help="Resolution preset: paper (the card) or one the card defines, e.g. tiny."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: $CFDBENCH_DATA/<name>, else data/<name>)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Storage: hdf5 or zarr (default: hdf5; zarr for channels)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (under torchrun: each rank's local GPU)."),
    batch_size: int = typer.Option(16, help="Cases advanced together in one batch."),
    max_cases: Optional[int] = typer.Option(None, help="Only the first N cases of the sweep (quick trials)."),
    shard: Optional[str] = typer.Option(None, help="Only shard i/n of the cases (independent jobs, e.g. a SLURM array)."),
    on_diverged: str = typer.Option("stop", help="A case that blows up: stop the run, or skip it and go on."),
    compile: bool = typer.Option(
        False,
        "--compile",
        help="Fuse the solver step with torch.compile (faster; fields equal to the published bytes only to round-off).",
    ),
    zarr_shards: bool = typer.Option(
        False,
        "--zarr-shards",
        help="With --format zarr: each array one object (a few large objects per case, for object stores).",
    ),
) -> None:
    """Simulate a dataset from its card (resumes an interrupted generation).

    Runs on one process, as independent jobs with --shard i/n, or on many ranks with
    `torchrun --nproc_per_node N -m cfdbench data generate ...` (rank 0 seals the folder).
    """
    from cfdbench.pipeline.datasets import generate_data

    progress, update = _generation_progress()
    with progress:
        generated = generate_data(
            name, subset, preset, out, fmt, device, batch_size, max_cases, shard, on_diverged, compile, zarr_shards, update
        )
    report = generated.report
    if report is None:  # a torchrun rank other than 0: rank 0 reports
        return
    skipped = f", {len(report.skipped)} skipped after blowing up: {', '.join(report.skipped)}" if report.skipped else ""
    replaced = f" ({len(report.replaced)} of them failed their checksum and were simulated again)" if report.replaced else ""
    statistics = "; DNS statistics in spinup.json and statistics.json" if generated.unit == "trajectories" else ""
    console.print(
        f"[green]dataset {generated.name}[/] at {report.dataset_dir}: {len(report.generated)} {generated.unit} generated"
        f"{replaced}, {len(report.reused)} reused (checksums verified){skipped}, {report.seconds:.1f} s{statistics}"
    )


@data_app.command("download")
def data_download(
    target: str = typer.Argument(..., help="cfdbench/<problem> (cavity, tube, dam, cylinder) or cfdbench/all."),
    out: Optional[Path] = typer.Option(None, help="Folder for archives and unpacked cases (default: <data>/cfdbench-release)."),
    endpoint: Optional[str] = typer.Option(None, help="Mirror of huggingface.co (default: $CFDBENCH_HF_ENDPOINT, $HF_ENDPOINT)."),
    from_path: Optional[Path] = typer.Option(None, "--from", help="Ingest archives you already have (a .zip or a folder)."),
    retries: int = typer.Option(5, help="Retries per archive on transient failures (resumed with HTTP Range)."),
) -> None:
    """Download CFDBench's released archives, verify and unpack them (resumable; rerun after a failure)."""
    from cfdbench.pipeline.datasets import download_data

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, int] = {}

        def update(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        downloaded = download_data(target, out, endpoint, from_path, update, retries)
    for problem, (folder, counts) in downloaded.items():
        console.print(f"[green]{problem}[/] at {folder}: " + ", ".join(f"{n} {s} cases" for s, n in counts.items()))


@data_app.command("convert")
def data_convert(
    target: str = typer.Argument(..., help="cfdbench/<problem>: cavity, tube, dam or cylinder."),
    subsets: str = typer.Option("prop_bc_geo", help="CFDBench subsets joined by '_', e.g. prop_bc or geo."),
    raw: Optional[Path] = typer.Option(
        None, help="Folder with the unpacked release (default: <data>/cfdbench-release/<problem>)."
    ),
    out: Optional[Path] = typer.Option(None, help="Output dataset folder (default: <data>/cfdbench-<problem>-<subsets>)."),
    format: str = typer.Option("hdf5", help="Storage backend: hdf5 or zarr."),
    on_error: str = typer.Option("stop", help="A bad case folder: stop, or skip it (listed in the report and manifest)."),
    task: str = typer.Option(
        "autoregressive",
        help="Whose split rule: CFDBench's autoregressive or non-autoregressive loaders (differ for tube); "
        "dpot: DPOT's task, the autoregressive split with frames 0.1 s apart (docs/leaderboard.md).",
    ),
    legacy: bool = typer.Option(False, "--legacy", help="CFDBench's own 66x65 padding, masks and parameter order."),
    splits: Optional[Path] = typer.Option(
        None, help="A splits.json of <subset>/caseNNNN lists to use instead of CFDBench's (export writes one)."
    ),
) -> None:
    """Convert CFDBench's released cases into a cfdbench dataset with CFDBench's exact splits (resumable)."""
    from cfdbench.pipeline.datasets import convert_data

    out_dir, report = convert_data(target, subsets, raw, out, format, on_error, task, legacy, splits)
    for folder, why in report.skipped.items():
        console.print(f"[yellow]skipped[/] {folder}: {why}")
    console.print(
        f"[green]{out_dir.name}[/] at {out_dir}: {len(report.converted)} cases converted, {len(report.reused)} reused, "
        f"{len(report.skipped)} skipped; "
        + (f"splits from {splits}" if splits else f"CFDBench's {task} splits")
        + ("" if report.split_matches_release or splits else " (case counts differ from the release's: not the published lists)")
    )


@data_app.command("export")
def data_export(
    name: str = typer.Argument(..., help="Dataset name or folder."),
    format: str = typer.Option(..., help="cfdbench-raw (CFDBench's case folders) or the-well (The Well's layout)."),
    out: Path = typer.Option(..., help="Output folder (created; an interrupted export resumes)."),
) -> None:
    """Write a dataset in CFDBench's raw layout or The Well's layout (HDF5 schema, metadata, statistics)."""
    from cfdbench.data.export import export_dataset

    report = export_dataset(name, out, format)
    console.print(f"[green]{format}[/] at {report.out}: {len(report.written)} cases written, {len(report.reused)} kept")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)


DATASET_HELP = "Dataset name, folder, or URL (s3://bucket/name, https://..., hf://datasets/...)."


@data_app.command("info")
def data_info(name: str = typer.Argument(..., help=DATASET_HELP)) -> None:
    """Card summary, stored cases, splits, statistics, and a checksum verification."""
    from cfdbench.pipeline.datasets import inspect_dataset

    report = inspect_dataset(name)
    table = _info_table(report)
    bad = report.mismatched
    if bad is None:  # at a URL
        cached = report.cached_cases
        table.add_row("checksums", f"each case is checked against the manifest when fetched; {cached} in the cache")
        table.add_row("local cache", str(report.dataset.path))
    else:
        table.add_row("checksums", "[green]all match[/]" if not bad else f"[red]{len(bad)} mismatched: {', '.join(bad[:5])}[/]")
    table.add_row("content hash", report.content_hash + (" (of the manifest; the files differ)" if bad else ""))
    console.print(table)
    if bad:
        raise CfdbenchError(f"{len(bad)} case file(s) of {report.dataset.name} fail their checksum: {', '.join(bad[:5])}")


@data_app.command("cost")
def data_cost(
    name: str = typer.Argument(..., help="Dataset card or variant name (e.g. cavity-mini)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N: the device type the cost is recorded for."),
    max_cases: Optional[int] = typer.Option(None, help="Time only the first cases (a large dataset); default all."),
) -> None:
    """Measure the generator's cost per case (batched as `data generate` runs, from rest) and record it
    beside the card, in datasets/<card>/solver-cost.json, for the entries' speed-up."""
    from cfdbench.pipeline.datasets import record_generator_cost

    cost, path = record_generator_cost(name, device, max_cases)
    console.print(
        f"{name}: {cost['seconds_per_frame_interval']:.4g} s per case and frame interval on {cost['hardware']} "
        f"({cost['cases']} cases, batches of {cost['batch_size']}); recorded in {path}"
    )


def _info_table(report) -> Table:
    """Version, format, cases, splits, the first case's frames, grid and parameters, statistics."""
    dataset, meta = report.dataset, report.dataset.metadata
    table = Table(title=f"{dataset.name} ({report.where})", show_header=False)
    table.add_row("version", str(meta.version or "?"))
    table.add_row("format", str(meta.format or "?"))
    table.add_row("cases", str(len(dataset)))
    if meta.splits:
        table.add_row("splits", ", ".join(f"{k}: {len(meta.splits[k])}" for k in ("train", "valid", "test")))
    table.add_row("frames per case", str(report.frames_per_case))
    table.add_row("frame grid (nz, ny, nx)" if meta.n_spatial_dims == 3 else "frame grid (ny, nx)", str(meta.grid_shape))
    table.add_row("parameters", ", ".join(meta.parameter_names))
    for field, stats in (dataset.stats or {}).items():
        if isinstance(stats, dict) and "mean" in stats:
            table.add_row(f"{field} mean / std", f"{stats['mean']:.4g} / {stats['std']:.4g}")
    return table


@data_app.command("push")
def data_push(
    name: str = typer.Argument(..., help="A sealed local dataset: name or folder."),
    url: str = typer.Argument(..., help="Where to upload it: s3://bucket/prefix/name (or any writable fsspec URL)."),
) -> None:
    """Upload a sealed dataset (checked against its manifest first); the manifest goes last, so a
    half-pushed dataset is never taken for a complete one."""
    from cfdbench.pipeline.datasets import push_data

    with Progress(TextColumn("[bold]push[/]"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console) as bar:
        task = bar.add_task("push", total=None)
        dataset, sent, digest = push_data(name, url, lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"[green]pushed[/] {dataset.name} to {url}: {sent / 2**20:.1f} MiB, content hash {digest}")


@data_app.command("list")
def data_list() -> None:
    """Dataset cards and whether each has been generated here."""
    from cfdbench.pipeline.datasets import list_datasets

    table = Table("dataset", "problem", "cases", "frames", "stored at")
    for row in list_datasets():
        stored = str(row.stored_at) if row.stored_at else "[dim]not generated[/]"
        table.add_row(row.name, row.problem, str(row.cases), str(row.frames), stored)
    console.print(table)


# --------------------------------------------------------------------------- models

MODEL_HELP = "A built-in model (`cfdbench models`), an installed plug-in, module:ClassName or path/to/file.py:ClassName."


@app.command("models")
def models_list(
    dataset: str = typer.Option("cavity-mini", help="2D dataset card whose metadata sizes the 2D models (3D: channel180)."),
) -> None:
    """Built-in models and installed plug-ins: task, parameter count beside CFDBench's."""
    from cfdbench.pipeline.catalogue import model_summaries

    table = Table("model", "task", "parameters", "sized on", "CFDBench's / paper's", "builds", "source")
    for row in model_summaries(dataset):
        reference = f"{row.reference_parameter_count:,}" if row.reference_parameter_count else "-"
        table.add_row(row.name, row.task, f"{row.parameter_count:,}", row.sized_on, reference, row.build, row.source)
    console.print(table)


# --------------------------------------------------------------------------- train / evaluate / run


def _overrides(epochs, batch_size, lr, seed) -> dict:
    return {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}


NUM_WORKERS_HELP = "Processes reading the batches (0: none); the batches and their order are the same for any count."
SET_HELP = "Any model or training setting, e.g. --set training.grad_clip=1.0 --set model.modes=[12,12] (repeatable)."


def _training_flags(precision, grad_clip, early_stopping, compile_model, wandb, wandb_online) -> dict:
    """The command-line flags that map to training settings (None = keep the card's)."""
    mode = "online" if wandb_online else "offline" if wandb else None
    return {
        "precision": precision,
        "grad_clip": grad_clip,
        "early_stopping": early_stopping,
        "compile": True if compile_model else None,
        "wandb": mode,
    }


@app.command("train")
def train_command(
    model: Optional[str] = typer.Option(None, help=MODEL_HELP + " [default: fno]"),
    dataset: Optional[str] = typer.Option(None, help=DATASET_HELP + " [default: cavity-mini]"),
    epochs: Optional[int] = typer.Option(None, help="Override the model card's epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Override the (global) batch size."),
    lr: Optional[float] = typer.Option(None, help="Override the learning rate."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    precision: Optional[str] = typer.Option(None, help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16."),
    grad_clip: Optional[float] = typer.Option(None, help="Clip the gradient norm to this (0: off)."),
    early_stopping: Optional[int] = typer.Option(None, help="Stop after this many epochs without improvement (0: off)."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    wandb: bool = typer.Option(False, "--wandb", help="Log to Weights & Biases, offline (no account needed)."),
    wandb_online: bool = typer.Option(False, "--wandb-online", help="Log to Weights & Biases online."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (under torchrun: each rank's local GPU)."),
    num_workers: Optional[int] = typer.Option(None, help=NUM_WORKERS_HELP),
    run_dir: Optional[Path] = typer.Option(None, help="Output folder (default: runs/<time>-<model>-<dataset>)."),
    resume: Optional[Path] = typer.Option(
        None, help="Continue the run in this folder exactly where it stopped (its settings are kept; only --epochs may change)."
    ),
) -> None:
    """Train a model on a stored dataset; writes the best checkpoint, the full state and the history.

    Data-parallel on several processes or GPUs: `torchrun --nproc_per_node N -m cfdbench train ...`."""
    from cfdbench.pipeline.train import train_run

    overrides = _overrides(None, batch_size, lr, seed) | _training_flags(
        precision, grad_clip, early_stopping, compile_model, wandb, wandb_online
    )
    config, result, _ = train_run(model, dataset, device, overrides, set_, epochs, num_workers, run_dir, resume)
    if result is not None:
        console.print(
            f"[green]trained[/] {config.model}: best valid NMSE {result.best_valid_nmse:.4e} (epoch {result.best_epoch}), "
            f"checkpoint {result.checkpoint}"
        )


@app.command("evaluate")
def evaluate_command(
    checkpoint: Optional[Path] = typer.Option(None, help="Checkpoint written by `cfdbench train` (flows track)."),
    dataset: str = typer.Option("cavity-mini", help=DATASET_HELP),
    split: str = typer.Option("test", help="Split to score."),
    steps: int = typer.Option(20, help="Rollout steps."),
    start_frame: Optional[int] = typer.Option(None, help="First frame of the input window (default: the card's rollout start)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    run_dir: Optional[Path] = typer.Option(None, help="Output folder (default: the checkpoint's folder)."),
    num_workers: int = typer.Option(0, help=NUM_WORKERS_HELP),
    track: str = typer.Option("flows", help="flows (score a checkpoint) or linear-solvers (DCDM against CG and AMG)."),
    size: list[int] = typer.Option([16, 32, 64], "--size", help="linear-solvers: grid sizes (repeatable)."),
    train_size: int = typer.Option(32, help="linear-solvers: grid size DCDM is trained at."),
    train_steps: int = typer.Option(400, help="linear-solvers: DCDM training steps."),
    system: str = typer.Option("box", help="linear-solvers: box, cube (3D), cavity or dam systems."),
    publish: bool = typer.Option(False, help="linear-solvers: also publish the result to leaderboard/linear-solvers/."),
    memory: int = typer.Option(2, help="linear-solvers: directions DCDM keeps (the reference: 2)."),
    refine: bool = typer.Option(False, "--refine", help="sfno: also refine each test window on its Navier-Stokes residual."),
    name: Optional[str] = typer.Option(None, help="The model's name on the leaderboard (default: from the model spec)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the figures and rollout GIF (not needed for the scores)."),
) -> None:
    """Score a checkpoint: one-step and rollout metrics beside the identity baseline, the predictions they
    were computed from, plots, entry. With --track linear-solvers: iterations and time of DCDM, CG,
    Jacobi-PCG and AMG-PCG to one tolerance."""
    from cfdbench.pipeline import evaluate_checkpoint

    if track == "linear-solvers":
        _evaluate_linear_solvers(size, train_size, train_steps, system, memory, run_dir, publish)
        return
    if track != "flows":
        raise UnknownNameError("track", track, ["flows", "linear-solvers"])
    if checkpoint is None:
        raise CfdbenchError("--checkpoint is required to score a model on a flow dataset")

    folder = run_dir or checkpoint.parent
    _, entry = evaluate_checkpoint(
        checkpoint, dataset, split, steps, start_frame, device, folder, _refine_settings(refine), num_workers, name, plots=plots
    )
    _print_results(entry)
    console.print(f"entry, predictions{' and plots' if plots else ''} in {folder}")


def _evaluate_linear_solvers(
    sizes: list[int], train_size: int, train_steps: int, system: str, memory: int, run_dir: Optional[Path], publish: bool
) -> None:
    from cfdbench.tracks.linear_solvers import run_track

    result = run_track(sizes, train_size, train_steps, system, memory, run_dir, publish)
    console.print(result.table)
    trained = f"DCDM trained at size {train_size} for {train_steps} steps ({result.training_seconds:.1f} s)"
    console.print(f"{trained}; results in {result.folder}")
    if result.page is not None:
        console.print(f"published to {result.page}")


CPU_EPOCHS_NOTE = 50  # a main job with at least this many epochs on a CPU says how to shorten it


@app.command("run")
def run_command(
    model: str = typer.Option("fno", help=MODEL_HELP),
    dataset: str = typer.Option(
        "cavity-mini", help="Dataset card name (generated if missing), folder, or URL (s3://bucket/name, ...)."
    ),
    epochs: Optional[int] = typer.Option(None, help="Override the model card's epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Override the batch size."),
    lr: Optional[float] = typer.Option(None, help="Override the learning rate."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    steps: int = typer.Option(20, help="Rollout steps."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    runs_root: Path = typer.Option(Path("runs"), help="Folder for run folders."),
    num_workers: Optional[int] = typer.Option(None, help=NUM_WORKERS_HELP),
    publish: bool = typer.Option(False, help="Also submit the entry to leaderboard/entries/<dataset>/."),
    precision: Optional[str] = typer.Option(None, help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16."),
    wandb: bool = typer.Option(False, "--wandb", help="Log to Weights & Biases, offline (no account needed)."),
    wandb_online: bool = typer.Option(False, "--wandb-online", help="Log to Weights & Biases online."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    refine: bool = typer.Option(False, "--refine", help="sfno: also refine each test window on its Navier-Stokes residual."),
    name: Optional[str] = typer.Option(None, help="The model's name on the leaderboard (default: from the model spec)."),
) -> None:
    """The main job: generate data if needed, train, evaluate the rollout, write entry and plots."""
    from cfdbench.pipeline import ensure_dataset, prepare_run, run_prepared
    from cfdbench.pipeline.datasets import is_stored

    overrides = _overrides(epochs, batch_size, lr, seed) | _training_flags(precision, None, None, False, wandb, wandb_online)
    overrides["num_workers"] = num_workers
    config = prepare_run(model, dataset, device, overrides, steps, set_, name, refine)  # bad input refused before any work
    if config.device.startswith("cpu") and config.training.get("epochs", 0) >= CPU_EPOCHS_NOTE:
        console.print(
            f"[yellow]note:[/] {config.training['epochs']} epochs ({model}'s setting for {dataset}) can take long on a CPU; "
            "--epochs N shortens the run (the bar shows the time remaining)"
        )
    if not is_stored(dataset):
        progress, update = _generation_progress()
        with progress:
            ensure_dataset(dataset, device=config.device, progress=update)
    refinement = _refine_settings(refine)
    if "card" not in config.training_sources.values():
        defaults = {k: config.training[k] for k in ("lr", "batch_size", "scheduler") if config.training_sources[k] == "default"}
        console.print(
            f"[yellow]note:[/] {model} has no model card: the trainer's defaults {defaults} apply unless set; "
            "the entry records every setting"
        )
    run_dir, entry = run_prepared(config, runs_root, publish, refine=refinement)
    _print_results(entry)
    console.print(f"run folder: {run_dir}")


METRIC_LABELS = {"nmse": "NMSE", "mse": "MSE", "mae": "MAE", "max_abs": "max abs", "rel_l2": "rel. L2"}


def _refine_settings(refine: bool):
    from cfdbench.evaluation.spectral_refine import RefineSettings

    return RefineSettings() if refine else None


def _print_results(entry: dict) -> None:
    """One table: the model beside the identity baseline, one step and mean over the rollout."""
    steps = entry["task"]["rollout_steps"]
    data = entry["dataset"]
    title = f"{entry['model']['name']} on {data['name']} ({data['split']} split, {data['n_cases']} cases)"
    table = Table("metric", "one step: model", "identity", f"{steps}-step rollout: model", "identity", title=title)
    one_step, rollout = entry["metrics"]["one_step"], entry["metrics"]["rollout"]
    for key, label in METRIC_LABELS.items():
        table.add_row(label, *(_score(scores[who][key]) for scores in (one_step, rollout) for who in ("model", "identity")))
    console.print(table)
    for name, scores in (("one step", one_step), (f"{steps}-step rollout", rollout)):
        if scores["model"]["nmse"] is None:
            console.print(f"{name}: the model diverged (NaN or Inf) in cases {sorted(entry['diverged'])}")
            continue
        ratio = scores["identity"]["nmse"] / max(scores["model"]["nmse"], 1e-300)
        console.print(f"{name}: identity NMSE / model NMSE = {ratio:.1f}x")
    if entry.get("channel_statistics"):
        _print_channel_statistics(entry["channel_statistics"], steps)
    if entry.get("refinement"):
        refined = entry["refinement"]
        nmse, residual = refined["nmse"], refined["residual_h_minus_1"]
        console.print(
            f"spectral refinement of the first {refined['window_frames']}-frame window ({refined['cases']} cases): "
            f"NMSE {nmse['before']:.3e} -> {nmse['after']:.3e}; H^-1 residual {residual['before']:.3e} -> "
            f"{residual['after']:.3e} (true frames: {residual['truth']:.3e})"
        )


def _print_channel_statistics(statistics: dict, steps: int) -> None:
    """The rollout's turbulence against the truth's: relative errors of the profiles and spectra, and Re_τ."""
    from cfdbench.metrics.channel import SCORE_LABELS

    first, last = statistics["windows"]["late"]
    late = f"steps {first}-{last}"
    table = Table("relative error", f"{steps} steps: model", "identity", f"{late}: model", "identity", title="channel statistics")
    columns = [(window, who) for window in ("all", "late") for who in ("model", "identity")]
    for key, label in SCORE_LABELS.items():
        table.add_row(label, *(_score(statistics[who][window][key]) for window, who in columns))
    console.print(table)
    re_tau = {who: "diverged" if value is None else f"{value:.1f}" for who, value in statistics["re_tau"].items()}
    console.print(f"Re_tau over the rollout: truth {re_tau['truth']}, model {re_tau['model']}, identity {re_tau['identity']}")


def _score(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.3e}"


# --------------------------------------------------------------------------- leaderboard


@leaderboard_app.command("build")
def leaderboard_build(
    entries: Optional[Path] = typer.Option(None, help="Entries folder (default: leaderboard/entries)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: leaderboard/)."),
    baseline: str = typer.Option("identity", help="Scorecard reference: identity, or a model name in the same table."),
) -> None:
    """Validate every entry; render leaderboard/README.md, index.html and the rollout charts from them."""
    from cfdbench.cards import project_root
    from cfdbench.leaderboard.pages import build_leaderboard

    root = project_root() / "leaderboard"
    written = build_leaderboard(entries or root / "entries", out or root, baseline)
    console.print(f"[green]leaderboard written[/]: {', '.join(str(p) for p in written[:2])} and {len(written) - 2} charts")


@leaderboard_app.command("submit")
def leaderboard_submit(
    run_dir: Path = typer.Argument(..., help="Run folder holding entry.json (or the entry file)."),
    entries: Optional[Path] = typer.Option(None, help="Entries folder (default: leaderboard/entries)."),
) -> None:
    """Validate a run's entry, check its dataset hash against the card, and add it under entries/<dataset>/."""
    from cfdbench.cards import project_root
    from cfdbench.leaderboard.submit import submit_run

    path = submit_run(run_dir, entries or project_root() / "leaderboard" / "entries")
    console.print(f"[green]submitted[/] {path}; run `cfdbench leaderboard build` to render it")


@leaderboard_app.command("verify")
def leaderboard_verify(
    entry: list[Path] = typer.Argument(None, help="Entry files (tier B: default every entry; tier C: one)."),
    tier: Optional[str] = typer.Option(
        None, help="A: pages and files from the entries; B: scores from the predictions; C: a checkpoint re-run "
        "(default C with --checkpoint, else B)."
    ),
    checkpoint: Optional[Path] = typer.Option(None, help="Tier C: the checkpoint the entry was evaluated from."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    rtol: Optional[float] = typer.Option(None, help="Relative tolerance (default: tier B 1e-6, tier C 1e-4)."),
    dataset: Optional[str] = typer.Option(None, help="The data: a folder or URL (default: the entry's dataset by name)."),
    entries: Optional[Path] = typer.Option(None, help="Entries folder (default: leaderboard/entries)."),
) -> None:
    """Verify leaderboard entries: tier A (every page and file follows from the entries), B (every score
    recomputed from the published predictions) or C (re-run from a checkpoint); fail when anything differs."""
    from cfdbench.cards import project_root
    from cfdbench.pipeline.verify import verify_entries

    entries_root = entries or project_root() / "leaderboard" / "entries"
    verified = verify_entries(tier, entry, entries_root, checkpoint, device, rtol, dataset)
    for path, reason in verified.not_verified.items():
        console.print(f"[yellow]not verified (tier {verified.tier})[/] {path}: awaiting re-run ({reason})")
    console.print(f"[green]verified (tier {verified.tier})[/] {verified.summary}")


@leaderboard_app.command("publish")
def leaderboard_publish(
    wandb: bool = typer.Option(False, "--wandb", help="Log the entries to Weights & Biases (offline unless --online)."),
    online: bool = typer.Option(False, help="Sync to the W&B server now (needs an account); default offline."),
    project: str = typer.Option("cfdbench-leaderboard", help="W&B project name."),
    entries: Optional[Path] = typer.Option(None, help="Entries folder (default: leaderboard/entries)."),
) -> None:
    """Publish the leaderboard's entries to an experiment tracker (tables and charts)."""
    from cfdbench.cards import project_root
    from cfdbench.leaderboard.publish import publish_wandb

    if not wandb:
        raise CfdbenchError("choose where to publish: --wandb")
    run_dir = publish_wandb(entries or project_root() / "leaderboard" / "entries", project, online)
    console.print(f"[green]published[/] to W&B ({'online' if online else 'offline'}): {run_dir}")


def main() -> None:
    """Entry point: our errors as one line with exit status 2; usage errors (2) and Ctrl-C (130) as typer reports them."""
    try:
        app()
    except CfdbenchError as err:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as err:  # the file system refused: read-only folder, a file where a folder should be, ...
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/] {_os_error_line(err)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SystemExit as exit_:
        if exit_.code == 130:
            err_console.print(_interrupted_message(sys.argv[1:]))
        raise


def _os_error_line(err: OSError) -> str:
    """One line for a refusal of the file system, naming the path and what to check."""
    import errno

    path = getattr(err, "filename", None)
    if path and err.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"{path}: a file is in the way where a folder is needed; move it or choose another path"
    if path and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{path}: {err.strerror.lower()}; choose a folder you can write to"
    return f"{err.strerror or err}{f': {path}' if path else ''} (check the path and its permissions)"


def _interrupted_message(argv: list[str]) -> str:
    """What Ctrl-C kept and how to continue, for the command that was interrupted."""
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] == ["train"] or words[:1] == ["run"]:
        data = "the generated cases are kept (a rerun resumes the data); " if words[:1] == ["run"] else ""
        return (
            f"interrupted; {data}training stopped at its last saved epoch: continue it with "
            "`cfdbench train --resume <run folder>` (a rerun starts a new run folder)"
        )
    return "interrupted; completed work is kept (rerun the same command to resume)"


if __name__ == "__main__":
    main()
