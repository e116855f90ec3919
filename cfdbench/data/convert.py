"""Turn CFDBench's released cases into a cfdbench dataset: the same store, splits, statistics and
manifest as generated data, so every model and the evaluator run on it unchanged.

Splits are CFDBench's own (``cfdbench_release.cfdbench_split``), so scores are comparable with
its paper. Velocity is stored as released (CFDBench published no pressure); the frame interval,
masks and parameter vector are the corrected ones of :class:`~cfdbench.data.cfdbench_release.RawCase`.
Conversion is resumable: cases already stored are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cfdbench.cards import DatasetCard, load_dataset_card
from cfdbench.data.cfdbench_release import (
    FRAME_INTERVAL,
    SPLIT_ROUNDING,
    SUBSET_ORDER,
    SUBSET_SIZES,
    RawCase,
    cfdbench_split,
    find_cases,
    read_case,
)
from cfdbench.data.dataset_dir import compute_stats, write_manifest, write_splits, write_stats
from cfdbench.data.schema import SCHEMA_VERSION, CaseRecord
from cfdbench.data.store import list_cases, remove_partials, write_case
from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.solvers.flows import get_flow


@dataclass
class ConversionReport:
    dataset_dir: Path
    converted: list[str]
    reused: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # case folder -> why
    split_matches_release: bool = True  # subset sizes equal the release's, so the published lists apply


def dataset_name(problem: str, subsets: str) -> str:
    return f"cfdbench-{problem}-{subsets}"


def to_record(case: RawCase, card: DatasetCard) -> CaseRecord:
    """One released case as a cfdbench record; Re by the problem's card (its own definition)."""
    x, y = case.coordinates()
    return CaseRecord(
        case_id=case.case_id,
        subset=case.subset,
        params=case.params,
        dt=FRAME_INTERVAL[case.problem],
        x=x,
        y=y,
        fields={"u": case.u, "v": case.v},
        mask=case.mask(),
        boundary_conditions=dict(get_flow(case.problem).boundary_conditions),
        attrs={
            "reynolds": card.reynolds(case.params),
            "source": "CFDBench release (chen-yingfa/CFDBench), converted by cfdbench",
            "source_case": f"{case.subset}/{case.path.name}",
            "source_dtype": case.dtype,
        },
    )


def convert_release(
    raw_root: Path, problem: str, subsets: str, out_dir: Path, fmt: str = "hdf5", on_error: str = "stop"
) -> ConversionReport:
    """Convert the ``subsets`` (``prop_bc_geo``, ``bc``, ...) of one problem found under ``raw_root``."""
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
    existing = list_cases(out_dir)
    report = ConversionReport(out_dir, [], [])
    card = load_dataset_card(problem)
    ordered: list[str] = []
    for subset in chosen:
        for folder in found[subset]:
            case_id = f"{subset}-{int(folder.name[4:]):04d}"
            if case_id in existing:
                report.reused.append(case_id)
                ordered.append(case_id)
                continue
            try:
                write_case(out_dir, to_record(read_case(folder, problem, subset), card), dataset_name(problem, subsets), fmt=fmt)
            except CfdbenchError as err:
                if on_error == "stop":
                    raise
                report.skipped[str(folder)] = str(err)
                continue
            report.converted.append(case_id)
            ordered.append(case_id)
    report.split_matches_release = all(len(found[s]) == SUBSET_SIZES[problem][s] for s in chosen) and not report.skipped
    _finalize(out_dir, problem, subsets, ordered, fmt, report)
    return report


def _finalize(out_dir: Path, problem: str, subsets: str, ordered: list[str], fmt: str, report: ConversionReport) -> None:
    """CFDBench's split of the cases in its order, training-split statistics, then the manifest."""
    splits = cfdbench_split(ordered, SPLIT_ROUNDING[problem])
    write_splits(out_dir, splits, 0, (0.8, 0.1))
    write_stats(out_dir / "stats.yaml", compute_stats(out_dir, splits["train"], ("u", "v")))
    write_manifest(
        out_dir,
        {
            "dataset": dataset_name(problem, subsets),
            "version": "cfdbench-release",
            "problem": problem,
            "format": fmt,
            "schema_version": SCHEMA_VERSION,
            "n_cases": len(ordered),
            "source": "CFDBench release (chen-yingfa/CFDBench)",
            "splits": f"CFDBench's (random.seed(0) shuffle, {SPLIT_ROUNDING[problem]} rule)",
            "split_matches_release": report.split_matches_release,
            "skipped": report.skipped,
        },
    )
