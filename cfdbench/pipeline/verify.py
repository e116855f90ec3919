"""Verification tiers B and C of leaderboard entries.

An entry's scores recomputed by the evaluation's own code, from the predictions published beside
it (B) or by re-running a checkpoint (C), each a list of the problems found (empty: verified). Here,
beside the evaluation they repeat; tier A, which needs only the repository, is leaderboard.verify.
:func:`verify_entries` is the command, choosing the tier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cfdbench.data.dataset_dir import content_hash
from cfdbench.data.download import sha256_of
from cfdbench.entries.entry import entry_paths, load_entry
from cfdbench.entries.predictions import Predictions
from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.evaluation.spectral_refine import RefineSettings
from cfdbench.leaderboard.awaiting import awaiting_reason, awaiting_reruns
from cfdbench.leaderboard.code import load_operator
from cfdbench.leaderboard.verify import PREDICTIONS_RTOL, VERIFY_RTOL, compare_numbers, compare_tier, verify_board
from cfdbench.pipeline.datasets import require_dataset
from cfdbench.pipeline.evaluate import evaluate_checkpoint, rescore_predictions


def verify_predictions(entry_path: Path, dataset: str | Path | None = None, rtol: float = PREDICTIONS_RTOL) -> list[str]:
    """Tier B: recompute every score of the entry at ``entry_path`` from the predictions published beside
    it on ``dataset`` (default: the entry's dataset by name in the data folder); the differences."""
    entry = load_entry(entry_path)
    if entry.predictions is None:
        raise CfdbenchError(f"{entry_path}: publishes no predictions, so tier B cannot recompute its scores: re-run it")
    file = Path(entry_path).parent / entry.predictions["file"]
    if not file.is_file():
        raise CfdbenchError(f"{entry_path}: its predictions file {file.name} is not beside it")
    if sha256_of(file) != entry.predictions["sha256"]:
        raise CfdbenchError(f"{file}: does not match its entry (SHA-256 {entry.predictions['sha256'][:12]}... in {entry_path})")
    predictions = Predictions.load(file)
    data = require_dataset(str(dataset or entry.dataset["name"]))
    if content_hash(data.path) != entry.dataset["content_hash"]:
        raise CfdbenchError(
            f"{entry_path}: the local {entry.dataset['name']} has content hash {content_hash(data.path)[:12]}..., the "
            f"entry's is {entry.dataset['content_hash'][:12]}...: tier B needs the same data"
        )
    task = {key: entry.task[key] for key in ("input_frames", "stride", "start_frame")} | {"steps": entry.task["rollout_steps"]}
    if predictions.case_ids != entry.dataset["case_ids"] or predictions.task != task:
        raise CfdbenchError(f"{file}: holds the predictions of another task or split than its entry's")
    return compare_tier(entry, rescore_predictions(predictions, data, entry.dataset["split"]), "B", rtol)


def verify_all_predictions(entries_root: Path, dataset_root: Path | None = None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Tier B over every entry under ``entries_root``: ({entry path: problems} of those with predictions,
    {entry path: reason} of those awaiting a re-run); an entry with neither is a problem."""
    awaiting = awaiting_reruns(entries_root)
    checked, waiting = {}, {}
    for path in entry_paths(entries_root):
        entry = load_entry(path)
        if entry.predictions is not None:
            dataset = Path(dataset_root) / entry.dataset["name"] if dataset_root else None
            checked[str(path)] = verify_predictions(path, dataset)
            continue
        reason = awaiting_reason(path, entries_root, awaiting)
        if reason is None:
            checked[str(path)] = [f"{path}: publishes no predictions and is not listed as awaiting a re-run"]
        else:
            waiting[str(path)] = reason
    return checked, waiting


def verify_checkpoint(
    entry_path: Path, checkpoint: Path, device: str = "auto", rtol: float = VERIFY_RTOL, dataset: str | Path | None = None
) -> list[str]:
    """Tier C: re-run the evaluation an entry describes from ``checkpoint`` on ``dataset`` (default: the
    entry's dataset by name in the data folder), the operator rebuilt from the entry's stored code; the
    differences (empty: verified)."""
    entry = load_entry(entry_path)
    data, task = entry.dataset, entry.task
    model_class = load_operator(entry.code, entry.model.get("source", entry.model["name"]), entry_path) if entry.code else None
    refine = RefineSettings(**entry.refinement["settings"]) if entry.refinement else None
    _, rerun = evaluate_checkpoint(
        checkpoint, str(dataset or data["name"]), data["split"], task["rollout_steps"], task["start_frame"], device,
        refine=refine, model_class=model_class, plots=False,
    )  # fmt: skip
    if rerun.dataset["content_hash"] != data["content_hash"]:
        raise CfdbenchError(
            f"{entry_path}: the local {data['name']} has content hash {rerun.dataset['content_hash'][:12]}..., the entry's "
            f"is {data['content_hash'][:12]}...: verify needs the same data"
        )
    if rerun.task != task or rerun.dataset["case_ids"] != data["case_ids"]:
        raise CfdbenchError(f"{entry_path}: the checkpoint's task or split differs from the entry's ({rerun.task})")
    problems = compare_tier(entry, rerun, "C", rtol)  # every score the pages show; timings (cost) depend on the machine
    return problems + compare_numbers(entry.model["parameter_count"], rerun.model["parameter_count"], "$.model", rtol)


# the command


@dataclass(frozen=True)
class Verified:
    """What ``leaderboard verify`` established (it raises, listing the problems, when anything differs):
    a one-line summary, and the entries it could not verify and why (awaiting a re-run)."""

    tier: str
    summary: str
    not_verified: dict[str, str] = field(default_factory=dict)


def verify_entries(
    tier: str | None,
    entries: list[Path] | None,
    entries_root: Path,
    checkpoint: Path | None = None,
    device: str = "auto",
    rtol: float | None = None,
    dataset: str | None = None,
) -> Verified:
    """``cfdbench leaderboard verify``: tier A over the leaderboard at ``entries_root``'s parent, tier B
    over ``entries`` (default: every entry under ``entries_root``), or tier C of one entry from its
    ``checkpoint`` (the default tier: C with a checkpoint, else B). Raises one error line naming the
    first problems when anything differs."""
    tier = (tier or ("C" if checkpoint else "B")).upper()
    if tier == "A":
        if entries:
            raise CfdbenchError("tier A verifies the whole leaderboard: give --entries <folder>, not entry files")
        board = entries_root.parent
        _fail_on(verify_board(board), f"{board}: tier A")
        return Verified(tier, f"{board}: every entry valid, its files present, its pages rebuilt")
    if tier == "B":
        rtol = rtol or PREDICTIONS_RTOL
        if entries:
            for path in entries:
                _fail_on(
                    verify_predictions(path, dataset, rtol), f"{path}: not reproduced from its predictions within rtol {rtol:g}"
                )
            return Verified(tier, f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: every score recomputed")
        checked, waiting = verify_all_predictions(entries_root)
        _fail_on([problem for problems in checked.values() for problem in problems], "tier B")
        return Verified(tier, f"{len(checked)} entries from their predictions; {len(waiting)} awaiting re-run", waiting)
    if tier == "C":
        if checkpoint is None or not entries or len(entries) != 1:
            raise CfdbenchError("tier C re-runs one entry from its checkpoint: give the entry file and --checkpoint")
        rtol = rtol or VERIFY_RTOL
        entry = entries[0]
        _fail_on(verify_checkpoint(entry, checkpoint, device, rtol, dataset), f"{entry}: not reproduced within rtol {rtol:g}")
        return Verified(tier, f"{entry}: every metric and curve value reproduced within rtol {rtol:g}")
    raise UnknownNameError("verification tier", tier, ["A", "B", "C"])


def _fail_on(problems: list[str], what: str) -> None:
    """One error line listing the first problems, when there are any."""
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CfdbenchError(f"{what}: {shown}")
