"""Verification of the leaderboard in three tiers, each a list of the problems it finds (empty: verified).

- **A** (:func:`verify_board`): every entry file valid (schema, finite numbers, each score the mean of
  its curve, every derived number consistent), the identity baselines in agreement, every published
  predictions file and stored plug-in source present with its digest, every entry without
  predictions listed as awaiting a re-run (pinned by its SHA-256), and the committed pages equal to
  the pages built afresh from the entries. Needs nothing but the repository.
- **B** (:func:`verify_predictions`): every score of an entry recomputed, by the evaluation's own
  code, from the predictions published beside it and the dataset (its content hash checked).
- **C** (:func:`verify_checkpoint`): the evaluation re-run from a checkpoint, the operator rebuilt
  from the code the entry stores (never from the author's path).

Entries scored before predictions were published cannot pass tier B; ``leaderboard/awaiting-rerun.json``
lists each of them with its SHA-256 and the reason, tier B reports them by name instead of passing
them, and the pages mark them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cfdbench.data.download import sha256_of
from cfdbench.errors import CfdbenchError
from cfdbench.io import write_json_atomic
from cfdbench.leaderboard.entry import Entry, entry_paths, load_entry

# Re-evaluating a checkpoint on other hardware changes float32 results at the 1e-6 level per
# step, and autoregressive rollouts amplify that; 1e-4 relative still catches any edited digit
# that matters for a ranking.
VERIFY_RTOL = 1e-4
# Recomputing from published predictions repeats the same float64 metric code on the same float32
# frames: only the order of floating-point sums may differ between machines.
PREDICTIONS_RTOL = 1e-6
VERIFY_ATOL = 1e-12
AWAITING_FILE = "awaiting-rerun.json"  # in leaderboard/, beside entries/
AWAITING_WHY = (
    "Entries that publish no predictions, so verification tier B cannot recompute their scores: each is pinned by "
    "its SHA-256 (an edited entry is no longer the one listed and fails tiers A and B) until it is re-run."
)
TIERS = ("A", "B", "C")


# --------------------------------------------------------------------------- comparing numbers


def compare_numbers(expected: Any, actual: Any, path: str = "$", rtol: float = VERIFY_RTOL) -> list[str]:
    """Every leaf of ``expected`` (numbers, nulls, nested dicts and lists) that ``actual`` does not
    reproduce within ``rtol``, as ``"<json path>: entry <a>, re-run <b>"``."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: entry has an object, re-run {actual!r}"]
        extra = [f"{path}.{key}: missing in the entry, re-run {actual[key]!r}" for key in actual if key not in expected]
        return extra + [m for key in expected for m in compare_numbers(expected[key], actual.get(key), f"{path}.{key}", rtol)]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: entry has {len(expected)} values, re-run {actual!r}"]
        return [m for i, (e, a) in enumerate(zip(expected, actual)) for m in compare_numbers(e, a, f"{path}[{i}]", rtol)]
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if isinstance(actual, (int, float)) and math.isclose(expected, actual, rel_tol=rtol, abs_tol=VERIFY_ATOL):
            return []
    elif expected == actual:
        return []
    return [f"{path}: entry {expected!r}, re-run {actual!r}"]


def _compare_tier(entry: Entry, rerun: Any, tier: str, rtol: float) -> list[str]:
    """The differences, over every key the tier recomputes, between an entry and its recomputation."""
    return [
        problem for key in Entry.tier_keys(tier) for problem in compare_numbers(entry.get(key), rerun.get(key), f"$.{key}", rtol)
    ]


# --------------------------------------------------------------------------- awaiting re-runs


def awaiting_path(entries_root: Path) -> Path:
    return Path(entries_root).parent / AWAITING_FILE


def awaiting_reruns(entries_root: Path) -> dict[str, dict[str, str]]:
    """Entry path (relative to ``entries_root``) -> {"sha256", "reason"} of the entries that tier B
    cannot verify until they are re-run; empty when there is no list."""
    path = awaiting_path(entries_root)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))["entries"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CfdbenchError(f"{path}: unreadable list of entries awaiting a re-run ({err.__class__.__name__})") from None


def list_awaiting(entries_root: Path, paths: list[Path], reason: str) -> Path:
    """Add entries that tier B cannot verify to the awaiting list, each pinned by its SHA-256."""
    path = awaiting_path(entries_root)
    listed = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"why": AWAITING_WHY, "entries": {}}
    for entry in paths:
        name = Path(entry).relative_to(entries_root).as_posix()
        listed["entries"][name] = {"sha256": sha256_of(Path(entry)), "reason": reason}
    listed["entries"] = dict(sorted(listed["entries"].items()))
    return write_json_atomic(path, listed)


