"""Datasets named by URL (``s3://bucket/cavity-mini``, ``https://...``, ``hf://datasets/...``), read
through a local cache whose case files are verified against the manifest before use.

Any fsspec URL works wherever a dataset is named; the scheme's driver must be installed (``s3fs``
for ``s3://``: ``pip install 'cfdbench[s3]'``) and takes the standard credentials and endpoint
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``
for S3-compatible servers, ``HF_TOKEN``, ...).

- :func:`open_remote` fetches ``manifest.json``, ``splits.json`` and ``stats.yaml`` into the
  URL's cache folder (``$CFDBENCH_CACHE``, else ``~/.cache/cfdbench``) and returns a
  :class:`RemoteDataset`: a :class:`~cfdbench.data.view.StoredDataset` whose folder is that
  cache. A case is fetched the first time it is opened: downloaded to a dot-named temporary
  beside its final name in block-sized range reads (a dropped connection resumes where it
  stopped, a few times, then fails in one line), checked against the manifest's SHA-256 and
  size, and only then renamed into place. A case that fails its digest is deleted: nothing
  unverified is ever read or kept. Later reads use the cached file (its size-and-mtime stamp
  is checked, as for local datasets), so later epochs run at the local speed.
- :func:`push_dataset` uploads a sealed local dataset: its cases, then its side files, then
  ``manifest.json`` last (an older manifest is deleted first), so a half-pushed dataset is never
  taken for a complete one.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cfdbench.data.dataset_dir import (
    MANIFEST_FILE,
    SPLITS_FILE,
    STATS_FILE,
    file_digest,
    is_verified,
    mark_verified,
    read_manifest,
    verify_checksums,
)
from cfdbench.data.store import list_cases, remove_partials
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError, DatasetNotFoundError
from cfdbench.io import fsync_path, remove_path, temporary_path, write_text_atomic

CACHE_ENV = "CFDBENCH_CACHE"
BLOCK = 16 * 2**20  # bytes per range read
RETRIES = 4  # consecutive failed reads of one object before giving up
BACKOFF = 0.2  # seconds, doubled per retry
DRIVERS = {  # fsspec scheme -> the package that provides it
    "s3": "s3fs (pip install 'cfdbench[s3]')",
    "s3a": "s3fs (pip install 'cfdbench[s3]')",
    "hf": "huggingface_hub (pip install huggingface_hub)",
    "gs": "gcsfs (pip install gcsfs)",
    "gcs": "gcsfs (pip install gcsfs)",
    "az": "adlfs (pip install adlfs)",
    "abfs": "adlfs (pip install adlfs)",
    "http": "aiohttp (pip install aiohttp)",
    "https": "aiohttp (pip install aiohttp)",
}
SIDE_FILES = (SPLITS_FILE, STATS_FILE)
FETCHERS = 8  # concurrent case downloads of a prefetch
_STAMPS = threading.Lock()  # one writer of a cache's verification stamps per process


def is_url(name: str | Path) -> bool:
    """Whether a dataset is named by URL (``scheme://...``) rather than by name or path."""
    return isinstance(name, str) and "://" in name


def cache_root() -> Path:
    """Where fetched datasets are kept: ``$CFDBENCH_CACHE``, else ``$XDG_CACHE_HOME/cfdbench`` (``~/.cache/cfdbench``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cfdbench"


def cache_folder(url: str) -> Path:
    """The cache folder of one dataset URL: its last path component and a digest of the whole URL."""
    url = url.rstrip("/")
    name = url.rsplit("/", 1)[-1] or "dataset"
    return cache_root() / f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


# --------------------------------------------------------------------------- errors


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or err.__class__.__name__


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def _translated(url: str, err: Exception, doing: str) -> CfdbenchError:
    """A failed remote operation as one line naming the URL and what to do."""
    kind = err.__class__.__name__
    if kind in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return CfdbenchError(
            f"{url}: no credentials to {doing}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
            "and AWS_ENDPOINT_URL for an S3-compatible server"
        )
    if isinstance(err, PermissionError):
        return CfdbenchError(
            f"{url}: access denied to {doing} ({_one_line(err)}); check the credentials and the bucket's permissions"
        )
    if isinstance(err, (ConnectionError, TimeoutError, OSError)) or "Connect" in kind or "Timeout" in kind:
        endpoint = ", AWS_ENDPOINT_URL for an S3-compatible server" if _scheme(url).startswith("s3") else ""
        return CfdbenchError(
            f"{url}: cannot reach the server to {doing} ({_one_line(err)}); check the URL{endpoint} and the network"
        )
    return CfdbenchError(f"{url}: could not {doing} ({kind}: {_one_line(err)})")


@contextmanager
def _remote(url: str, doing: str) -> Iterator[None]:
    """Turn the errors of fsspec and its drivers into one line; a missing object stays FileNotFoundError."""
    try:
        yield
    except (CfdbenchError, FileNotFoundError):
        raise
    except Exception as err:  # noqa: BLE001 - drivers raise their own kinds (botocore, aiohttp, ...)
        raise _translated(url, err, doing) from None


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec file system, path inside it) of a URL; a scheme without its driver is one line saying
    what to install. Always a new instance, not fsspec's cached one: that one keeps the endpoint and
    credentials of the environment it was made in, and its connections belong to the process that
    opened them (not to a forked worker)."""
    import fsspec

    scheme = _scheme(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    except ImportError:
        driver = DRIVERS.get(scheme, f"the fsspec driver of {scheme}://")
        raise CfdbenchError(f"{url}: reading {scheme}:// URLs needs {driver}, which is not installed") from None
    except ValueError as err:
        raise CfdbenchError(
            f"{url}: unknown URL scheme '{scheme}' ({_one_line(err)}); "
            "name a dataset by a path, or by an s3://, https:// or hf:// URL"
        ) from None
    return fs, path.rstrip("/")


# --------------------------------------------------------------------------- reading


class RemoteDataset(StoredDataset):
    """A dataset at a URL, seen through its local cache folder (``path``); cases are fetched and
    verified on first use (:meth:`case_path`)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self._fs, self.root = filesystem(self.url)
        self._pid = os.getpid()
        side = self._side_files()  # the manifest first: nothing is written for a URL without one
        folder = cache_folder(self.url)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in side.items():
            write_text_atomic(folder / name, text)
        remove_partials(folder)  # downloads of fetchers that were killed
        super().__init__(folder)
        self._cases = {Path(relative).stem: folder / relative for relative in sorted(self.manifest["files"])}
        self._verified: set[str] = set()

    @property
    def fs(self) -> Any:
        """The file system, reopened in a forked worker: fsspec's asynchronous drivers refuse to be used across a fork."""
        if self._pid != os.getpid():
            self._fs, _ = filesystem(self.url)
            self._pid = os.getpid()
        return self._fs

    def _side_files(self) -> dict[str, str]:
        """manifest.json (required), splits.json and stats.yaml (when present) as text."""
        with _remote(self.url, "read the manifest"):
            try:
                texts = {MANIFEST_FILE: self.fs.cat_file(f"{self.root}/{MANIFEST_FILE}").decode()}
            except FileNotFoundError:
                raise DatasetNotFoundError(
                    f"{self.url} has no {MANIFEST_FILE}: it is not a sealed cfdbench dataset (or still being pushed); "
                    f"upload one with `cfdbench data push NAME {self.url}`"
                ) from None
            for name in SIDE_FILES:
                try:
                    texts[name] = self.fs.cat_file(f"{self.root}/{name}").decode()
                except FileNotFoundError:
                    pass
        return texts

    def _local(self, case_id: str) -> tuple[str, Path]:
        """(path relative to the dataset, cache path) of a case, fetched or not."""
        local = StoredDataset.case_path(self, case_id)
        return local.relative_to(self.path).as_posix(), local

    def case_path(self, case_id: str) -> Path:
        """The cached, verified case file, fetched first when it is not in the cache yet."""
        relative, local = self._local(case_id)
        if relative not in self._verified:
            fetched = self._ensure(relative, local)
            if fetched:
                with _STAMPS:
                    mark_verified(self.path, fetched)
        return local

    def prefetch(self, case_ids: list[str]) -> None:
        """Fetch the cases not in the cache yet, ``FETCHERS`` at a time; the first failure is raised
        (every failed download is deleted)."""
        todo = [self._local(case_id) for case_id in case_ids]
        todo = [(relative, local) for relative, local in todo if relative not in self._verified]
        with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
            results = list(pool.map(lambda item: self._ensure(*item), todo))
        fetched = {relative: sha256 for result in results for relative, sha256 in result.items()}
        if fetched:
            with _STAMPS:
                mark_verified(self.path, fetched)

    def _ensure(self, relative: str, local: Path) -> dict[str, str]:
        """Check the cached copy, else fetch it; returns {relative: sha256} when it was fetched (to stamp)."""
        expected = self.manifest["files"][relative]
        fetched = {}
        if not (local.exists() and is_verified(self.path, relative, expected)):
            self._fetch(relative, local, expected)
            fetched = {relative: expected["sha256"]}
        self._verified.add(relative)
        return fetched

    def cached_cases(self) -> int:
        """How many of the manifest's cases are in the local cache already."""
        return len(list_cases(self.path))

    def _fetch(self, relative: str, local: Path, expected: dict) -> None:
        """Download one case into a temporary beside ``local``, check its digest, and rename it into place."""
        url = f"{self.url}/{relative}"
        tmp = temporary_path(local)
        remove_path(tmp)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            if local.suffix == ".zarr":
                self._download_directory(f"{self.root}/{relative}", tmp, url)
            else:
                _download(self.fs, f"{self.root}/{relative}", tmp, int(expected["bytes"]), url)
            sha256, size = file_digest(tmp)
            if (sha256, size) != (expected["sha256"], expected["bytes"]):
                raise CfdbenchError(
                    f"{url}: SHA-256 {sha256[:16]}... ({size} bytes) does not match the manifest's "
                    f"{expected['sha256'][:16]}... ({expected['bytes']} bytes): the stored object is damaged or was altered; "
                    "nothing was cached (push the dataset again)"
                )
            fsync_path(tmp)
            _place(tmp, local)
        except BaseException:
            remove_path(tmp)
            raise

    def _download_directory(self, remote: str, tmp: Path, url: str) -> None:
        """Every object under ``remote`` (a zarr case) into the folder ``tmp``."""
        with _remote(url, "list the case's objects"):
            try:
                listing = self.fs.find(remote, detail=True)
            except FileNotFoundError:
                listing = {}
        if not listing:
            raise CfdbenchError(f"{url}: listed in the manifest but not stored there; push the dataset again")
        for path, info in sorted(listing.items()):
            inside = path[len(remote.rstrip("/")) + 1 :]
            _download(self.fs, path, tmp / inside, int(info["size"]), f"{url}/{inside}")


def _download(fs: Any, remote: str, dest: Path, size: int, url: str) -> None:
    """Copy one object of ``size`` bytes to ``dest`` by range reads; a failed read is retried from
    where the last one stopped (``RETRIES`` times in a row at most, with back-off)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    done, failures = 0, 0
    with open(dest, "wb") as out:
        while done < size:
            try:
                block = fs.cat_file(remote, start=done, end=min(done + BLOCK, size))
            except FileNotFoundError:
                raise CfdbenchError(f"{url}: listed in the manifest but not stored there; push the dataset again") from None
            except Exception as err:  # noqa: BLE001 - a dropped connection, a timeout, a 5xx: resumed below
                block, error = b"", err
                if _final(err):
                    raise _translated(url, err, "read the case") from None
            else:
                error = None
            if block:
                out.write(block)
                done, failures = done + len(block), 0
                continue
            failures += 1
            if failures > RETRIES:
                why = _one_line(error) if error else "the server sent no data"
                raise CfdbenchError(
                    f"{url}: connection lost after {done} of {size} bytes, {failures} reads in a row failed ({why}); "
                    "nothing was cached: run again to retry"
                )
            time.sleep(BACKOFF * 2 ** (failures - 1))


def _final(err: Exception) -> bool:
    """Errors that a retry cannot fix: refused access or credentials."""
    return isinstance(err, PermissionError) or err.__class__.__name__ in ("NoCredentialsError", "PartialCredentialsError")


def _place(tmp: Path, final: Path) -> None:
    """Rename a verified download into place; an older copy (altered since) is moved aside first. A
    concurrent fetcher (another worker or rank) may have placed the same bytes already: ours is then dropped."""
    old = temporary_path(final, "old") if final.exists() else None
    try:
        if old is not None:
            os.replace(final, old)
        os.replace(tmp, final)
    except OSError:
        if not final.exists():
            raise
    finally:
        if old is not None:
            remove_path(old)


def open_remote(url: str) -> RemoteDataset:
    return RemoteDataset(url)


# --------------------------------------------------------------------------- pushing


def push_dataset(source: str | Path, url: str, progress: Callable[[int, int], None] | None = None) -> int:
    """Upload a sealed local dataset folder to ``url``; returns the bytes sent.

    The local files are checked against their manifest first. Any manifest already at ``url`` is
    deleted before the upload and the new one is written last, so readers never take a
    half-pushed dataset for a complete one."""
    source = Path(source)
    verify_checksums(source)
    files = _files_to_push(source)
    total = sum(path.stat().st_size for _, path in files)
    fs, root = filesystem(url)
    sent = 0
    with _remote(url, "upload the dataset"):
        fs.makedirs(root, exist_ok=True)
        try:
            fs.rm_file(f"{root}/{MANIFEST_FILE}")
        except FileNotFoundError:
            pass
        for relative, path in [*files, (MANIFEST_FILE, source / MANIFEST_FILE)]:
            fs.put_file(str(path), f"{root}/{relative}")
            sent += path.stat().st_size
            if progress:
                progress(sent, total)
    return sent


def _files_to_push(source: Path) -> list[tuple[str, Path]]:
    """(relative path, local file) of every case file the manifest lists, then the top-level side
    files; hidden files (locks, digests, verification stamps) and the manifest itself are left out."""
    listed = read_manifest(source)["files"]
    files = []
    for relative in sorted(listed):
        path = source / relative
        inner = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files += [
            (p.relative_to(source).as_posix(), p)
            for p in inner
            if not any(part.startswith(".") for part in p.relative_to(source).parts)
        ]
    side = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST_FILE)
    return files + [(p.name, p) for p in side]


__all__ = ["RemoteDataset", "cache_root", "is_url", "open_remote", "push_dataset"]
