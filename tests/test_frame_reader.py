"""The lazy loader's frame reader: the same frames as the store, from raw chunks, compressed HDF5
and zarr, in 2D and 3D, with a bounded set of open files that survives a fork."""

import multiprocessing
import os

import numpy as np
import pytest
import torch

from cfdbench.data.case_file import consecutive_runs
from cfdbench.data.frame_reader import FrameReader
from cfdbench.data.schema import CaseRecord
from cfdbench.data.store import write_case
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CorruptCaseError

T, NZ, NY, NX = 7, 3, 5, 4  # every extent different, so a transposition mistake changes values or shapes


def record(case_id: str, seed: int, three_d: bool = False) -> CaseRecord:
    rng = np.random.default_rng(seed)
    shape = (NZ, NY, NX) if three_d else (NY, NX)
    names = ("u", "v", "w", "p") if three_d else ("u", "v", "p")
    return CaseRecord(
        case_id=case_id,
        subset="bc",
        params={"vel_top": 1.0 + seed},
        dt=0.1,
        x=(np.arange(NX) + 0.5) / NX,
        y=(np.arange(NY) + 0.5) / NY,
        z=(np.arange(NZ) + 0.5) / NZ if three_d else None,
        fields={name: rng.standard_normal((T, *shape)).astype(np.float32) for name in names},
        mask=np.ones(shape, dtype=bool),
        boundary_conditions={axis: "wall" for axis in ("x", "y", "z")[: len(shape)]},
    )


def dataset(folder, layouts: list[tuple[str, str | None]], three_d: bool = False) -> StoredDataset:
    """One case per (format, compression) layout."""
    for i, (fmt, compression) in enumerate(layouts):
        write_case(folder, record(f"bc-{i:04d}", i, three_d), "test", fmt=fmt, compression=compression)
    return StoredDataset(folder)


def expected(data: StoredDataset, fields, cases, frames) -> torch.Tensor:
    rows = []
    for case, frame in zip(cases.tolist(), frames.tolist()):
        with data.open_case(data.case_ids[case]) as handle:
            rows.append(torch.from_numpy(handle.read(fields, [frame])[0]))
    return torch.stack(rows)


def random_pairs(n_cases: int, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(n_cases, (count,), generator=generator), torch.randint(T, (count,), generator=generator)


LAYOUTS = {
    "raw": [("hdf5", None)] * 3,
    "gzip": [("hdf5", "gzip")] * 2,
    "zarr": [("zarr", None)] * 2,
    "mixed": [("hdf5", None), ("hdf5", "gzip"), ("zarr", None), ("hdf5", None)],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fields", [("u", "v"), ("p", "u"), ("v",)])
def test_frames_match_the_store_in_any_order(tmp_path, layout, fields):
    data = dataset(tmp_path, LAYOUTS[layout])
    reader = FrameReader(data, data.case_ids, fields, n_dims=2)
    cases, frames = random_pairs(len(data), 40)
    torch.testing.assert_close(reader.read(cases, frames), expected(data, fields, cases, frames), rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["raw", "mixed"])
def test_three_dimensional_frames_match_the_store(tmp_path, layout):
    data = dataset(tmp_path, LAYOUTS[layout], three_d=True)
    fields = ("w", "u", "p")
    reader = FrameReader(data, data.case_ids, fields, n_dims=3)
    cases, frames = random_pairs(len(data), 25, seed=3)
    got = reader.read(cases, frames)
    assert got.shape == (25, 3, NZ, NY, NX)
    torch.testing.assert_close(got, expected(data, fields, cases, frames), rtol=0, atol=0)


def test_only_raw_cases_take_the_raw_path(tmp_path):
    data = dataset(tmp_path, LAYOUTS["mixed"])
    reader = FrameReader(data, data.case_ids, ("u",), n_dims=2)
    assert [reader._layout(i).raw is not None for i in range(len(data))] == [True, False, False, True]


def test_open_files_stay_within_the_bound(tmp_path):
    data = dataset(tmp_path, [("hdf5", None)] * 5 + [("hdf5", "gzip")] * 2)
    reader = FrameReader(data, data.case_ids, ("u", "v"), n_dims=2, max_open_files=2)
    cases, frames = random_pairs(len(data), 60, seed=1)
    torch.testing.assert_close(reader.read(cases, frames), expected(data, ("u", "v"), cases, frames), rtol=0, atol=0)
    assert len(reader._fds) + len(reader._cases) <= 2
    reader.close()
    assert not reader._fds and not reader._cases


def _read_in_child(reader: FrameReader, cases, frames, queue) -> None:
    queue.put((os.getpid() == reader._pid, reader.read(cases, frames).numpy()))


def test_a_forked_process_reopens_its_own_files(tmp_path):
    data = dataset(tmp_path, LAYOUTS["raw"])
    reader = FrameReader(data, data.case_ids, ("u", "v"), n_dims=2)
    cases, frames = random_pairs(len(data), 12)
    before = reader.read(cases, frames)
    parent_fds = dict(reader._fds)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(reader, cases, frames, queue))
    child.start()
    inherited_pid, frames_in_child = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and not inherited_pid
    np.testing.assert_array_equal(frames_in_child, before.numpy())
    assert reader._fds == parent_fds  # the parent's files are untouched by the child
    torch.testing.assert_close(reader.read(cases, frames), before, rtol=0, atol=0)


def test_a_truncated_raw_file_is_a_corrupt_case(tmp_path):
    data = dataset(tmp_path, LAYOUTS["raw"])
    reader = FrameReader(data, data.case_ids, ("u", "v"), n_dims=2)
    reader.read(torch.tensor([0]), torch.tensor([0]))  # layout parsed while the file is whole
    path = data.case_path(data.case_ids[0])
    last = int(reader._layout(0).raw["t1_fields/velocity"].offsets.max())
    os.truncate(path, last + 8)
    with pytest.raises(CorruptCaseError, match=r"bc-0000\.h5: corrupt or incomplete case file \(frame \d of t1_fields/velocity"):
        reader.read(torch.arange(1).repeat(T), torch.arange(T))


def test_consecutive_runs_are_the_fewest_slices():
    assert consecutive_runs(np.array([0, 1, 2, 5, 7, 8])) == [slice(0, 3), slice(5, 6), slice(7, 9)]
    assert consecutive_runs(np.array([], dtype=np.int64)) == []
