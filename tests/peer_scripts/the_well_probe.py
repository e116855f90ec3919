"""Run inside an environment with The Well's package (``the-well``), not cfdbench's: open a
cfdbench export with The Well's own classes and save what they return, for tests/test_peers.py.

    python the_well_probe.py DATASET_FOLDER OUT.npz

DATASET_FOLDER is ``<export>/datasets/<name>``. Saved: for each split, the first sample of
``WellDataset(path=..., well_split_name=split)`` (one input and one output step, The Well's
channels-last layout), its number of samples and file list; the first training sample again with
The Well's z-score normalisation from ``stats.yaml``; and how the catalogue-name ways in refuse
the export (``WellDataset(well_base_path=..., well_dataset_name=...)``, ``WellDataModule``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from the_well.data import WellDataModule, WellDataset
from the_well.data.normalization import ZScoreNormalization

SPLITS = ("train", "valid", "test")


def first_sample(dataset: WellDataset, prefix: str) -> dict[str, np.ndarray]:
    sample = dataset[0]
    return {f"{prefix}/{key}": value.numpy() for key, value in sample.items()}


def refusal(build) -> str:
    """The error a catalogue-name constructor raises on a dataset outside The Well's catalogue."""
    try:
        build()
    except AssertionError as err:
        return f"AssertionError: {err}"
    return "accepted"


def main(folder: Path, out: Path) -> None:
    saved: dict[str, np.ndarray] = {}
    for split in SPLITS:
        dataset = WellDataset(path=str(folder), well_split_name=split, n_steps_input=1, n_steps_output=1)
        saved |= first_sample(dataset, split)
        saved[f"{split}/len"] = np.array(len(dataset))
        saved[f"{split}/files"] = np.array([Path(f).name for f in dataset.files_paths])
    normalized = WellDataset(
        path=str(folder), well_split_name="train", use_normalization=True, normalization_type=ZScoreNormalization
    )
    saved |= first_sample(normalized, "train_normalized")
    base, name = str(folder.parent), folder.name
    by_name = {"well_base_path": base, "well_dataset_name": name}
    saved["refusal/WellDataset"] = np.array(refusal(lambda: WellDataset(**by_name, well_split_name="train")))
    saved["refusal/WellDataModule"] = np.array(refusal(lambda: WellDataModule(**by_name, batch_size=1)))
    np.savez(out, **saved)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
