"""``open_dataset``: a stored dataset folder as case ids, splits, statistics and xarray views.

Example::

    ds = open_dataset("cavity")            # a folder, or a name under ``data_root()``
    case_id = ds.split("test")[0]
    ds[case_id].u.isel(t=-1).plot()        # labelled (t, y, x) arrays in SI units

Training code reads frames through :meth:`StoredDataset.open_case` (lazy, per frame); the
xarray view reads one whole case and is meant for inspection and plotting.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cfdbench.data.case_file import CaseFile
from cfdbench.data.dataset_dir import (
    SPLITS_FILE,
    STATS_FILE,
    is_sealed,
    manifest_content_hash,
    read_manifest,
    read_splits,
    read_stats,
)
from cfdbench.data.metadata import DatasetMetadata
from cfdbench.data.schema import UNITS
from cfdbench.data.store import list_cases, open_case
from cfdbench.errors import CfdbenchError, UnknownNameError

if TYPE_CHECKING:
    import xarray as xr


class StoredDataset:
    """A dataset folder: its cases (sorted ids), and ``splits``, ``stats``, ``manifest`` when present.

    ``splits`` and ``stats`` are ``None`` and ``manifest`` is ``{}`` until generation has
    finalised the folder. ``fmt`` limits the cases to one storage format.
    """

    def __init__(self, path: str | Path, fmt: str | None = None):
        self.path = Path(path)
        self._cases = list_cases(self.path, fmt)
        self.manifest: dict[str, Any] = read_manifest(self.path) if is_sealed(self.path) else {}
        self.splits: dict[str, list[str]] | None = read_splits(self.path) if (self.path / SPLITS_FILE).is_file() else None
        stats_path = self.path / STATS_FILE
        self.stats: dict[str, Any] | None = read_stats(stats_path) if stats_path.is_file() else None
        self.name = DatasetMetadata.name_of(self.manifest, self.path.name)

    @property
    def sealed(self) -> bool:
        """Finished by generation or conversion: its manifest and splits are written."""
        return bool(self.manifest) and self.splits is not None

    @property
    def problem(self) -> str | None:
        """The flow it holds, from the manifest alone (:attr:`metadata` also reads the first case)."""
        return DatasetMetadata.problem_of(self.manifest)

    @cached_property
    def metadata(self) -> DatasetMetadata:
        """The dataset's typed description (fields, grid, Δt, parameters, splits, flow, content hash),
        parsed once from the manifest, the splits and the first case."""
        if not self._cases:
            raise CfdbenchError(f"dataset {self.path} holds no cases")
        with self.open_case(self.case_ids[0]) as case:
            content = manifest_content_hash(self.manifest) if self.manifest.get("files") else None
            return DatasetMetadata.parse(self.manifest, self.splits, case, self.path.name, content)

    @property
    def case_ids(self) -> list[str]:
        return list(self._cases)

    def __len__(self) -> int:
        return len(self._cases)

    def __iter__(self) -> Iterator[str]:
        return iter(self.case_ids)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._cases

    @property
    def n_spatial_dims(self) -> int:
        """2 for planar frames, 3 for volumes (the channel datasets)."""
        return self.metadata.n_spatial_dims

    def split(self, name: str) -> list[str]:
        """Case ids of a split (``train``, ``valid`` or ``test``)."""
        if self.splits is None:
            raise CfdbenchError(f"dataset {self.path} has no {SPLITS_FILE}; finish it with `cfdbench data generate`")
        if name not in self.splits:
            raise UnknownNameError("split", name, list(self.splits))
        return list(self.splits[name])

    def case_path(self, case_id: str) -> Path:
        if case_id not in self._cases:
            raise UnknownNameError("case", case_id, self.case_ids)
        return self._cases[case_id]

    def prefetch(self, case_ids: list[str]) -> None:
        """Make the cases ready to read (a dataset at a URL fetches them, concurrently); local ones are."""

    def open_case(self, case_id: str) -> CaseFile:
        """A lazy reader of one case; use it as a context manager."""
        return open_case(self.case_path(case_id))

    def __getitem__(self, case_id: str) -> xr.Dataset:
        """One case as an ``xarray.Dataset``: u, v, p over (t, y, x) and the fluid mask over (y, x);
        3D cases add w and a leading z axis."""
        import xarray as xr  # imported here: reading frames for training and scoring does not need it (0.6 s)

        with self.open_case(case_id) as case:
            frames = case.read(case.field_names, slice(None))
            space = ("z", "y", "x")[-case.n_dims :]
            coords = {"t": ("t", case.time, {"units": UNITS["time"]})}
            coords.update({axis: (axis, getattr(case, axis), {"units": UNITS[axis]}) for axis in space})
            data_vars: dict[str, Any] = {
                name: (("t", *space), frames[:, channel], {"units": UNITS[name]}) for channel, name in enumerate(case.field_names)
            }
            data_vars["mask"] = (space, case.mask, {"description": "True = fluid (the cells at least half fluid)"})
            data_vars["fluid_fraction"] = (space, case.fluid_fraction, {"description": "share of each cell outside every body"})
            attrs = {
                "case_id": case.case_id,
                "subset": case.subset,
                "dt": case.dt,
                "schema_version": case.schema_version,
                **case.params,
            }
        return xr.Dataset(data_vars, coords, attrs)

    def __repr__(self) -> str:
        splits = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items()) if self.splits else "no splits"
        return f"StoredDataset({self.name!r}, {len(self)} cases, {splits}, path={str(self.path)!r})"


__all__ = ["StoredDataset"]
