"""Getting an entry onto the leaderboard, and checking one that is there.

- :func:`submit_run` takes a run folder's ``entry.json``, validates it, checks that its dataset is
  the published one (the content hash recorded in the dataset's card), refuses a duplicate, and
  writes it under ``leaderboard/entries/<dataset>/``.
- :func:`verify_entry` re-runs an entry's evaluation from a checkpoint on the local copy of its
  dataset and lists every number that differs beyond a stated tolerance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cfdbench.cards import find_channel_card, load_dataset_card
from cfdbench.errors import CfdbenchError
from cfdbench.leaderboard.entry import entry_paths, load_entry, save_entry
from cfdbench.training.spectral_refine import RefineSettings

# Re-evaluating a checkpoint on other hardware changes float32 results at the 1e-6 level per
# step, and autoregressive rollouts amplify that; 1e-4 relative still catches any edited digit
# that matters for a ranking.
VERIFY_RTOL = 1e-4
VERIFY_ATOL = 1e-12
REPRODUCED = (
    "metrics", "curves", "rollout_windows", "valid_time", "confidence", "diverged",
    "strouhal", "channel_statistics", "refinement",
)  # fmt: skip


def published_hash(dataset: str) -> str:
    """The content hash the dataset's card publishes for the dataset ``dataset`` (a card or variant name)."""
    card = find_channel_card(dataset)
    if card is None:
        try:
            card = load_dataset_card(dataset)
        except CfdbenchError:
            raise CfdbenchError(f"dataset '{dataset}' has no card in datasets/: only published datasets are ranked") from None
    hashes = card.raw.get("published_content_hashes") or {}
    if dataset not in hashes:
        raise CfdbenchError(
            f"the card {card.path} publishes no content hash for '{dataset}' (published_content_hashes: {sorted(hashes)})"
        )
    return str(hashes[dataset])


def _identity_key(entry: dict) -> tuple:
    """What makes two entries the same submission: model and its settings, data, task, seed."""
    training = entry["training"]["config"] if entry["training"] else None
    return (
        entry["model"]["name"],
        repr(sorted(entry["model"]["config"].items())),
        entry["dataset"]["content_hash"],
        entry["dataset"]["split"],
        repr(sorted(entry["task"].items())),
        entry["seed"],
        repr(sorted(training.items())) if training else None,
    )


def submit_run(run_dir: Path, entries_root: Path) -> Path:
    """Validate ``run_dir/entry.json`` and write it to ``entries_root/<dataset>/<entry_id>.json``."""
    source = Path(run_dir) / "entry.json" if Path(run_dir).is_dir() else Path(run_dir)
    entry = load_entry(source)
    dataset = entry["dataset"]["name"]
    expected = published_hash(dataset)
    if entry["dataset"]["content_hash"] != expected:
        raise CfdbenchError(
            f"{source}: evaluated on {dataset} with content hash {entry['dataset']['content_hash'][:12]}..., but its card "
            f"publishes {expected[:12]}...: regenerate the dataset (`cfdbench data generate {dataset}`) and re-evaluate"
        )
    folder = Path(entries_root) / dataset
    existing = entry_paths(folder) if folder.is_dir() else []
    for path in existing:
        if _identity_key(load_entry(path)) == _identity_key(entry):
            raise CfdbenchError(f"{source}: the leaderboard already holds this submission as {path}")
    target = folder / f"{entry['entry_id']}.json"
    if target.exists():
        raise CfdbenchError(f"{source}: {target} already exists")
    published = {key: value for key, value in entry.items() if key != "artifacts"}  # run-folder paths mean nothing here
    return save_entry(published, target)


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


def verify_entry(
    entry_path: Path, checkpoint: Path, device: str = "auto", rtol: float = VERIFY_RTOL, dataset: str | Path | None = None
) -> list[str]:
    """Re-run the evaluation an entry describes from ``checkpoint`` on ``dataset`` (default: the entry's
    dataset by name in the data folder); the differences (empty: verified)."""
    from cfdbench.pipeline import evaluate_checkpoint

    entry = load_entry(entry_path)
    data, task = entry["dataset"], entry["task"]
    refine = RefineSettings(**entry["refinement"]["settings"]) if entry.get("refinement") else None
    _, rerun = evaluate_checkpoint(
        checkpoint, str(dataset or data["name"]), data["split"], task["rollout_steps"], task["start_frame"], device, None, refine
    )
    if rerun["dataset"]["content_hash"] != data["content_hash"]:
        raise CfdbenchError(
            f"{entry_path}: the local {data['name']} has content hash {rerun['dataset']['content_hash'][:12]}..., the entry's "
            f"is {data['content_hash'][:12]}...: verify needs the same data"
        )
    if rerun["task"] != task or rerun["dataset"]["case_ids"] != data["case_ids"]:
        raise CfdbenchError(f"{entry_path}: the checkpoint's task or split differs from the entry's ({rerun['task']})")
    problems = []
    for key in REPRODUCED:  # every score the pages show; timings (cost) depend on the machine
        problems += compare_numbers(entry.get(key), rerun.get(key), f"$.{key}", rtol)
    return problems + compare_numbers(entry["model"]["parameter_count"], rerun["model"]["parameter_count"], "$.model", rtol)
