"""Dataset folder side files: case splits, streaming statistics, manifest and content hash."""

import json
import os
import time

import numpy as np
import pytest

from cfdbench.data import dataset_dir
from cfdbench.data.dataset_dir import (
    compute_stats,
    content_hash,
    make_splits,
    read_manifest,
    read_splits,
    read_stats,
    verify_manifest,
    write_manifest,
    write_splits,
    write_stats,
)
from cfdbench.data.schema import CaseRecord
from cfdbench.data.store import write_case
from cfdbench.errors import CfdbenchError

NY, NX = 5, 7


def make_record(case_id: str, n_frames: int, seed: int, constant_p: bool = False) -> CaseRecord:
    """A case with its own frame count, offset and obstacle, so the cases' moments differ."""
    rng = np.random.default_rng(seed)
    mask = np.ones((NY, NX), dtype=bool)
    mask[1 : 2 + seed % 3, 2:4] = False
    fields = {n: (rng.standard_normal((n_frames, NY, NX)) * (1 + seed) + seed).astype(np.float32) for n in "uvp"}
    for frames in fields.values():
        frames[:, ~mask] = 1e6  # solid cells hold junk that statistics must ignore
    if constant_p:
        fields["p"][:] = 3.0
    return CaseRecord(
        case_id=case_id,
        subset=case_id.split("-")[0],
        params={"vel_top": 1.0 + seed},
        dt=0.1,
        x=np.arange(NX) + 0.5,
        y=np.arange(NY) + 0.5,
        fields=fields,
        mask=mask,
        boundary_conditions={"x": "wall", "y": "wall"},
    )


@pytest.fixture
def records():
    return [make_record(f"bc-{i:04d}", n_frames=3 + i, seed=i) for i in range(4)]


def write_all(folder, records, fmt="hdf5"):
    for record in records:
        write_case(folder, record, "tiny", fmt=fmt)


# --------------------------------------------------------------------------- splits


def test_splits_are_deterministic_disjoint_and_by_case():
    ids = [f"bc-{i:04d}" for i in range(20)] + [f"geo-{i:04d}" for i in range(7)]
    splits = make_splits(ids, seed=3, train=0.7, valid=0.15)
    assert splits == make_splits(list(reversed(ids)), seed=3, train=0.7, valid=0.15)  # input order is irrelevant
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [19, 4, 4]
    assert sorted(sum(splits.values(), [])) == sorted(ids)  # covers every case exactly once
    assert all(v == sorted(v) for v in splits.values())
    assert make_splits(ids, seed=4, train=0.7, valid=0.15) != splits


def test_small_datasets_get_every_split():
    splits = make_splits(["a", "b", "c"], seed=0, train=1.0, valid=0.0)
    assert all(len(v) == 1 for v in splits.values())
    assert [len(v) for v in make_splits(list("abcde"), 0, 0.6, 0.2).values()] == [3, 1, 1]


def test_splits_refuse_bad_input():
    with pytest.raises(CfdbenchError, match="fractions"):
        make_splits(["a", "b"], 0, 0.8, 0.3)
    with pytest.raises(CfdbenchError, match="duplicates"):
        make_splits(["a", "a"], 0, 0.5, 0.5)


def test_splits_file_round_trip(tmp_path):
    splits = make_splits([f"c{i}" for i in range(10)], seed=1, train=0.8, valid=0.1)
    write_splits(tmp_path, splits, seed=1, fractions=(0.8, 0.1))
    assert read_splits(tmp_path) == splits
    document = json.loads((tmp_path / "splits.json").read_text())
    assert document["seed"] == 1 and document["fractions"] == {"train": 0.8, "valid": 0.1, "test": 0.1}
    with pytest.raises(CfdbenchError, match="more than one split"):
        write_splits(tmp_path, {"train": ["a"], "valid": ["a"], "test": []}, 0, (0.5, 0.5))


# --------------------------------------------------------------------------- statistics


def direct_stats(records, name):
    """The same statistics by brute force: all fluid values (and frame differences) at once."""
    values = np.concatenate([r.fields[name][:, r.mask].astype(np.float64).ravel() for r in records])
    deltas = np.concatenate([np.diff(r.fields[name].astype(np.float64), axis=0)[:, r.mask].ravel() for r in records])
    out = {}
    for suffix, data in (("", values), ("_delta", deltas)):
        out[f"mean{suffix}"] = data.mean()
        out[f"std{suffix}"] = data.std()
        out[f"rms{suffix}"] = np.sqrt(np.mean(data**2))
    return out, values.size


