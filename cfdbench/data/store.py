"""One file per case in The Well's HDF5 schema: atomic writes, lazy per-frame reads.

A dataset folder keeps its cases in ``<dataset_dir>/cases/<case_id>.h5`` (HDF5) or
``<dataset_dir>/cases/<case_id>.zarr`` (zarr v3 directory, see ``zarr_store.py``). Both hold
the same tree (``case_file.py``), so The Well's tooling reads the HDF5 files unchanged.

A write goes to a dot-named temporary beside the final name and is renamed into place only
when complete, so an interrupted write never leaves a case under its final name;
:func:`remove_partials` deletes the temporaries a hard crash may leave behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from cfdbench.data.case_file import CaseFile, write_hdf5_case
from cfdbench.data.schema import CaseRecord
from cfdbench.data.zarr_store import ZarrCaseFile, write_zarr_case
from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.io import is_stale_partial, require_space

FORMATS = {"hdf5": ".h5", "zarr": ".zarr"}
COMPRESSIONS = ("gzip",)
CASES_DIR = "cases"


# --------------------------------------------------------------------------- layout helpers


def cases_dir(dataset_dir: str | Path) -> Path:
    return Path(dataset_dir) / CASES_DIR


def check_format(fmt: str) -> str:
    """``fmt`` itself, or :class:`UnknownNameError` listing the storage formats."""
    if fmt not in FORMATS:
        raise UnknownNameError("format", str(fmt), list(FORMATS))
    return fmt


def case_path(dataset_dir: str | Path, case_id: str, fmt: str = "hdf5") -> Path:
    """Final location of a case file of the given format."""
    return cases_dir(dataset_dir) / f"{case_id}{FORMATS[check_format(fmt)]}"


# --------------------------------------------------------------------------- folder-level API


def write_case(
    dataset_dir: str | Path,
    record: CaseRecord,
    dataset_name: str,
    fmt: str = "hdf5",
    compression: str | None = None,
    zarr_shards: bool = False,
) -> Path:
    """Store one case atomically under ``<dataset_dir>/cases/`` and return its final path.

    An existing case of the same id and format is replaced only once the new one is complete.
    ``compression="gzip"`` compresses the arrays (off by default: per-frame reads stay cheap).
    ``zarr_shards`` stores each zarr array as one object (``zarr_store.py``).
    """
    check_format(fmt)
    if zarr_shards and fmt != "zarr":
        raise CfdbenchError(f"sharding is a zarr layout; the {fmt} format has none (use --format zarr)")
    if compression is not None and compression not in COMPRESSIONS:
        raise UnknownNameError("compression", str(compression), list(COMPRESSIONS))
    final = case_path(dataset_dir, record.case_id, fmt)
    final.parent.mkdir(parents=True, exist_ok=True)
    require_space(final.parent, _stored_bytes(record) + 2**20, f"case {record.case_id}")
    try:
        if fmt == "zarr":
            write_zarr_case(final, record, dataset_name, compression, zarr_shards)
        else:
            write_hdf5_case(final, record, dataset_name, compression)
    except OSError as error:  # the temporary file is gone already; nothing is left under the final name
        raise CfdbenchError(f"could not write case {record.case_id} to {final.parent}: {error.strerror or error}") from error
    return final


def _stored_bytes(record: CaseRecord) -> int:
    """The arrays a case file holds, uncompressed: what its write needs on disk at most."""
    arrays = [record.x, record.y, record.mask, *record.fields.values(), *record.solver_fields.values()]
    return int(sum(np.asarray(a).nbytes for a in arrays))


def list_cases(dataset_dir: str | Path, fmt: str | None = None) -> dict[str, Path]:
    """Complete case files by id, sorted; temporaries are never listed.

    ``fmt`` restricts the listing to one format; without it a case stored in both formats
    is an error, since which copy is meant would be a guess.
    """
    suffixes = {FORMATS[check_format(fmt)]} if fmt else set(FORMATS.values())
    folder = cases_dir(dataset_dir)
    found: dict[str, Path] = {}
    for entry in folder.iterdir() if folder.is_dir() else ():
        if entry.name.startswith(".") or entry.suffix not in suffixes:
            continue
        if entry.is_dir() != (entry.suffix == FORMATS["zarr"]):
            continue
        if entry.stem in found:
            raise CfdbenchError(
                f"case '{entry.stem}' is stored twice in {folder} ({found[entry.stem].name}, {entry.name}); "
                "delete one copy or choose a format"
            )
        found[entry.stem] = entry
    return dict(sorted(found.items()))


def remove_partials(dataset_dir: str | Path) -> list[Path]:
    """Delete leftovers of interrupted writes (dot-named ``.tmp-``/``.old-`` entries whose writing process
    is gone; a live writer's are left alone); return them."""
    folder = cases_dir(dataset_dir)
    removed = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        if is_stale_partial(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


def open_case(path: str | Path) -> "CaseFile":
    """A lazy reader for one case file; the suffix chooses the backend (``.h5`` or ``.zarr``)."""
    path = Path(path)
    if path.suffix == FORMATS["zarr"]:
        return ZarrCaseFile(path)
    if path.suffix == FORMATS["hdf5"]:
        return CaseFile(path)
    raise CfdbenchError(f"{path}: not a case file (expected a {' or '.join(FORMATS.values())} suffix)")
