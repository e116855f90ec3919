"""Fetch and unpack archives robustly: resumable HTTP, retries, verified digests, safe extraction.

A download is visible under its final name only once complete and verified; until then it
is a ``.part`` sibling that the next attempt resumes with an HTTP ``Range`` request. A digest
that is not pinned in the registry is recorded in a local lock file on first download and
enforced afterwards (trust on first use, said out loud). Extraction refuses entries that
would escape the target folder (``../``, absolute paths) and symbolic links, and unpacks into
a temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import stat
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cfdbench.errors import CfdbenchError
from cfdbench.io import remove_path, temporary_path, write_json_atomic

CHUNK = 1 << 20
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
Progress = Callable[[int, int | None], None]


class DownloadError(CfdbenchError):
    """A transfer that failed for good (after retries), or whose bytes do not verify."""


@dataclass(frozen=True)
class Archive:
    """One file of a release: its path under the endpoint, approximate size and pinned digest."""

    path: str
    size: int | None = None  # bytes; for the free-space check (and verification when exact)
    sha256: str | None = None
    size_exact: bool = False


class DigestLock:
    """``<folder>/release.lock.json``: digests recorded on first download of unpinned archives."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, name: str) -> str | None:
        return self.entries.get(name, {}).get("sha256")

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            write_json_atomic(self.path, self.entries)

    def record(self, name: str, sha256: str, size: int, url: str) -> None:
        self.entries[name] = {"sha256": sha256, "size": size, "url": url, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        write_json_atomic(self.path, self.entries)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_free_space(folder: Path, needed: int | None) -> None:
    """Refuse to start when the folder's disk cannot hold ``needed`` more bytes (plus 5 %)."""
    if not needed:
        return
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.05:
        raise CfdbenchError(f"not enough disk space in {folder}: need {needed / 1e9:.2f} GB, {free / 1e9:.2f} GB free")


def part_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.part")


def fetch(
    url: str,
    dest: Path,
    archive: Archive,
    lock: DigestLock,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resuming a ``.part`` file), verify it, then move it into place.

    Transient failures (dropped connections, timeouts, 5xx, 429) are retried ``retries`` times
    with exponential backoff, each retry resuming where the last stopped; 4xx errors and digest
    mismatches are final. An existing ``dest`` is verified, not downloaded again.
    """
    if dest.is_file():
        verify(dest, archive, lock, url)
        return dest
    part = part_path(dest)
    have = part.stat().st_size if part.is_file() else 0
    check_free_space(dest.parent, (archive.size or 0) - have)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout, progress, archive.size)
            break
        except _Retryable as err:
            if attempt == retries:
                raise DownloadError(f"{url}: giving up after {retries + 1} attempts ({err}); rerun to resume") from None
            time.sleep(backoff * 2**attempt)
    try:
        verify(part, archive, lock, url)
    except DownloadError:
        part.unlink(missing_ok=True)  # bad bytes are never resumed
        raise
    os.replace(part, dest)
    return dest


class _Retryable(Exception):
    pass


def _transfer(url: str, part: Path, timeout: float, progress: Progress | None, size_hint: int | None) -> None:
    """One attempt: append to ``part`` from its current size; raises _Retryable on transient failures."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "cfdbench", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part file is already complete
            return
        if err.code in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {err.code}") from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
        raise _Retryable(str(getattr(err, "reason", err))) from None
    with response:
        resumed = response.status == 206
        mode = "ab" if resumed else "wb"  # a server that ignores Range sends everything again
        done = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else size_hint
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, mode) as fh:
            try:
                while block := response.read(CHUNK):
                    fh.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as err:
                raise _Retryable(f"connection lost after {done} bytes ({err.__class__.__name__})") from None
        if total is not None and done < total:
            raise _Retryable(f"connection closed after {done} of {total} bytes")


def verify(path: Path, archive: Archive, lock: DigestLock, url: str) -> None:
    """Exact size (when known) and digest: pinned in the registry, else recorded on first use."""
    size = path.stat().st_size
    name = archive.path
    if archive.size_exact and archive.size is not None and size != archive.size:
        raise DownloadError(f"{name}: {size} bytes, expected {archive.size}; the download is truncated or wrong")
    digest = sha256_of(path)
    expected = archive.sha256 or lock.get(name)
    if expected is None:
        lock.record(name, digest, size, url)
        print(f"note: {name} has no pinned SHA-256; recorded {digest[:16]}… in {lock.path} and will verify against it")
        return
    if digest != expected:
        source = "the registry" if archive.sha256 else f"the digest recorded in {lock.path}"
        raise DownloadError(f"{name}: SHA-256 {digest[:16]}… does not match {source} ({expected[:16]}…); file deleted")


# --------------------------------------------------------------------------- extraction


def safe_extract(zip_path: Path, target: Path) -> Path:
    """Unpack ``zip_path`` into the new folder ``target`` atomically, refusing unsafe entries."""
    if target.exists():
        return target
    staging = temporary_path(target)
    remove_path(staging)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for member in archive.infolist():
                _check_member(member, zip_path)
            bad = archive.testzip()
            if bad is not None:
                raise CfdbenchError(f"{zip_path.name}: entry {bad} is corrupt (CRC mismatch); download it again")
            archive.extractall(staging)
        os.replace(staging, target)
    except zipfile.BadZipFile as err:
        remove_path(staging)
        raise CfdbenchError(f"{zip_path.name}: not a readable zip archive ({err}); delete it and download again") from None
    except BaseException:
        remove_path(staging)
        raise
    return target


def _check_member(member: zipfile.ZipInfo, zip_path: Path) -> None:
    name = member.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
        raise CfdbenchError(f"{zip_path.name}: unsafe entry '{member.filename}' would escape the target folder; not extracted")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise CfdbenchError(f"{zip_path.name}: entry '{member.filename}' is a symbolic link; refusing to extract")
