"""From a dataset's name, folder or URL to verified data: open it, generate it when missing,
or refuse in one line saying how to get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cfdbench.cards import ChannelCard, data_root, dataset_names, find_card
from cfdbench.data.dataset_dir import is_sealed, verify_checksums
from cfdbench.data.remote import is_url, open_remote
from cfdbench.data.resolve import dataset_folder, open_dataset
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError, DatasetNotFoundError
from cfdbench.pipeline.devices import resolve_device

if TYPE_CHECKING:  # the generators import the solvers: only a command that generates loads them
    from cfdbench.data.generate import GenerationReport

GenerationProgress = Callable[[str, float, "float | None"], None]
"""(stage, done, total): cases of a 2D dataset (stage ``cases``), or a channel DNS's stages in δ/u_τ."""


@dataclass(frozen=True)
class GeneratedDataset:
    """What ``data generate`` did: the dataset's name, the generator's report (None on the ranks of a
    torchrun other than 0, which seals the folder), and the unit of its cases."""

    name: str
    report: GenerationReport | None
    unit: str  # "cases" (a 2D sweep) or "trajectories" (a channel's DNS run)


def generate_data(
    name: str,
    subset: str = "all",
    preset: str = "paper",
    out: Path | None = None,
    fmt: str | None = None,
    device: str = "auto",
    batch_size: int = 16,
    max_cases: int | None = None,
    shard: str | None = None,
    on_diverged: str = "stop",
    compile: bool = False,
    zarr_shards: bool = False,
    progress: GenerationProgress | None = None,
) -> GeneratedDataset:
    """``cfdbench data generate``: simulate the dataset a card describes at a preset and subset into
    ``out`` (default: the data root), resuming an interrupted generation. A 2D sweep runs on one
    process, as shard ``i/n`` of an array of independent jobs, or on every rank under torchrun; a
    channel card is one DNS run (stored as zarr by default). Options that do not apply are refused
    before any work."""
    from cfdbench.data.generate import distributed_rank, generate_dataset, generate_on_ranks, parse_shard

    card = find_card(name)
    if isinstance(card, ChannelCard):
        return _generate_channel(card, subset, preset, out, fmt or "zarr", device, zarr_shards, (max_cases, shard), progress)
    card = card.variant(preset, subset)
    if max_cases is not None and max_cases < 1:
        raise CfdbenchError(f"--max-cases must be >= 1, got {max_cases}")
    parsed_shard = parse_shard(shard)
    rank = distributed_rank()
    if rank is not None and parsed_shard is not None:
        raise CfdbenchError("use either torchrun or --shard, not both")
    out_dir = out or data_root() / card.name
    options = dict(
        fmt=fmt or "hdf5",
        device=str(resolve_device(device, local_rank=rank[2] if rank else None)),
        batch_size=batch_size,
        max_cases=max_cases,
        on_diverged=on_diverged,
        compile=compile,
        zarr_shards=zarr_shards,
    )
    if rank is not None:
        report = generate_on_ranks(card, out_dir, rank, **options)
        return GeneratedDataset(card.name, report if rank[0] == 0 else None, "cases")
    cases = (lambda done, total: progress("cases", done, total)) if progress else None
    return GeneratedDataset(card.name, generate_dataset(card, out_dir, progress=cases, shard=parsed_shard, **options), "cases")


def _generate_channel(
    card: ChannelCard,
    subset: str,
    preset: str,
    out: Path | None,
    fmt: str,
    device: str,
    zarr_shards: bool,
    unsupported: tuple,
    progress: GenerationProgress | None,
) -> GeneratedDataset:
    """A channel card's one batched DNS run, resumable from its restart files."""
    from cfdbench.data.generate import distributed_rank
    from cfdbench.data.generate_channel import generate_channel_dataset

    if zarr_shards and fmt != "zarr":
        raise CfdbenchError(f"--zarr-shards is a zarr layout; the {fmt} format has none (use --format zarr)")
    if subset != "all" or distributed_rank() is not None or any(option is not None for option in unsupported):
        raise CfdbenchError("a channel dataset is one DNS run: --subset, --max-cases, --shard and torchrun do not apply")
    card = card.variant(preset)
    out_dir = out or data_root() / card.name
    report = generate_channel_dataset(card, out_dir, fmt=fmt, device=str(resolve_device(device)), progress=progress, zarr_shards=zarr_shards)
    return GeneratedDataset(card.name, report, "trajectories")