@pytest.mark.parametrize("block_values", [dataset_dir._BLOCK_VALUES, 2 * NY * NX])
def test_stats_match_a_direct_computation(tmp_path, monkeypatch, records, block_values):
    # A tiny block forces several reads per case, exercising the overlap between blocks.
    monkeypatch.setattr(dataset_dir, "_BLOCK_VALUES", block_values)
    write_all(tmp_path, records)
    train = [r.case_id for r in records[:3]]
    stats = compute_stats(tmp_path, train, fields=("u", "p"))
    assert set(stats) == {"u", "p", "n_cases", "n_values"} and stats["n_cases"] == 3
    for name in ("u", "p"):
        expected, count = direct_stats(records[:3], name)
        assert stats["n_values"] == count
        for key, value in expected.items():
            assert stats[name][key] == pytest.approx(value, rel=1e-10, abs=1e-12), (name, key)


def test_stats_refuse_a_constant_field(tmp_path):
    write_all(tmp_path, [make_record("bc-0000", 4, 0, constant_p=True)])
    with pytest.raises(CfdbenchError, match="field 'p'.*constant"):
        compute_stats(tmp_path, ["bc-0000"])


def test_stats_yaml_round_trip(tmp_path, records):
    write_all(tmp_path, records, fmt="zarr")
    stats = compute_stats(tmp_path, [r.case_id for r in records])
    write_stats(tmp_path / "stats.yaml", stats)
    assert read_stats(tmp_path / "stats.yaml") == stats


# --------------------------------------------------------------------------- manifest


@pytest.mark.parametrize("fmt", ["hdf5", "zarr"])
def test_manifest_verifies_and_detects_a_changed_byte(tmp_path, records, fmt):
    write_all(tmp_path, records, fmt)
    manifest = write_manifest(tmp_path, {"dataset": "tiny", "format": fmt})
    assert read_manifest(tmp_path) == manifest
    assert manifest["info"] == {"dataset": "tiny", "format": fmt}
    suffix = ".h5" if fmt == "hdf5" else ".zarr"
    assert sorted(manifest["files"]) == [f"cases/{r.case_id}{suffix}" for r in records]
    assert verify_manifest(tmp_path) == []
    target = tmp_path / "cases" / f"bc-0002{suffix}"
    if fmt == "zarr":
        target = next(p for p in sorted(target.rglob("*")) if p.is_file() and "/c/" in p.as_posix())
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    assert verify_manifest(tmp_path) == [f"cases/bc-0002{suffix}"]


def test_manifest_reports_missing_and_unlisted_cases(tmp_path, records):
    write_all(tmp_path, records[:3])
    write_manifest(tmp_path, {})
    (tmp_path / "cases" / "bc-0000.h5").unlink()
    write_all(tmp_path, records[3:])
    assert verify_manifest(tmp_path) == ["cases/bc-0000.h5", "cases/bc-0003.h5"]


def test_content_hash_is_stable(tmp_path, records):
    write_all(tmp_path, records)
    write_manifest(tmp_path, {"dataset": "tiny"})
    first = content_hash(tmp_path)
    write_manifest(tmp_path, {"dataset": "tiny", "note": "other generator info"})
    assert content_hash(tmp_path) == first
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"] = dict(reversed(list(manifest["files"].items())))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest, separators=(",", ":")))
    assert content_hash(tmp_path) == first  # independent of JSON layout and key order
    write_case(tmp_path, make_record("bc-0001", 4, seed=9), "tiny")
    write_manifest(tmp_path, {"dataset": "tiny"})
    assert content_hash(tmp_path) != first


def test_regenerating_a_dataset_reproduces_its_content_hash(tmp_path, tiny_card_path):
    """Same card, same machine: byte-identical case files, so published hashes can be checked."""
    from cfdbench.cards import load_dataset_card
    from cfdbench.data.generate import generate_dataset

    card = load_dataset_card(tiny_card_path)
    first = generate_dataset(card, tmp_path / "first", max_cases=2).dataset_dir
    time.sleep(1.1)  # HDF5 timestamps have one-second resolution: make them differ
    second = generate_dataset(card, tmp_path / "second", max_cases=2).dataset_dir
    assert dataset_dir.content_hash(first) == dataset_dir.content_hash(second)


def test_generation_batches_cases_that_allow_the_same_step():
    """The GEO sweep's flat cavities (short stable steps) share batches instead of slowing square ones."""
    from cfdbench.cards import load_dataset_card
    from cfdbench.data.generate import _batches, _cfl_floor, card_cases, case_cells

    card = load_dataset_card("cavity")
    specs = [spec for spec in card.cases() if spec.subset == "geo"]
    cases = card_cases(card, specs)
    batches = [batch_cases for _, batch_cases in _batches(specs, cases, card, batch_size=8)]
    assert sorted(case.label for batch in batches for case in batch) == sorted(spec.case_id for spec in specs)
    floors = [[_cfl_floor(case, case_cells(card, case)) for case in batch] for batch in batches]
    assert all(max(a) <= min(b) for a, b in zip(floors, floors[1:]))
    assert len(set(floors[0])) > 1 or len(floors) == 1


