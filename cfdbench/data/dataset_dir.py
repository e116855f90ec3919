"""The side files of a dataset folder: manifest (checksums), splits (by case) and statistics.

- ``manifest.json``: SHA-256 and size of every case file, plus whatever the generator
  records about itself; written last, it seals the folder. :func:`content_hash` condenses
  it into one digest that names the data independently of how the JSON is formatted.
- ``splits.json``: seeded train/valid/test lists of case ids. Splitting is by case, so no
  frame of a test trajectory is ever seen in training.
- ``stats.yaml``: per-field mean, std and RMS of the values and of the frame differences,
  over the fluid cells of the training cases, accumulated case by case in float64.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cfdbench.data.case_file import CaseFile
from cfdbench.data.schema import SCHEMA_VERSION
from cfdbench.data.store import list_cases, open_case
from cfdbench.errors import CfdbenchError
from cfdbench.io import write_text_atomic

MANIFEST_FILE = "manifest.json"
SPLITS_FILE = "splits.json"
STATS_FILE = "stats.yaml"
SPLIT_NAMES = ("train", "valid", "test")
MIN_STD = 1e-12
_HASH_BLOCK = 2**20
_BLOCK_VALUES = 2**22  # values read at once per case when computing statistics


def is_sealed(dataset_dir: str | Path) -> bool:
    """Whether generation or conversion has finished the folder: the manifest is written last."""
    return (Path(dataset_dir) / MANIFEST_FILE).is_file()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CfdbenchError(f"{path}: no {what}; regenerate the dataset with `cfdbench data generate`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CfdbenchError(f"{path}: malformed {what} ({err})") from None


# --------------------------------------------------------------------------- manifest


def _hash_file(path: Path, digest: Any) -> int:
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size


def file_digest(path: Path) -> tuple[str, int]:
    """(SHA-256 hex digest, bytes) of a case file or zarr directory.

    A directory hashes its files in sorted relative-path order, each preceded by its
    relative path and size, so renaming or moving a file inside it changes the digest.
    """
    digest = hashlib.sha256()
    if not path.is_dir():
        size = _hash_file(path, digest)
        return digest.hexdigest(), size
    total = 0
    files = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
    for relative, file in files:
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        total += _hash_file(file, digest)
    return digest.hexdigest(), total


DIGESTS_DIR = ".digests"  # under cases/: one "<sha256> <bytes>" line per case, written right after the case


def _digest_path(case: Path) -> Path:
    return case.parent / DIGESTS_DIR / f"{case.name}.sha256"


def record_digest(case: Path) -> tuple[str, int]:
    """Checksum a case file just written and keep the digest beside it, so a later run can tell an
    intact file from one altered since (truncated, edited) before reusing it."""
    sha256, size = file_digest(case)
    path = _digest_path(case)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, f"{sha256} {size}\n")
    return sha256, size


def forget_digest(case: Path) -> None:
    _digest_path(case).unlink(missing_ok=True)


def recorded_digest(dataset_dir: str | Path, case: Path) -> tuple[str, int] | None:
    """The digest a case had when it was written: from its digest file, else from a manifest listing it."""
    path = _digest_path(case)
    if path.is_file():
        sha256, _, size = path.read_text().strip().partition(" ")
        if sha256 and size.isdigit():
            return sha256, int(size)
    manifest = Path(dataset_dir) / MANIFEST_FILE
    if manifest.is_file():
        try:
            listed = read_manifest(dataset_dir)["files"].get(case.relative_to(dataset_dir).as_posix())
        except CfdbenchError:
            return None
        if listed:
            return listed["sha256"], listed["bytes"]
    return None


def unverified_cases(dataset_dir: str | Path, cases: dict[str, Path]) -> list[str]:
    """Ids of ``cases`` whose bytes differ from their recorded digest, or that have none to check."""
    return [case_id for case_id, path in cases.items() if recorded_digest(dataset_dir, path) != file_digest(path)]


def write_manifest(dataset_dir: str | Path, info: dict[str, Any]) -> dict[str, Any]:
    """Checksum every stored case and write ``manifest.json`` atomically; return its content."""
    dataset_dir = Path(dataset_dir)
    files = {}
    for path in list_cases(dataset_dir).values():
        sha256, size = file_digest(path)
        files[path.relative_to(dataset_dir).as_posix()] = {"sha256": sha256, "bytes": size}
    manifest = {"schema_version": SCHEMA_VERSION, "info": info, "files": files}
    write_text_atomic(dataset_dir / MANIFEST_FILE, json.dumps(manifest, indent=2, default=_json_default) + "\n")
    return manifest


def read_manifest(dataset_dir: str | Path) -> dict[str, Any]:
    manifest = _read_json(Path(dataset_dir) / MANIFEST_FILE, "manifest")
    if not isinstance(manifest.get("files"), dict):
        raise CfdbenchError(f"{Path(dataset_dir) / MANIFEST_FILE}: malformed manifest (no 'files' table)")
    return manifest


def verify_manifest(dataset_dir: str | Path) -> list[str]:
    """Relative paths that do not match the manifest: changed, missing, or case files it does not list."""
    dataset_dir = Path(dataset_dir)
    listed = read_manifest(dataset_dir)["files"]
    bad = []
    for relative, expected in listed.items():
        path = dataset_dir / relative
        if not path.exists() or file_digest(path) != (expected["sha256"], expected["bytes"]):
            bad.append(relative)
    stored = {p.relative_to(dataset_dir).as_posix() for p in list_cases(dataset_dir).values()}
    return sorted(bad + sorted(stored - set(listed)))


VERIFIED_FILE = ".verified.json"  # (size, mtime) stamps of case files already checked against the manifest


def _stamp(path: Path) -> list[int]:
    """What changes when a case's bytes can have: sizes and modification times (of every file of a zarr store)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [f.stat() for f in files]
    return [len(stats), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]