def is_stored(name: str) -> bool:
    """Whether a dataset opens without being generated first: a URL, or a sealed local folder."""
    return is_url(name) or is_sealed(dataset_folder(name))


def ensure_dataset(name: str, device: str = "cpu", progress: GenerationProgress | None = None) -> StoredDataset:
    """Open a dataset, generating it from its card first (as ``data generate NAME`` does) when it is
    not there or incomplete; a URL is opened as it is (its cases are verified as they are fetched)."""
    if is_url(name):
        return open_remote(name)
    path = dataset_folder(name)
    if not is_sealed(path):
        path = generate_data(name, device=device, progress=progress).report.dataset_dir
    return verified_dataset(path)


def verified_dataset(path: Path) -> StoredDataset:
    """The dataset at ``path``, once its case files match their manifest's checksums (cached per file)."""
    verify_checksums(path)
    return open_dataset(path)


def dataset_problem(name: str) -> str | None:
    """The flow a dataset holds (cavity, tube, dam, cylinder, channel), from its stored manifest (at a
    URL, the manifest alone is fetched) or else its card; None when neither says."""
    if is_url(name):
        return open_remote(name).problem
    path = dataset_folder(name)
    if is_sealed(path):
        return open_dataset(path).problem
    return find_card(name).problem


def require_dataset(name: str, verify: bool = True) -> StoredDataset:
    """Open a dataset that must already exist (``verify``: its case files must match the manifest's
    checksums; at a URL, each case is verified as it is fetched); the error says how to get it."""
    if is_url(name):
        return open_remote(name)
    path = dataset_folder(name)
    if not is_sealed(path):
        find_card(name)  # unknown names list the valid ones (2D and channel cards alike)
        raise DatasetNotFoundError(
            f"dataset '{name}' is not at {path}; generate it with `cfdbench data generate {name}` "
            f"(or set CFDBENCH_DATA to where it lives)"
        )
    return verified_dataset(path) if verify else open_dataset(path)


@dataclass(frozen=True)
class DatasetListing:
    """One row of ``data list``: a dataset card, or a generated variant of one (a preset or subset)."""

    name: str
    problem: str
    cases: int | str
    frames: int | str
    stored_at: Path | None  # None: not generated under the data root


def list_datasets() -> list[DatasetListing]:
    """Every dataset card and whether it has been generated under the data root, then the generated
    datasets that are not a card of their own (presets and subsets such as dam-tiny, cavity-bc): all
    that ``train --dataset`` accepts by name."""
    listing = []
    names = dataset_names()
    for name in names:
        card = find_card(name)
        path = data_root() / name
        stored = path if is_sealed(path) else None
        if isinstance(card, ChannelCard):
            listing.append(DatasetListing(name, card.problem, card.trajectories, card.frames, stored))
        else:
            listing.append(DatasetListing(name, card.problem, len(card.cases()), card.solver.n_frames, stored))
    root = data_root()
    generated = sorted(p for p in root.iterdir() if is_sealed(p)) if root.is_dir() else []
    for path in (p for p in generated if p.name not in set(names)):
        dataset = StoredDataset(path)
        frames = (dataset.metadata.generator or {}).get("n_frames", "?")
        listing.append(DatasetListing(path.name, str(dataset.metadata.problem or "?"), len(dataset), frames, path))
    return listing


@dataclass(frozen=True)
class DatasetReport:
    """``data info``: a dataset's typed description, as stored, with the state of its files."""

    dataset: StoredDataset
    where: str  # its folder, or its URL
    frames_per_case: int  # of the first case
    content_hash: str  # over the manifest's file digests
    mismatched: list[str] | None  # files failing their manifest checksum; None at a URL (checked as fetched)
    cached_cases: int | None  # at a URL: cases in the verified local cache