@pytest.mark.parametrize("sealed", [True, False])
def test_regeneration_replaces_a_case_file_altered_after_it_was_written(tmp_path, tiny_card_path, sealed):
    """A truncated case is never reused or sealed: it fails the digest its writer recorded (or the
    manifest's), is simulated again, and the dataset comes back to its own bytes."""
    from cfdbench.cards import load_dataset_card
    from cfdbench.data.generate import generate_dataset
    from cfdbench.data.store import list_cases

    card = load_dataset_card(tiny_card_path)
    out = generate_dataset(card, tmp_path / "d", max_cases=3).dataset_dir
    reference = dataset_dir.content_hash(out)
    if not sealed:  # an interrupted generation: no manifest yet, only the per-case digests
        (out / dataset_dir.MANIFEST_FILE).unlink()
    victim = list_cases(out)["bc-0001"]
    with open(victim, "r+b") as handle:
        handle.truncate(victim.stat().st_size // 2)
    report = generate_dataset(card, out, max_cases=3)
    assert report.replaced == ["bc-0001"] and report.generated == ["bc-0001"]
    assert sorted(report.reused) == ["bc-0000", "bc-0002"]
    assert dataset_dir.verify_manifest(out) == [] and dataset_dir.content_hash(out) == reference


def test_training_and_evaluation_refuse_data_that_fail_their_checksums(tmp_path, tiny_card_path, monkeypatch):
    """A case file edited after sealing (still readable HDF5) is refused where data are used, in one
    line; unchanged data are hashed once and then recognised by their (size, mtime) stamps."""
    from cfdbench.cards import load_dataset_card
    from cfdbench.data.generate import generate_dataset
    from cfdbench.data.store import list_cases
    from cfdbench.pipeline import require_dataset

    card = load_dataset_card(tiny_card_path)
    out = generate_dataset(card, tmp_path / "d", max_cases=3).dataset_dir
    require_dataset(str(out))  # first use: hashes every file
    hashed = []
    original = dataset_dir.file_digest
    monkeypatch.setattr(dataset_dir, "file_digest", lambda path: hashed.append(path) or original(path))
    require_dataset(str(out))
    assert hashed == []  # a re-run is free
    victim = list_cases(out)["bc-0002"]
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0xFF  # one byte near the end (array data): the file still opens
    victim.write_bytes(bytes(data))
    with pytest.raises(CfdbenchError, match=r"1 case file\(s\) do not match the manifest's checksums \(cases/bc-0002.h5\)") as error:
        require_dataset(str(out))
    assert "\n" not in str(error.value) and hashed == [victim]


def test_a_second_generator_on_the_same_folder_is_refused_and_leaves_the_first_alone(tmp_path):
    """An advisory lock per dataset folder (per shard): a second `data generate` names the holder and
    stops; only temporaries of writers that are gone are cleaned up, never a live writer's."""
    import subprocess
    import sys

    from conftest import TINY_CARD, write_card

    from cfdbench.cards import load_dataset_card
    from cfdbench.data.generate import generate_dataset
    from cfdbench.io import folder_lock

    path = write_card(tmp_path, solver={**TINY_CARD["solver"], "cells_x": 48, "cells_y": 48, "n_frames": 12})
    out = tmp_path / "out"
    writer = subprocess.Popen([sys.executable, "-m", "cfdbench", "data", "generate", str(path), "--out", str(out)])
    try:
        lock = out / ".lock-all"
        for _ in range(600):
            if lock.exists() and lock.read_text().startswith("process"):
                break
            time.sleep(0.05)
        with pytest.raises(CfdbenchError, match=rf"{out} is being written by process {writer.pid} \(cfdbench data generate\)"):
            generate_dataset(load_dataset_card(path), out)
        assert writer.wait(timeout=600) == 0  # the first run was not disturbed
    finally:
        writer.kill()
    assert dataset_dir.verify_manifest(out) == []
    with folder_lock(out, "test"):  # released with its process
        pass
    cases = out / "cases"
    stale, live = cases / ".bc-0000.h5.tmp-99999999", cases / f".bc-0001.h5.tmp-{os.getpid()}"
    stale.write_text("x")
    live.write_text("x")
    from cfdbench.data.store import remove_partials

    assert remove_partials(out) == [stale] and live.exists()


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path):
    """Generation into a 96 KiB tmpfs: the cases that fit are stored whole, the first that does not is
    refused before it is written (a full disk mid-write crashes HDF5), in one line, exit status 2."""
    import shutil
    import subprocess

    from conftest import assert_one_line_error, run_entry_point, write_card

    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {mounted.stderr.strip()}")
    try:
        card = write_card(tmp_path)
        result = run_entry_point("data", "generate", str(card), "--out", str(mount / "d"), cwd=tmp_path)
        assert_one_line_error(result, "not enough disk space", "MiB are free")
        cases = mount / "d" / "cases"
        names = [p.name for p in cases.iterdir()] if cases.exists() else []
        assert not [n for n in names if ".tmp-" in n or ".old-" in n]  # nothing half-written under any name
        assert not (mount / "d" / "manifest.json").exists()
    finally:
        subprocess.run(["umount", str(mount)], check=False)