def prune_awaiting(entries_root: Path) -> None:
    """Drop the listings of entry files that no longer exist (an entry re-run and replaced, a track
    rebuilt from scratch): they exempt nothing."""
    path = awaiting_path(entries_root)
    if not path.is_file():
        return
    listed = json.loads(path.read_text(encoding="utf-8"))
    kept = {name: item for name, item in listed["entries"].items() if (Path(entries_root) / name).is_file()}
    if kept != listed["entries"]:
        write_json_atomic(path, {**listed, "entries": kept})


def awaiting_reason(entry_path: Path, entries_root: Path, awaiting: dict[str, dict[str, str]]) -> str | None:
    """Why the entry at ``entry_path`` waits for a re-run, when the list names it with its current digest."""
    listed = awaiting.get(Path(entry_path).relative_to(entries_root).as_posix())
    return listed["reason"] if listed and listed["sha256"] == sha256_of(Path(entry_path)) else None


# --------------------------------------------------------------------------- tier A


def verify_board(root: Path, baseline: str = "identity") -> list[str]:
    """Tier A over the leaderboard folder ``root`` (``entries/``, the pages, ``code/``, the awaiting list)."""
    from cfdbench.leaderboard.render import render_pages

    entries_root = Path(root) / "entries"
    awaiting = awaiting_reruns(entries_root)
    problems = []
    for path in entry_paths(entries_root):
        try:
            entry = load_entry(path)
        except CfdbenchError as err:
            problems.append(str(err))
            continue
        problems += _file_problems(entry, path, entries_root, awaiting)
    listed_missing = sorted(name for name in awaiting if not (entries_root / name).is_file())
    problems += [f"{awaiting_path(entries_root)}: lists {name}, which is not an entry file" for name in listed_missing]
    if problems:
        return problems  # the pages cannot be built from invalid entries
    try:
        pages = render_pages(entries_root, Path(root), baseline)
    except CfdbenchError as err:
        return [str(err)]
    for relative, text in pages.items():
        page = Path(root) / relative
        if not page.is_file() or page.read_text(encoding="utf-8") != text:
            problems.append(f"{page}: differs from the page built from the entries: run `cfdbench leaderboard build`")
    stale = sorted(p for p in (Path(root) / "figures").glob("*.svg") if p.relative_to(root).as_posix() not in pages)
    return problems + [f"{p}: a chart no table draws: run `cfdbench leaderboard build`" for p in stale]


def _file_problems(entry: Entry, path: Path, entries_root: Path, awaiting: dict[str, dict[str, str]]) -> list[str]:
    """The files an entry needs beside it: its predictions (or its place on the awaiting list) and its code."""
    from cfdbench.leaderboard.code import recoverable_problem

    problems = []
    if entry.predictions is not None:
        file = path.parent / entry.predictions["file"]
        if not file.is_file() or sha256_of(file) != entry.predictions["sha256"]:
            problems.append(f"{path}: its predictions file {file.name} is missing or does not match the entry's SHA-256")
    elif awaiting_reason(path, entries_root, awaiting) is None:
        problems.append(
            f"{path}: has no published predictions and is not listed, with its current SHA-256, in "
            f"{awaiting_path(entries_root)}: re-run it (an edited entry is no longer the one listed)"
        )
    if entry.schema_version >= 3:
        problem = recoverable_problem(entry, path)
        if problem:
            problems.append(f"{path}: {problem}")
    return problems


# --------------------------------------------------------------------------- tier B


def verify_predictions(entry_path: Path, dataset: str | Path | None = None, rtol: float = PREDICTIONS_RTOL) -> list[str]:
    """Tier B: recompute every score of the entry at ``entry_path`` from the predictions published beside
    it on ``dataset`` (default: the entry's dataset by name in the data folder); the differences."""
    from cfdbench.data.dataset_dir import content_hash
    from cfdbench.evaluation.predictions import Predictions
    from cfdbench.pipeline import require_dataset, rescore_predictions

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
    return _compare_tier(entry, rescore_predictions(predictions, data, entry.dataset["split"]), "B", rtol)


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


# --------------------------------------------------------------------------- tier C


def verify_checkpoint(
    entry_path: Path, checkpoint: Path, device: str = "auto", rtol: float = VERIFY_RTOL, dataset: str | Path | None = None
) -> list[str]:
    """Tier C: re-run the evaluation an entry describes from ``checkpoint`` on ``dataset`` (default: the
    entry's dataset by name in the data folder), the operator rebuilt from the entry's stored code; the
    differences (empty: verified)."""
    from cfdbench.leaderboard.code import load_operator
    from cfdbench.pipeline import evaluate_checkpoint
    from cfdbench.training.spectral_refine import RefineSettings

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
    problems = _compare_tier(entry, rerun, "C", rtol)  # every score the pages show; timings (cost) depend on the machine
    return problems + compare_numbers(entry.model["parameter_count"], rerun.model["parameter_count"], "$.model", rtol)
