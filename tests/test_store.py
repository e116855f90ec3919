"""The per-case store: round trips, lazy frame reads, The Well's layout, atomicity, corruption."""

import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from cfdbench.data import case_file, store
from cfdbench.data.case_file import CaseFile
from cfdbench.data.schema import CaseRecord
from cfdbench.data.store import list_cases, open_case, remove_partials, write_case
from cfdbench.errors import CfdbenchError, CorruptCaseError, UnknownNameError
from cfdbench.io import temporary_path

FORMATS = ["hdf5", "zarr"]
T, NY, NX = 9, 6, 8  # nx != ny so a transposition mistake changes shapes


def make_record(case_id="bc-0001", seed=0, **changes) -> CaseRecord:
    """A small case with distinct u/v/p, an obstacle in the mask and every optional part filled."""
    rng = np.random.default_rng(seed)
    mask = np.ones((NY, NX), dtype=bool)
    mask[2:4, 3:5] = False
    values = dict(
        case_id=case_id,
        subset="bc",
        params={"vel_top": 2.0, "density": 1.5, "viscosity": 1e-3},  # not alphabetical: order must survive
        dt=0.125,
        x=(np.arange(NX) + 0.5) * 0.01 / NX,
        y=(np.arange(NY) + 0.5) * 0.02 / NY,
        fields={name: rng.standard_normal((T, NY, NX)).astype(np.float32) for name in ("u", "v", "p")},
        mask=mask,
        boundary_conditions={"x": "wall", "y": "periodic"},
        attrs={"reynolds": 30.0, "solver_steps": 120, "solver": "test", "converged": True, "cells": [16, 12]},
        solver_fields={"u_faces": rng.standard_normal((T, NY, NX + 1)).astype(np.float32)},
        solver_field_attrs={"u_faces": {"location": "x faces"}},
    )
    return CaseRecord(**{**values, **changes})


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_is_exact(tmp_path, fmt):
    record = make_record()
    path = write_case(tmp_path, record, "tiny", fmt=fmt)
    assert path == tmp_path / "cases" / f"bc-0001{store.FORMATS[fmt]}"
    with open_case(path) as case:
        back = case.to_record()
        assert case.field_names == ("u", "v", "p")
        assert case.n_frames == T and case.shape == (NY, NX)
    assert list(back.params.items()) == list(record.params.items())
    assert (back.case_id, back.subset, back.dt) == (record.case_id, record.subset, record.dt)
    for name in ("u", "v", "p"):
        np.testing.assert_array_equal(back.fields[name], record.fields[name])
    np.testing.assert_array_equal(back.mask, record.mask)
    # Coordinates are float32 on disk, as The Well specifies.
    np.testing.assert_array_equal(back.x, record.x.astype(np.float32))
    np.testing.assert_array_equal(back.y, record.y.astype(np.float32))
    assert back.boundary_conditions == record.boundary_conditions
    assert back.attrs == record.attrs and list(back.attrs) == list(record.attrs)
    np.testing.assert_array_equal(back.solver_fields["u_faces"], record.solver_fields["u_faces"])
    assert back.solver_field_attrs == record.solver_field_attrs
    assert back.time[-1] == pytest.approx((T - 1) * record.dt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_3d_case_round_trips_in_the_wells_xyz_order(tmp_path, fmt):
    """A channel-like case (T, nz, ny, nx) with u, v, w, p: The Well stores [x, y, z] and three
    velocity components; reading gives the record back exactly."""
    rng = np.random.default_rng(4)
    nz, ny, nx = 3, 5, 4
    record = make_record(
        z=(np.arange(nz) + 0.5) / nz,
        y=np.linspace(-1, 1, ny),
        x=(np.arange(nx) + 0.5) / nx,
        fields={name: rng.standard_normal((T, nz, ny, nx)).astype(np.float32) for name in ("u", "v", "w", "p")},
        mask=np.ones((nz, ny, nx), dtype=bool),
        boundary_conditions={"x": "periodic", "y": "wall", "z": "periodic"},
    )
    path = write_case(tmp_path, record, "channel", fmt=fmt)
    with open_case(path) as case:
        assert case.field_names == ("u", "v", "w", "p") and case.shape == (nz, ny, nx)
        np.testing.assert_array_equal(case.read(["w", "u"], [2])[0, 0], record.fields["w"][2])
        back = case.to_record()
    for name in ("u", "v", "w", "p"):
        np.testing.assert_array_equal(back.fields[name], record.fields[name])
    np.testing.assert_array_equal(back.z, record.z.astype(np.float32))
    assert back.boundary_conditions == record.boundary_conditions
    if fmt == "hdf5":
        with h5py.File(path) as f:
            assert f.attrs["n_spatial_dims"] == 3 and list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y", "z"]
            assert f["t1_fields/velocity"].shape == (1, T, nx, ny, nz, 3)
            np.testing.assert_array_equal(f["t1_fields/velocity"][0, 1, 3, 2, 0, 2], record.fields["w"][1, 0, 2, 3])
    with pytest.raises(CfdbenchError, match="fields must be u, v, w"):
        make_record(z=record.z, x=record.x, y=record.y, mask=record.mask, fields={k: record.fields[k] for k in ("u", "v")})


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_returns_requested_frames_in_order(tmp_path, fmt):
    record = make_record()
    with open_case(write_case(tmp_path, record, "tiny", fmt=fmt)) as case:
        expected = np.stack([record.fields["p"], record.fields["u"]], axis=1)  # (T, C, ny, nx)
        got = case.read(["p", "u"], [5, 1, 5, -1])
        assert got.shape == (4, 2, NY, NX) and got.dtype == np.float32
        np.testing.assert_array_equal(got, expected[[5, 1, 5, T - 1]])
        np.testing.assert_array_equal(case.read(("v",), slice(2, 7, 2)), record.fields["v"][2:7:2, None])
        all_fields = np.stack([record.fields[name] for name in ("u", "v", "p")], axis=1)
        np.testing.assert_array_equal(case.read(("u", "v", "p"), np.array([3])), all_fields[[3]])
        assert case.read(("u",), []).shape == (0, 1, NY, NX)
        with pytest.raises(CfdbenchError, match="out of range"):
            case.read(("u",), [T])
        with pytest.raises(UnknownNameError, match="valid choices: p, u, v"):
            case.read(("w",), [0])


def test_read_touches_only_the_requested_frames(tmp_path, monkeypatch):
    with h5py.File(write_case(tmp_path, make_record(), "tiny"), "r") as file:
        assert file["t1_fields/velocity"].chunks == (1, 1, NX, NY, 2)
        assert file["t0_fields/pressure"].chunks == (1, 1, NX, NY)
    selections = []
    original = CaseFile._select

    def recording(self, array, selection):
        selections.append((array.name, selection))
        return original(self, array, selection)

    monkeypatch.setattr(CaseFile, "_select", recording)
    with open_case(tmp_path / "cases" / "bc-0001.h5") as case:
        case.read(("u", "v"), [7, 2, 7])
    assert len(selections) == 1
    name, (trajectory, frames) = selections[0]
    assert name == "/t1_fields/velocity" and trajectory == 0
    np.testing.assert_array_equal(frames, [2, 7])


def test_hdf5_file_follows_the_well_structure(tmp_path):
    record = make_record()
    with h5py.File(write_case(tmp_path, record, "tiny"), "r") as f:
        assert {"dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields"} <= set(f)
        assert f.attrs["dataset_name"] == "tiny" and f.attrs["grid_type"] == "cartesian"
        assert f.attrs["n_spatial_dims"] == 2 and f.attrs["n_trajectories"] == 1
        assert list(f.attrs["simulation_parameters"]) == list(record.params)
        for name, value in record.params.items():
            assert f.attrs[name] == value
            scalar = f["scalars"][name]  # constant: no sample or time axis, so 0-d (The Well's check)
            assert scalar.shape == () and scalar[()] == np.float32(value)
            assert not scalar.attrs["sample_varying"] and not scalar.attrs["time_varying"]
        assert list(f["scalars"].attrs["field_names"]) == list(record.params)
        dims = f["dimensions"]
        assert list(dims.attrs["spatial_dims"]) == ["x", "y"]
        sizes = {d: dims[d].shape[-1] for d in ("x", "y")}
        assert sizes == {"x": NX, "y": NY} and dims["time"].shape == (T,)
        for name in ("time", "x", "y"):
            for flag in ("sample_varying", "time_varying"):
                assert isinstance(dims[name].attrs[flag], np.bool_) and not dims[name].attrs[flag]
        for key, bc in f["boundary_conditions"].items():
            axis = list(bc.attrs["associated_dims"])
            assert key == f"{axis[0]}_{bc.attrs['bc_type']}" and axis[0] in sizes
            assert bc["mask"].shape == (sizes[axis[0]],) and bc["mask"][0] and bc["mask"][-1]
            assert bc.attrs["bc_type"].upper() in ("WALL", "OPEN", "PERIODIC")
        for order in range(3):
            group = f[f"t{order}_fields"]
            for name in group.attrs["field_names"]:
                a = group[name].attrs
                expected = [1] * bool(a["sample_varying"]) + [T] * bool(a["time_varying"])
                expected += [sizes[d] for d, varying in zip(("x", "y"), a["dim_varying"]) if varying]
                assert group[name].shape == tuple(expected + [2] * order), (order, name)
        assert list(f["t2_fields"].attrs["field_names"]) == []
        # The Well indexes [x, y]: velocity[0, t, i, j, 0] is u at column i, row j.
        velocity = f["t1_fields/velocity"][0]
        np.testing.assert_array_equal(velocity[4, 6, 1, 0], record.fields["u"][4, 1, 6])
        np.testing.assert_array_equal(velocity[4, 6, 1, 1], record.fields["v"][4, 1, 6])


@pytest.mark.parametrize("fmt", FORMATS)
def test_interrupted_write_leaves_no_case(tmp_path, monkeypatch, fmt):
    final = write_case(tmp_path, make_record(seed=1), "tiny", fmt=fmt)

    def crash(writer, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(case_file, "_write_fields", crash)
    with pytest.raises(KeyboardInterrupt):
        write_case(tmp_path, make_record(seed=2), "tiny", fmt=fmt)  # replacing the existing case
    with pytest.raises(KeyboardInterrupt):
        write_case(tmp_path, make_record("bc-0002"), "tiny", fmt=fmt)  # a new case
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == [final.name]
    with open_case(final) as case:  # the old version is intact
        np.testing.assert_array_equal(case.read(("u",), [0])[0, 0], make_record(seed=1).fields["u"][0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_leftover_temporaries_are_ignored_and_removable(tmp_path, fmt):
    final = write_case(tmp_path, make_record(), "tiny", fmt=fmt)
    ours = temporary_path(final.with_name(f"bc-0003{final.suffix}"))  # a live writer's (this process)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = final.with_name(f".bc-0002{final.suffix}.tmp-{int(dead.stdout)}")  # what a killed writer leaves
    for partial in (ours, leftover):
        (shutil.copytree if final.is_dir() else shutil.copy)(final, partial)
    assert list(list_cases(tmp_path)) == ["bc-0001"]
    assert remove_partials(tmp_path) == [leftover]
    assert not leftover.exists() and final.exists() and ours.exists()


def test_list_cases_sorted_and_refuses_duplicates(tmp_path):
    for case_id in ("geo-0000", "bc-0010", "bc-0002"):
        write_case(tmp_path, make_record(case_id), "tiny")
    assert list(list_cases(tmp_path)) == ["bc-0002", "bc-0010", "geo-0000"]
    write_case(tmp_path, make_record("bc-0002"), "tiny", fmt="zarr")
    assert list(list_cases(tmp_path, "zarr")) == ["bc-0002"]
    with pytest.raises(CfdbenchError, match="stored twice"):
        list_cases(tmp_path)


def test_truncated_file_raises_corrupt_case_error(tmp_path):
    path = write_case(tmp_path, make_record(), "tiny")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCaseError, match=re.escape(f"{path}: corrupt or incomplete case file")):
        open_case(path)
    path.write_text("not an HDF5 file")
    with pytest.raises(CorruptCaseError, match=re.escape(str(path))):
        open_case(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_incomplete_case_raises_corrupt_case_error(tmp_path, fmt):
    path = write_case(tmp_path, make_record(), "tiny", fmt=fmt)
    if fmt == "hdf5":
        with h5py.File(path, "r+") as f:
            del f["t1_fields/velocity"]
    else:
        shutil.rmtree(path / "t1_fields" / "velocity")
    with pytest.raises(CorruptCaseError, match="missing t1_fields/velocity"):
        open_case(path)
    if fmt == "zarr":
        (path / "zarr.json").unlink()
        with pytest.raises(CorruptCaseError, match=re.escape(str(path))):
            open_case(path)


def test_gzip_compression_round_trips(tmp_path):
    record = make_record()
    path = write_case(tmp_path, record, "tiny", compression="gzip")
    with h5py.File(path, "r") as f:
        assert f["t1_fields/velocity"].compression == "gzip"
    with open_case(path) as case:
        np.testing.assert_array_equal(case.read(("p",), [3])[0, 0], record.fields["p"][3])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dt": 0.0}, "dt must be finite and positive"),
        ({"dt": float("nan")}, "dt must be finite and positive"),
        ({"mask": np.ones((NX, NY), dtype=bool)}, "mask has shape"),
        ({"x": np.arange(NX + 1.0)}, "field 'u' has shape"),
        ({"boundary_conditions": {"x": "slip"}}, "boundary condition"),
        ({"case_id": "../escape"}, "invalid case id"),
    ],
)
def test_record_validation(change, message):
    with pytest.raises(CfdbenchError, match=message):
        make_record(**change)


def test_reserved_attribute_names_are_refused(tmp_path):
    with pytest.raises(CfdbenchError, match="reserved"):
        write_case(tmp_path, make_record(attrs={"dt": 1.0}), "tiny")


def test_zarr_cases_open_as_an_xarray_datatree(tmp_path):
    """Every group of a zarr case names its dimensions (zarr v3 metadata), with The Well's
    axis order, so that ``xr.open_datatree(case, engine="zarr")`` reads the whole tree."""
    xr = pytest.importorskip("xarray")
    record = make_record()
    tree = xr.open_datatree(write_case(tmp_path, record, "tiny", fmt="zarr"), engine="zarr", consolidated=False)
    coords = tree["dimensions"]
    velocity = tree["t1_fields"]["velocity"]
    assert velocity.dims == ("sample", "time", *record.axes, "component")
    assert velocity.shape[2:-1] == tuple(coords[axis].size for axis in record.axes)
    np.testing.assert_array_equal(tree["t0_fields"]["pressure"].values[0, 0], case_file._reverse_space(record.fields["p"], 2)[0])
    assert tree["scalars"]["vel_top"].values == np.float32(record.params["vel_top"])


def test_sharded_zarr_is_a_few_objects_read_like_any_case_and_by_xarray_alone(tmp_path):
    """``zarr_shards``: each array is one object (no per-frame chunk files), the frames read back
    exactly through cfdbench, and xarray opens the tree and each group without cfdbench's help."""
    xr = pytest.importorskip("xarray")
    record = make_record()
    plain = write_case(tmp_path / "plain", record, "tiny", fmt="zarr")
    sharded = write_case(tmp_path / "sharded", record, "tiny", fmt="zarr", zarr_shards=True)
    chunk_objects = {case: [p for p in case.rglob("*") if p.is_file() and p.name != "zarr.json"] for case in (plain, sharded)}
    arrays = [p for p in sharded.rglob("zarr.json") if '"node_type": "array"' in p.read_text()]
    assert len(chunk_objects[sharded]) <= len(arrays) < len(chunk_objects[plain])  # at most one object per array
    with open_case(sharded) as case:
        frames = [T - 1, 0, 3]
        np.testing.assert_array_equal(case.read(("u", "v", "p"), frames), np.stack([record.fields[f][frames] for f in "uvp"], 1))
    tree = xr.open_datatree(sharded, engine="zarr", consolidated=False)
    assert tree["t1_fields"]["velocity"].dims == ("sample", "time", *record.axes, "component")
    pressure = xr.open_zarr(sharded, group="t0_fields", consolidated=False)["pressure"]
    assert pressure.dims == ("sample", "time", *record.axes)
    np.testing.assert_array_equal(pressure.isel(sample=0, time=2).values, case_file._reverse_space(record.fields["p"], 2)[2])
    with pytest.raises(CfdbenchError, match="sharding is a zarr layout"):
        write_case(tmp_path / "h5", record, "tiny", fmt="hdf5", zarr_shards=True)
