"""The zarr v3 backend: the same tree, attributes and API as the HDF5 store, in a directory.

A case is ``cases/<case_id>.zarr``, a zarr v3 directory store whose groups, arrays,
attributes and chunking mirror the HDF5 file exactly (see ``case_file.py``). Zarr suits object
stores and parallel writers; HDF5 stays the default because The Well's tooling reads it.

``sharded=True`` stores each array as one object (zarr's sharding codec: a shard spanning the
whole array, holding the same one-frame chunks and an index of where each one is), so that a
case is a few large objects instead of one per frame and field: object stores and the Hub
throttle many small requests. Readers need nothing new; zarr and xarray read both layouts.
It is off by default, which keeps the bytes of published zarr datasets (channel180).

Writes are atomic at the directory level: the case is written to a dot-named temporary
directory, and only when it is complete does it take the final name (a previous version is
first moved aside, then deleted).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import GzipCodec

from cfdbench.data.case_file import CaseFile, write_tree
from cfdbench.data.schema import CaseRecord
from cfdbench.io import fsync_path, remove_path, temporary_path


def _json_attr(value: Any) -> Any:
    """Zarr attributes are JSON: numpy values become plain Python ones."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


class _ZarrWriter:
    """The :class:`~cfdbench.data.case_file.TreeWriter` of a zarr group."""

    def __init__(self, root: zarr.Group, compression: str | None, sharded: bool = False):
        self.root = root
        self.compressors = [GzipCodec()] if compression == "gzip" else None
        self.sharded = sharded

    def group(self, path: str, attrs: dict[str, Any]) -> None:
        node = self.root.require_group(path) if path else self.root
        node.attrs.update({key: _json_attr(value) for key, value in attrs.items()})

    def array(
        self, path: str, data: np.ndarray, attrs: dict[str, Any], chunks: tuple[int, ...] | None = None, dims: tuple[str, ...] = ()
    ) -> None:
        data = np.asarray(data)
        shards = data.shape if self.sharded and data.ndim and data.size else None  # one object per array (0-d: one already)
        array = self.root.create_array(
            path,
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunks or (data.shape if shards else "auto"),
            shards=shards,
            compressors=self.compressors,
            attributes={key: _json_attr(value) for key, value in attrs.items()},
            dimension_names=dims if data.ndim else None,
        )
        if data.size:
            array[...] = data


def _replace_directory(new: Path, final: Path) -> None:
    """Give ``new`` the name ``final``; an older ``final`` is moved aside first, then deleted."""
    old = temporary_path(final, "old") if final.exists() else None
    if old is not None:
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old)


def write_zarr_case(
    final: Path, record: CaseRecord, dataset_name: str, compression: str | None = None, sharded: bool = False
) -> None:
    """Write a case into a temporary directory beside ``final``, flush it, then rename it into place."""
    tmp = temporary_path(final)
    try:
        root = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
        write_tree(_ZarrWriter(root, compression, sharded), record, dataset_name)
        fsync_path(tmp)
        _replace_directory(tmp, final)
    except BaseException:
        remove_path(tmp)
        raise


class ZarrCaseFile(CaseFile):
    """Lazy reader of a zarr case; behaves exactly as the HDF5 :class:`CaseFile`."""

    def _open_root(self) -> Any:
        try:
            return zarr.open_group(store=str(self.path), mode="r")
        except (OSError, ValueError, KeyError) as err:
            raise self._corrupt(str(err)) from None

    def _select(self, array: Any, selection: tuple) -> np.ndarray:
        """Index arrays need zarr's orthogonal indexing; slices and integers use plain indexing."""
        if any(isinstance(part, np.ndarray) for part in selection):
            return array.oindex[selection]
        return array[selection]

    def raw_frames(self, name: str) -> None:
        """Zarr keeps each chunk in its own object: readers go through zarr."""
        return None

    def close(self) -> None:
        self._root = None  # a read-only local zarr store holds no open handles
