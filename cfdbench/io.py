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


def writer_pid(name: str) -> int | None:
    """The process id a temporary file name carries (``.x.tmp-1234`` -> 1234), if any."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def is_stale_partial(name: str) -> bool:
    """A leftover of an interrupted write whose writer is gone: safe to delete (a live writer's
    temporary file is never touched, so concurrent shards do not destroy each other's work)."""
    if not is_partial(name):
        return False
    pid = writer_pid(name)
    return pid is None or not process_alive(pid)


@contextmanager
def folder_lock(folder: Path, purpose: str, key: str = "all") -> Iterator[None]:
    """Hold an advisory lock on ``folder`` for ``purpose`` (one writer per ``key``, e.g. a shard).

    A second holder is refused at once with the first one's process id. The lock is the kernel's
    (``fcntl.flock``), so it vanishes with its process: a killed writer leaves no stale lock behind."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".lock-{key.replace('/', '-of-')}"
    try:
        import fcntl
    except ImportError:  # no flock on this platform: run unlocked
        yield
        return
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            from cfdbench.errors import CfdbenchError

            raise CfdbenchError(
                f"{folder} is being written by {holder} ({purpose}); wait for it to finish or stop it, then run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def require_space(folder: Path, needed: int, what: str) -> None:
    """Refuse, in one line, a write of about ``needed`` bytes into ``folder`` that the disk cannot hold
    (checked before the write: a full disk mid-write crashes HDF5 rather than failing cleanly)."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        from cfdbench.errors import CfdbenchError

        raise CfdbenchError(
            f"not enough disk space in {folder} for {what}: it needs about {needed / 2**20:.1f} MiB, "
            f"{free / 2**20:.1f} MiB are free; free some space or write elsewhere (--out, CFDBENCH_DATA)"
        )


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
