"""The list of entries awaiting a re-run (``leaderboard/awaiting-rerun.json``): entries scored before
predictions were published, which tier B cannot verify. Each is pinned by the SHA-256 of its file,
so an edited entry is no longer the one listed; the pages mark them and tier B names them.
"""

from __future__ import annotations

import json
from pathlib import Path

from cfdbench.data.download import sha256_of
from cfdbench.errors import CfdbenchError
from cfdbench.io import write_json_atomic

AWAITING_FILE = "awaiting-rerun.json"  # in leaderboard/, beside entries/
AWAITING_WHY = (
    "Entries that publish no predictions, so verification tier B cannot recompute their scores: each is pinned by "
    "its SHA-256 (an edited entry is no longer the one listed and fails tiers A and B) until it is re-run."
)


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
