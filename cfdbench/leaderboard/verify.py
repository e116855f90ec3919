"""Verification of the leaderboard in three tiers, each a list of the problems it finds (empty: verified).
Tier A is here; tiers B and C recompute scores through the pipeline's evaluation, so they live
in the pipeline beside it (:mod:`cfdbench.pipeline`); the comparison of numbers all three use is here.

- **A** (:func:`verify_board`): every entry file valid (schema, finite numbers, each score the mean of
  its curve, every derived number consistent), the identity baselines in agreement, every published
  predictions file and stored plug-in source present with its digest, every entry without
  predictions listed as awaiting a re-run (pinned by its SHA-256), and the committed pages equal to
  the pages built afresh from the entries. Needs nothing but the repository.
- **B** (:func:`cfdbench.pipeline.verify_predictions`): every score of an entry recomputed, by the evaluation's own
  code, from the predictions published beside it and the dataset (its content hash checked).
- **C** (:func:`cfdbench.pipeline.verify_checkpoint`): the evaluation re-run from a checkpoint, the operator rebuilt
  from the code the entry stores (never from the author's path).

Entries scored before predictions were published cannot pass tier B; ``leaderboard/awaiting-rerun.json``
lists each of them with its SHA-256 and the reason, tier B reports them by name instead of passing
them, and the pages mark them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cfdbench.data.download import sha256_of
from cfdbench.entries.entry import Entry, entry_paths, load_entry
from cfdbench.errors import CfdbenchError
from cfdbench.leaderboard.awaiting import awaiting_path, awaiting_reason, awaiting_reruns
from cfdbench.leaderboard.pages import render_pages

# Re-evaluating a checkpoint on other hardware changes float32 results at the 1e-6 level per
# step, and autoregressive rollouts amplify that; 1e-4 relative still catches any edited digit
# that matters for a ranking.
VERIFY_RTOL = 1e-4
# Recomputing from published predictions repeats the same float64 metric code on the same float32
# frames: only the order of floating-point sums may differ between machines.
PREDICTIONS_RTOL = 1e-6
VERIFY_ATOL = 1e-12
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


def compare_tier(entry: Entry, rerun: Any, tier: str, rtol: float) -> list[str]:
    """The differences, over every key the tier recomputes, between an entry and its recomputation."""
    return [
        problem for key in Entry.tier_keys(tier) for problem in compare_numbers(entry.get(key), rerun.get(key), f"$.{key}", rtol)
    ]


# --------------------------------------------------------------------------- tier A


def verify_board(root: Path, baseline: str = "identity") -> list[str]:
    """Tier A over the leaderboard folder ``root`` (``entries/``, the pages, ``code/``, the awaiting list)."""
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
