"""Atomic file writes: every file cfdbench writes appears complete or not at all.

A writer fills a dot-named temporary sibling owned by this process, which is renamed over
the final name only once it is complete; an interruption leaves at most a temporary file
that resumable code recognises (:func:`is_partial`) and removes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_path(final: Path, tag: str = "tmp") -> Path:
    """Dot-named sibling of ``final`` owned by this process (``.bc-0001.h5.tmp-1234``)."""
    return final.with_name(f".{final.name}.{tag}-{os.getpid()}")


def is_partial(name: str) -> bool:
    """Whether a file name is a leftover of an interrupted atomic write."""
    return name.startswith(".") and (".tmp-" in name or ".old-" in name)


def remove_path(path: Path) -> None:
    """Delete a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Push a file, or every file of a folder tree, to disk before it is renamed into place."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb+") as fh:
            os.fsync(fh.fileno())


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through; it is renamed into place on success
    and deleted if the block raises (Ctrl-C included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """Indented JSON, atomically; values JSON does not know (paths, dates) are written as strings."""
    return write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")
