"""Getting an entry onto the leaderboard: :func:`submit_run` takes a run folder's ``entry.json``,
validates it, checks that its dataset is the published one (the content hash recorded in the
dataset's card), that its operator's code can be recovered and its predictions are beside it,
refuses a duplicate, and writes it under ``leaderboard/entries/<dataset>/`` with its predictions
file (and a plug-in's source under ``leaderboard/code/``). Verification is :mod:`.verify`'s.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cfdbench.cards import find_card
from cfdbench.data.download import sha256_of
from cfdbench.entries.entry import SCHEMA_VERSION, Entry, entry_paths, load_entry, save_entry
from cfdbench.errors import CfdbenchError
from cfdbench.leaderboard.awaiting import list_awaiting
from cfdbench.leaderboard.code import CODE_DIR, find_stored_source, recoverable_problem


def published_hash(dataset: str) -> str:
    """The content hash the dataset's card publishes for the dataset ``dataset`` (a card or variant name)."""
    try:
        card = find_card(dataset)
    except CfdbenchError:
        raise CfdbenchError(f"dataset '{dataset}' has no card in datasets/: only published datasets are ranked") from None
    hashes = card.raw.get("published_content_hashes") or {}
    if dataset not in hashes:
        raise CfdbenchError(
            f"the card {card.path} publishes no content hash for '{dataset}' (published_content_hashes: {sorted(hashes)})"
        )
    return str(hashes[dataset])


def _identity_key(entry: Entry) -> tuple:
    """What makes two entries the same submission: model and its settings and code, data, task, seed."""
    training = entry["training"]["config"] if entry["training"] else None
    return (
        entry["model"]["name"],
        repr(sorted(entry["model"]["config"].items())),
        entry["dataset"]["content_hash"],
        entry["dataset"]["split"],
        repr(sorted(entry["task"].items())),
        entry["seed"],
        repr(sorted(training.items())) if training else None,
        (entry.code or {}).get("sha256"),
    )


def submit_run(run_dir: Path, entries_root: Path) -> Path:
    """Validate ``run_dir/entry.json`` and write it to ``entries_root/<dataset>/<entry_id>.json``, its
    predictions beside it and a plug-in's source in ``entries_root/../code/``. Every check runs before
    anything is written: a refused entry changes nothing."""
    source = Path(run_dir) / "entry.json" if Path(run_dir).is_dir() else Path(run_dir)
    entry = load_entry(source)
    predictions = _submission_problems(entry, source)
    dataset = entry.dataset["name"]
    folder = Path(entries_root) / dataset
    existing = entry_paths(folder) if folder.is_dir() else []
    for path in existing:
        if _identity_key(load_entry(path)) == _identity_key(entry):
            raise CfdbenchError(f"{source}: the leaderboard already holds this submission as {path}")
    target = folder / f"{entry.entry_id}.json"
    if target.exists():
        raise CfdbenchError(f"{source}: {target} already exists")
    folder.mkdir(parents=True, exist_ok=True)
    if entry.code["kind"] == "source":
        stored = Path(entries_root).parent / CODE_DIR / f"{entry.code['sha256']}.py"
        stored.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(find_stored_source(entry.code, source), stored)
    if predictions is not None:
        shutil.copyfile(predictions, folder / predictions.name)
    path = save_entry(
        {key: value for key, value in entry.items() if key != "artifacts"}, target
    )  # run-folder paths mean nothing here
    if predictions is None:
        list_awaiting(entries_root, [target], "hybrid solver: scored by re-running the generator (tier C)")
    return path


def _submission_problems(entry: Entry, source: Path) -> Path | None:
    """Refuse, in one line, an entry the leaderboard cannot rank or others cannot check: an older
    format, data other than the published bytes, code that cannot be recovered, predictions that are
    missing or do not match. Returns the predictions file (None for a hybrid solver, which has none)."""
    if entry.schema_version < SCHEMA_VERSION:
        raise CfdbenchError(
            f"{source}: written in entry format {entry.schema_version}, without its code identity and predictions; "
            f"re-evaluate the checkpoint with this cfdbench (`cfdbench evaluate --checkpoint ...`) and submit that"
        )
    dataset = entry.dataset["name"]
    expected = published_hash(dataset)
    if entry.dataset["content_hash"] != expected:
        raise CfdbenchError(
            f"{source}: evaluated on {dataset} with content hash {entry.dataset['content_hash'][:12]}..., but its card "
            f"publishes {expected[:12]}...: regenerate the dataset (`cfdbench data generate {dataset}`) and re-evaluate"
        )
    problem = recoverable_problem(entry, source)
    if problem:
        raise CfdbenchError(f"{source}: the operator's code cannot be recovered: {problem}")
    if entry.predictions is None:
        if entry.hybrid is None:
            raise CfdbenchError(f"{source}: publishes no predictions, so nobody could recompute its scores: re-evaluate it")
        return None
    predictions = source.parent / entry.predictions["file"]
    if not predictions.is_file() or sha256_of(predictions) != entry.predictions["sha256"]:
        raise CfdbenchError(f"{source}: its predictions file {predictions.name} is missing or does not match the entry")
    return predictions
