"""From a dataset's name, folder or URL to the dataset: the one resolver every command uses.

A URL (``s3://``, ``https://``, ``hf://``: anything fsspec opens) is a remote dataset, cached and
verified as it is read (:mod:`cfdbench.data.remote`); anything else is a local folder
(:func:`dataset_folder`), opened as a :class:`~cfdbench.data.view.StoredDataset`.
"""

from __future__ import annotations

from pathlib import Path

from cfdbench.cards import data_root
from cfdbench.data.remote import is_url, open_remote
from cfdbench.data.store import CASES_DIR, check_format
from cfdbench.data.view import StoredDataset
from cfdbench.errors import DatasetNotFoundError


def dataset_folder(path_or_name: str | Path) -> Path:
    """Where a local dataset is: an existing dataset folder as given, a path with a folder part as
    given, else a bare name under :func:`~cfdbench.cards.data_root` (``CFDBENCH_DATA``)."""
    path = Path(path_or_name)
    if (path / CASES_DIR).is_dir() or len(path.parts) != 1 or path.is_absolute():
        return path
    return data_root() / path


def open_dataset(path_or_name: str | Path, fmt: str | None = None) -> StoredDataset:
    """Open a dataset folder (a path, or a name resolved under ``data_root()``), or a dataset at an
    fsspec URL (``s3://bucket/cavity-mini``, ``https://...``, ``hf://datasets/...``), whose cases are
    fetched into a verified local cache as they are read (``cfdbench.data.remote``).

    Raises :class:`DatasetNotFoundError` saying how to get the dataset when it is not there.
    """
    if fmt is not None:
        check_format(fmt)
    if is_url(path_or_name):
        return open_remote(str(path_or_name))
    path = dataset_folder(path_or_name)
    if not (path / CASES_DIR).is_dir():
        name = Path(path_or_name).name
        raise DatasetNotFoundError(
            f"dataset '{name}' not found at {path}; generate it with `cfdbench data generate {name}` "
            f"(or set CFDBENCH_DATA to the folder that holds it)"
        )
    return StoredDataset(path, fmt)


__all__ = ["dataset_folder", "is_url", "open_dataset"]