def _read_stamps(dataset_dir: Path) -> dict:
    try:
        path = dataset_dir / VERIFIED_FILE
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _write_stamps(dataset_dir: Path, stamps: dict) -> None:
    try:
        write_text_atomic(dataset_dir / VERIFIED_FILE, json.dumps(stamps, indent=1) + "\n")
    except OSError:
        pass  # a read-only dataset is verified on every use


def is_verified(dataset_dir: str | Path, relative: str, expected: dict) -> bool:
    """Whether one case file matches ``expected`` (its manifest entry): by its stamp when it was
    verified before and has not changed since, else by hashing it (and stamping it when it matches)."""
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / relative
    stamps = _read_stamps(dataset_dir)
    if stamps.get(relative) == [*_stamp(path), expected["sha256"]]:
        return True
    if file_digest(path) != (expected["sha256"], expected["bytes"]):
        return False
    mark_verified(dataset_dir, {relative: expected["sha256"]})
    return True


def mark_verified(dataset_dir: str | Path, digests: dict[str, str]) -> None:
    """Record that case files (relative path -> SHA-256) were just checked against their digests
    (size-and-mtime stamps), in one write."""
    dataset_dir = Path(dataset_dir)
    stamps = _read_stamps(dataset_dir)
    stamps.update({relative: [*_stamp(dataset_dir / relative), sha256] for relative, sha256 in digests.items()})
    _write_stamps(dataset_dir, stamps)


def verify_checksums(dataset_dir: str | Path) -> None:
    """Refuse a dataset whose case files differ from its manifest's checksums, in one line.

    Every file is hashed once; its (size, mtime) stamp is then cached in ``.verified.json`` (when the
    folder is writable), so later uses of unchanged data are free while an edited file, whose stamp
    changes, is hashed again."""
    dataset_dir = Path(dataset_dir)
    listed = read_manifest(dataset_dir)["files"]
    cache = _read_stamps(dataset_dir)
    bad, checked = [], {}
    for relative, expected in listed.items():
        path = dataset_dir / relative
        if not path.exists():
            bad.append(relative)
            continue
        stamp = [*_stamp(path), expected["sha256"]]
        if cache.get(relative) != stamp:
            if file_digest(path) != (expected["sha256"], expected["bytes"]):
                bad.append(relative)
                continue
        checked[relative] = stamp
    if checked != cache:
        _write_stamps(dataset_dir, checked)
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise CfdbenchError(
            f"{dataset_dir}: {len(bad)} case file(s) do not match the manifest's checksums ({shown}): the data "
            "were modified or damaged after sealing; regenerate them (`cfdbench data generate`) or download them again"
        )