def inspect_dataset(name: str) -> DatasetReport:
    """``data info NAME``: a dataset (by name, folder or URL) described, and every local case file checked
    against the manifest; at a URL, only the manifest is fetched and the cache counted."""
    from cfdbench.data.dataset_dir import content_hash, verify_manifest
    from cfdbench.data.remote import RemoteDataset

    dataset = require_dataset(name, verify=False)  # the report says which files fail
    remote = isinstance(dataset, RemoteDataset)
    with dataset.open_case(dataset.case_ids[0]) as case:
        frames = case.n_frames
    return DatasetReport(
        dataset,
        dataset.url if remote else str(dataset.path),
        frames,
        content_hash(dataset.path),
        None if remote else verify_manifest(dataset.path),
        dataset.cached_cases() if remote else None,
    )


def push_data(name: str, url: str, progress: Callable[[int, int], None] | None = None) -> tuple[StoredDataset, int, str]:
    """``data push NAME URL``: upload a sealed local dataset (its files checked against the manifest
    first; the manifest last, so a half-pushed dataset is never taken for a complete one); returns
    (the dataset, bytes sent, its content hash)."""
    from cfdbench.data.dataset_dir import content_hash
    from cfdbench.data.remote import push_dataset

    dataset = require_dataset(name, verify=False)  # push verifies the files itself
    sent = push_dataset(dataset.path, url, progress)
    return dataset, sent, content_hash(dataset.path)


def record_generator_cost(name: str, device: str = "auto", max_cases: int | None = None) -> tuple[dict, Path]:
    """``data cost NAME``: time the generator per case and frame interval on ``device`` (batched as
    ``data generate`` runs, from rest) and record it beside the card, for the entries' speed-up;
    returns (the cost, the file it was recorded in)."""
    from cfdbench.entries.entry import device_description
    from cfdbench.evaluation.cost import measure_solver_cost, record_solver_cost

    torch_device = resolve_device(device)
    cost = measure_solver_cost(name, str(torch_device), device_description(torch_device), max_cases)
    return cost, record_solver_cost(name, cost)


def download_data(
    target: str,
    out: Path | None = None,
    endpoint: str | None = None,
    from_path: Path | None = None,
    progress: Callable[[str, int, "int | None"], None] | None = None,
    retries: int = 5,
) -> dict[str, tuple[Path, dict[str, int]]]:
    """``data download cfdbench/<problem>``: CFDBench's released archives downloaded (or ingested
    ``from_path``), verified and unpacked under ``out`` (default: <data>/cfdbench-release), resumably;
    returns, per problem, its folder and the number of cases of each subset."""
    from cfdbench.data.cfdbench_release import download_release, find_cases, parse_problems

    folders = download_release(
        parse_problems(target), out or data_root() / "cfdbench-release", endpoint, from_path, progress, retries
    )
    return {
        problem: (folder, {subset: len(cases) for subset, cases in find_cases(folder, problem).items()})
        for problem, folder in folders.items()
    }


def convert_data(
    target: str,
    subsets: str = "prop_bc_geo",
    raw: Path | None = None,
    out: Path | None = None,
    fmt: str = "hdf5",
    on_error: str = "stop",
    task: str = "autoregressive",
    legacy: bool = False,
    splits: Path | None = None,
):
    """``data convert cfdbench/<problem>``: one problem of CFDBench's unpacked release (default:
    <data>/cfdbench-release/<problem>) converted into a cfdbench dataset with CFDBench's splits (or
    ``splits``), resumably; returns (the dataset folder, the converter's report)."""
    from cfdbench.data.cfdbench_release import parse_problems
    from cfdbench.data.convert import convert_release, dataset_name

    problems = parse_problems(target)
    if len(problems) != 1:
        raise CfdbenchError("convert one problem at a time: cfdbench/cavity, cfdbench/tube, cfdbench/dam or cfdbench/cylinder")
    problem = problems[0]
    out_dir = out or data_root() / dataset_name(problem, subsets, legacy, task)
    raw_root = raw or data_root() / "cfdbench-release" / problem
    return out_dir, convert_release(raw_root, problem, subsets, out_dir, fmt, on_error, task, legacy, splits)
