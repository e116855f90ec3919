"""Turn CFDBench's released cases into a cfdbench dataset: the same store, splits, statistics and
manifest as generated data, so every model and the evaluator run on it unchanged.

Splits are CFDBench's own (``cfdbench_release.cfdbench_split``, with the rounding rule of its
autoregressive or non-autoregressive loaders), so scores are comparable with its paper, unless a
splits file is given (``cfdbench data export`` writes one beside the cases it exports). Velocity is
stored as released (CFDBench published no pressure; folders written by ``cfdbench data export``
carry it); the frame interval, masks and parameter vector are the corrected ones of
:class:`~cfdbench.data.cfdbench_release.RawCase`, or CFDBench's own with ``legacy=True``
(``legacy.py``). Conversion is resumable: cases already stored are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cfdbench.cards import DatasetCard, load_dataset_card
from cfdbench.data.cfdbench_release import (
    SUBSET_ORDER,
    SUBSET_SIZES,
    TASKS,
    RawCase,
    cfdbench_split,
    find_cases,
    read_case,
    split_rounding,
)
from cfdbench.data.dataset_dir import SPLIT_NAMES, compute_stats, write_manifest, write_splits, write_stats
from cfdbench.data.dpot import check_dpot_problem, dpot_stride
from cfdbench.data.legacy import legacy_frames
from cfdbench.data.schema import SCHEMA_VERSION, CaseRecord
from cfdbench.data.store import list_cases, open_case, remove_partials, write_case
from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.solvers.flows import get_flow


@dataclass
class ConversionReport:
    dataset_dir: Path
    converted: list[str]
    reused: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # case folder -> why
    split_matches_release: bool = True  # subset sizes equal the release's, so the published lists apply


def dataset_name(problem: str, subsets: str, legacy: bool = False, task: str = "autoregressive") -> str:
    return f"cfdbench-{problem}-{subsets}" + ("-legacy" if legacy else "") + ("-dpot" if task == "dpot" else "")


def to_record(case: RawCase, card: DatasetCard, legacy: bool = False, dpot: bool = False) -> CaseRecord:
    """One released case as a cfdbench record; Re by the problem's card (its own definition).
    ``dpot``: only the frames 0.1 s apart (the DPOT-compatible task, ``cfdbench/data/dpot.py``)."""
    stride = dpot_stride(case.frame_interval, str(case.path)) if dpot else 1
    fields = {"u": case.u, "v": case.v} | ({"p": case.p} if case.p is not None else {})
    fields = {name: values[::stride] for name, values in fields.items()}
    x, y = case.coordinates()
    mask, params = case.fluid_fraction(), case.params
    if legacy:
        frames = legacy_frames(case, fields)
        fields, mask, x, y, params = frames.fields, frames.mask, frames.x, frames.y, frames.params
    return CaseRecord(
        case_id=case.case_id,
        subset=case.subset,
        params=params,
        dt=case.frame_interval * stride,
        x=x,
        y=y,
        fields=fields,
        mask=mask,
        boundary_conditions=dict(get_flow(case.problem).boundary_conditions),
        attrs={
            "reynolds": card.reynolds(case.params),
            "source": "CFDBench release (chen-yingfa/CFDBench), converted by cfdbench",
            "source_case": f"{case.subset}/{case.path.name}",
            "source_dtype": case.dtype,
            "legacy": legacy,
            "source_frame_stride": stride,  # every stride-th released frame is stored
        },
    )


def read_splits_file(path: Path, case_ids: list[str]) -> dict[str, list[str]]:
    """Splits given as ``{train, valid, test: [<subset>/caseNNNN, ...]}`` (what export writes), as case ids."""
    try:
        raw = json.loads(Path(path).read_text())
        splits = {name: [_case_id_of(item) for item in raw[name]] for name in SPLIT_NAMES}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CfdbenchError(f"{path}: not a splits file of train, valid and test lists of <subset>/caseNNNN ({err!r})") from None
    listed = [c for name in SPLIT_NAMES for c in splits[name]]
    unknown, unlisted = sorted(set(listed) - set(case_ids)), sorted(set(case_ids) - set(listed))
    if unknown or unlisted or len(set(listed)) != len(listed):
        raise CfdbenchError(
            f"{path}: its splits do not cover the converted cases exactly (not converted: {unknown[:5]}, "
            f"unlisted: {unlisted[:5]}, repeated: {len(listed) - len(set(listed))})"
        )
    return splits


def _case_id_of(item: str) -> str:
    subset, folder = item.split("/")
    return f"{subset}-{int(folder.removeprefix('case')):04d}"


def convert_release(
    raw_root: Path,
    problem: str,
    subsets: str,
    out_dir: Path,
    fmt: str = "hdf5",
    on_error: str = "stop",
    task: str = "autoregressive",
    legacy: bool = False,
    splits_file: Path | None = None,
) -> ConversionReport:
    """Convert the ``subsets`` (``prop_bc_geo``, ``bc``, ...) of one problem found under ``raw_root``.

    ``task`` picks CFDBench's split rounding rule (its two kinds of loaders differ for the tube), or
    ``dpot``: DPOT's task (``dpot.py``), the autoregressive split with frames 0.1 s apart;
    ``splits_file`` replaces CFDBench's split by given lists."""
    if task not in (*TASKS, "dpot"):
        raise UnknownNameError("task", task, [*TASKS, "dpot"])
    dpot = task == "dpot"
    if dpot:
        check_dpot_problem(problem)
        if legacy:
            raise CfdbenchError("--task dpot stores cfdbench's frames and masks; it does not combine with --legacy")
    rounding = split_rounding(problem, "autoregressive" if dpot else task)
    if on_error not in ("stop", "skip"):
        raise UnknownNameError("on-error policy", on_error, ["stop", "skip"])
    found = find_cases(raw_root, problem)
    chosen = [s for s in SUBSET_ORDER if s in subsets.split("_")]
    unknown = set(subsets.split("_")) - set(SUBSET_ORDER)
    if unknown or not chosen:
        raise CfdbenchError(f"subsets '{subsets}': use prop, bc, geo joined by '_' (e.g. prop_bc_geo)")
    missing = [s for s in chosen if s not in found]
    if missing:
        raise CfdbenchError(f"{raw_root}: no {problem} case folders for subsets {missing}; found {sorted(found)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_partials(out_dir)
    report = ConversionReport(out_dir, [], [])
    name = dataset_name(problem, subsets, legacy, task)
    cases = [(s, f) for s in chosen for f in found[s]]
    ordered = _convert_cases(cases, problem, out_dir, name, fmt, on_error, legacy, report, dpot)
    report.split_matches_release = (
        splits_file is None and all(len(found[s]) == SUBSET_SIZES[problem][s] for s in chosen) and not report.skipped
    )
    if splits_file is not None:
        splits, how = read_splits_file(splits_file, ordered), f"from {splits_file}"
    else:
        splits, how = cfdbench_split(ordered, rounding), f"CFDBench's {task} split (random.seed(0) shuffle, {rounding} rule)"
    info = {"dataset": name, "problem": problem, "format": fmt, "legacy": legacy, "task": task, "splits": how}
    _finalize(out_dir, ordered, splits, info, report)
    return report


def _convert_cases(
    folders: list[tuple[str, Path]],
    problem: str,
    out_dir: Path,
    name: str,
    fmt: str,
    on_error: str,
    legacy: bool,
    report: ConversionReport,
    dpot: bool = False,
) -> list[str]:
    """Store each (subset, case folder) not stored yet; returns the ids of the stored cases in order."""
    existing = list_cases(out_dir)
    card = load_dataset_card(problem)
    ordered: list[str] = []
    for subset, folder in folders:
        case_id = f"{subset}-{int(folder.name[4:]):04d}"
        if case_id in existing:
            report.reused.append(case_id)
        else:
            try:
                write_case(out_dir, to_record(read_case(folder, problem, subset), card, legacy, dpot), name, fmt=fmt)
            except CfdbenchError as err:
                if on_error == "stop":
                    raise
                report.skipped[str(folder)] = str(err)
                continue
            report.converted.append(case_id)
        ordered.append(case_id)
    return ordered


def _finalize(out_dir: Path, ordered: list[str], splits: dict, info: dict, report: ConversionReport) -> None:
    """Splits, training-split statistics (pressure too when every case has it), then the manifest."""
    stored = list_cases(out_dir)
    has_pressure = all("p" in _stored_fields(stored[case_id]) for case_id in ordered)
    write_splits(out_dir, splits, 0, (0.8, 0.1))
    write_stats(out_dir / "stats.yaml", compute_stats(out_dir, splits["train"], ("u", "v", "p") if has_pressure else ("u", "v")))
    write_manifest(
        out_dir,
        {
            **info,
            "version": "cfdbench-release",
            "schema_version": SCHEMA_VERSION,
            "n_cases": len(ordered),
            "source": "CFDBench release (chen-yingfa/CFDBench)",
            "split_matches_release": report.split_matches_release,
            "skipped": report.skipped,
        },
    )


def _stored_fields(path: Path) -> set[str]:
    with open_case(path) as case:
        return set(case.field_names)