def content_hash(dataset_dir: str | Path) -> str:
    """SHA-256 over the manifest's sorted (path, digest) pairs: names the data, not the JSON."""
    return manifest_content_hash(read_manifest(dataset_dir))


def manifest_content_hash(manifest: dict) -> str:
    """:func:`content_hash` of a manifest already read."""
    files = manifest["files"]
    lines = "".join(f"{path}\0{files[path]['sha256']}\n" for path in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


# --------------------------------------------------------------------------- splits


def _split_counts(n: int, train: float, valid: float) -> list[int]:
    """Rounded (train, valid, test) sizes; with 3 cases or more no split is left empty."""
    n_train = round(train * n)
    n_valid = min(round(valid * n), n - n_train)
    counts = [n_train, n_valid, n - n_train - n_valid]
    if n >= 3:
        for empty in [i for i, count in enumerate(counts) if count == 0]:
            donor = int(np.argmax(counts))  # the training split, unless the fractions say otherwise
            counts[donor] -= 1
            counts[empty] += 1
    return counts


def make_splits(case_ids: Sequence[str], seed: int, train: float, valid: float) -> dict[str, list[str]]:
    """Split case ids into train/valid/test: sort, permute with ``default_rng(seed)``, cut.

    Sizes are ``round(train*N)`` and ``round(valid*N)`` (round half to even); test gets the
    rest. Each list is sorted. The same ids and seed always give the same split.
    """
    ids = sorted(case_ids)
    if not ids:
        raise CfdbenchError("cannot split an empty list of cases")
    if len(set(ids)) != len(ids):
        raise CfdbenchError("case ids to split contain duplicates")
    if not (0 <= train <= 1 and 0 <= valid <= 1 and train + valid <= 1 + 1e-9):
        raise CfdbenchError(f"split fractions must be in [0, 1] with train + valid <= 1, got {train} and {valid}")
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    bounds = np.cumsum([0, *_split_counts(len(ids), train, valid)])
    return {name: sorted(shuffled[bounds[k] : bounds[k + 1]]) for k, name in enumerate(SPLIT_NAMES)}


def _check_splits(splits: dict[str, list[str]]) -> None:
    if set(splits) != set(SPLIT_NAMES):
        raise CfdbenchError(f"splits must be exactly {list(SPLIT_NAMES)}, got {sorted(splits)}")
    seen: set[str] = set()
    for ids in splits.values():
        if seen & set(ids):
            raise CfdbenchError(f"a case is in more than one split: {sorted(seen & set(ids))[:5]}")
        seen |= set(ids)


def write_splits(dataset_dir: str | Path, splits: dict[str, list[str]], seed: int, fractions: tuple[float, float]) -> None:
    """Write ``splits.json`` atomically, with the seed and fractions that made it."""
    _check_splits(splits)
    train, valid = (float(f) for f in fractions)
    document = {
        "schema_version": SCHEMA_VERSION,
        "seed": int(seed),
        "fractions": {"train": train, "valid": valid, "test": round(1.0 - train - valid, 12)},
        "splits": {name: list(splits[name]) for name in SPLIT_NAMES},
    }
    write_text_atomic(Path(dataset_dir) / SPLITS_FILE, json.dumps(document, indent=2) + "\n")


def read_splits(dataset_dir: str | Path) -> dict[str, list[str]]:
    """The split name -> case ids table of ``splits.json``."""
    path = Path(dataset_dir) / SPLITS_FILE
    splits = _read_json(path, "splits file").get("splits")
    if not isinstance(splits, dict):
        raise CfdbenchError(f"{path}: malformed splits file (no 'splits' table)")
    _check_splits(splits)
    return {name: list(splits[name]) for name in SPLIT_NAMES}


# --------------------------------------------------------------------------- statistics


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations, merged batch by batch (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        n_b, mean_b = values.size, float(values.mean())
        m2_b = float(np.square(values - mean_b).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    def summary(self, suffix: str = "") -> dict[str, float]:
        """Population mean, std and RMS (``unbiased=False``)."""
        variance = self.m2 / self.n
        return {
            f"mean{suffix}": self.mean,
            f"std{suffix}": math.sqrt(variance),
            f"rms{suffix}": math.sqrt(variance + self.mean * self.mean),
        }


def _accumulate_case(
    case: CaseFile, fields: Sequence[str], values: dict[str, _Moments], deltas: dict[str, _Moments], fluid_only: bool
) -> None:
    """Add one case's fluid (or all) values and frame differences, reading a block of frames at a time."""
    mask = case.mask if fluid_only else np.ones_like(case.mask)
    block = max(1, _BLOCK_VALUES // (len(fields) * mask.size))
    for start in range(0, case.n_frames, block):
        stop = min(start + block, case.n_frames)
        # One frame of overlap with the next block, so every difference f[t+1] - f[t] is counted once.
        frames = case.read(fields, slice(start, min(stop + 1, case.n_frames))).astype(np.float64)
        for channel, name in enumerate(fields):
            series = frames[:, channel]
            values[name].add(series[: stop - start][:, mask])
            deltas[name].add(np.diff(series, axis=0)[:, mask])


def compute_stats(
    dataset_dir: str | Path, case_ids: Sequence[str], fields: Sequence[str] = ("u", "v", "p"), fluid_only: bool = True
) -> dict[str, Any]:
    """Per-field mean/std/rms of values and of frame differences over the fluid cells of some cases
    (over every cell with ``fluid_only=False``, as The Well computes them).

    Cases are read one at a time and merged with mixture-moment formulas in float64, so memory
    stays bounded by one block of one case. A (near-)constant field raises: it cannot be
    normalised.
    """
    if not case_ids:
        raise CfdbenchError("statistics need at least one case")
    if len(set(case_ids)) != len(case_ids):
        raise CfdbenchError("case ids for statistics contain duplicates")
    stored = list_cases(dataset_dir)
    fields = list(fields)
    values = {name: _Moments() for name in fields}
    deltas = {name: _Moments() for name in fields}
    for case_id in case_ids:
        if case_id not in stored:
            raise CfdbenchError(f"case '{case_id}' is not stored in {dataset_dir}")
        with open_case(stored[case_id]) as case:
            _accumulate_case(case, fields, values, deltas, fluid_only)
    stats: dict[str, Any] = {}
    for name in fields:
        if values[name].n == 0 or deltas[name].n == 0:
            raise CfdbenchError(f"field '{name}': statistics need fluid cells and cases of at least 2 frames")
        stats[name] = {**values[name].summary(), **deltas[name].summary("_delta")}
        for key in ("std", "std_delta"):
            if stats[name][key] < MIN_STD:
                raise CfdbenchError(f"field '{name}' has {key} {stats[name][key]:.3g} < {MIN_STD}: it is constant")
    stats["n_cases"] = len(case_ids)
    stats["n_values"] = values[fields[0]].n
    return stats


def write_stats(path: str | Path, stats: dict[str, Any]) -> None:
    """Write statistics as YAML, atomically."""
    write_text_atomic(Path(path), yaml.safe_dump(stats, sort_keys=False))


def read_stats(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        stats = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CfdbenchError(f"{path}: no statistics file") from None
    except yaml.YAMLError as err:
        raise CfdbenchError(f"{path}: malformed statistics file ({err})") from None
    if not isinstance(stats, dict):
        raise CfdbenchError(f"{path}: malformed statistics file (expected a mapping)")
    return stats
