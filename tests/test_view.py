"""open_dataset / StoredDataset: name resolution, splits, statistics and the xarray view."""

import numpy as np
import pytest

from cfdbench.data.dataset_dir import compute_stats, make_splits, write_manifest, write_splits, write_stats
from cfdbench.data.resolve import open_dataset
from cfdbench.data.schema import SCHEMA_VERSION, CaseRecord
from cfdbench.data.store import write_case
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError, DatasetNotFoundError, UnknownNameError

T, NY, NX = 4, 3, 5
IDS = ["bc-0000", "bc-0001", "geo-0000", "geo-0001", "prop-0000"]


def make_record(case_id: str, seed: int) -> CaseRecord:
    rng = np.random.default_rng(seed)
    mask = np.ones((NY, NX), dtype=bool)
    mask[1, 2] = False
    return CaseRecord(
        case_id=case_id,
        subset=case_id.split("-")[0],
        params={"vel_top": 1.0 + seed, "viscosity": 1e-3},
        dt=0.5,
        x=(np.arange(NX) + 0.5) / 4,  # exact in float32
        y=(np.arange(NY) + 0.5) / 4,
        fields={name: rng.standard_normal((T, NY, NX)).astype(np.float32) for name in "uvp"},
        mask=mask,
        boundary_conditions={"x": "wall", "y": "wall"},
        attrs={"reynolds": 10.0 * (seed + 1)},
    )


def build(folder, fmt, finalise=True):
    """Write the five cases; a finalised folder also gets splits, statistics and the manifest."""
    records = {case_id: make_record(case_id, seed) for seed, case_id in enumerate(IDS)}
    for record in records.values():
        write_case(folder, record, "tiny", fmt=fmt)
    if finalise:
        splits = make_splits(IDS, seed=0, train=0.6, valid=0.2)
        write_splits(folder, splits, 0, (0.6, 0.2))
        write_stats(folder / "stats.yaml", compute_stats(folder, splits["train"]))
        write_manifest(folder, {"dataset": "tiny", "format": fmt})
    return records


@pytest.mark.parametrize("fmt", ["hdf5", "zarr"])
def test_view_of_a_finalised_dataset(tmp_path, fmt):
    folder = tmp_path / "tiny-folder"
    records = build(folder, fmt)
    ds = open_dataset(folder)
    assert isinstance(ds, StoredDataset) and ds.name == "tiny" and ds.path == folder
    assert ds.case_ids == IDS and list(ds) == IDS and len(ds) == 5
    assert sorted(sum((ds.split(k) for k in ("train", "valid", "test")), [])) == IDS
    assert ds.stats["n_cases"] == 3 and set(ds.stats["u"]) >= {"mean", "std", "rms_delta"}
    assert ds.manifest["info"]["format"] == fmt
    assert ds.case_path("geo-0001").name.startswith("geo-0001.")

    view = ds["geo-0001"]
    record = records["geo-0001"]
    assert dict(view.sizes) == {"t": T, "y": NY, "x": NX}
    assert view["u"].dims == ("t", "y", "x") and view["mask"].dims == ("y", "x")
    np.testing.assert_allclose(view["t"], np.arange(T) * 0.5)
    np.testing.assert_array_equal(view["x"], record.x)
    np.testing.assert_array_equal(view["y"], record.y)
    for name in "uvp":
        np.testing.assert_array_equal(view[name].values, record.fields[name])
    np.testing.assert_array_equal(view["mask"].values, record.mask)
    assert [view[name].attrs["units"] for name in ("u", "v", "p", "t", "x", "y")] == ["m/s", "m/s", "Pa", "s", "m", "m"]
    assert view.attrs == {
        "case_id": "geo-0001",
        "subset": "geo",
        "dt": 0.5,
        "schema_version": SCHEMA_VERSION,
        "vel_top": 4.0,
        "viscosity": 1e-3,
    }
    # Labelled selection works in physical units.
    assert float(view["p"].sel(t=1.0, x=record.x[2], y=record.y[0])) == pytest.approx(record.fields["p"][2, 0, 2])
    with ds.open_case("bc-0001") as case:
        assert case.read(("v",), [3]).shape == (1, 1, NY, NX)


def test_unknown_names_are_listed(tmp_path):
    build(tmp_path / "tiny", "hdf5")
    ds = open_dataset(tmp_path / "tiny")
    with pytest.raises(UnknownNameError, match="unknown case 'bc-9999'.*bc-0000"):
        ds["bc-9999"]
    with pytest.raises(UnknownNameError, match="unknown split 'training'; valid choices: test, train, valid"):
        ds.split("training")


def test_unfinalised_folder_has_no_splits_or_stats(tmp_path):
    build(tmp_path / "tiny", "zarr", finalise=False)
    ds = open_dataset(tmp_path / "tiny", fmt="zarr")
    assert ds.splits is None and ds.stats is None and ds.manifest == {}
    assert ds.name == "tiny" and len(ds) == 5
    with pytest.raises(CfdbenchError, match="no splits.json"):
        ds.split("train")
    assert len(open_dataset(tmp_path / "tiny", fmt="hdf5")) == 0


def test_names_resolve_under_the_data_root(tmp_path, monkeypatch):
    build(tmp_path / "tiny", "hdf5")
    monkeypatch.setenv("CFDBENCH_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path / "tiny")  # a bare name must not depend on the working directory
    assert open_dataset("tiny").path == tmp_path / "tiny"
    with pytest.raises(DatasetNotFoundError, match="dataset 'cavity' not found at .*cfdbench data generate cavity"):
        open_dataset("cavity")
    with pytest.raises(DatasetNotFoundError, match="not found"):
        open_dataset(tmp_path / "elsewhere" / "tiny")


@pytest.mark.parametrize("fmt", ["hdf5", "zarr"])
def test_metadata_is_typed_and_parsed_once(tmp_path, fmt):
    """Fields, grid, Δt, parameters, boundary conditions, splits and content hash come from one place,
    agree with the case files and the manifest, and size the models' OperatorMeta."""
    from cfdbench.data.dataset_dir import content_hash, read_splits
    from cfdbench.models.base import OperatorMeta

    build(tmp_path, fmt)
    ds = open_dataset(tmp_path)
    meta = ds.metadata
    assert meta is ds.metadata  # parsed once
    with ds.open_case(IDS[0]) as case:
        assert meta.fields == tuple(case.field_names) == ("u", "v", "p")
        assert meta.grid_shape == (NY, NX) and meta.n_spatial_dims == 2
        assert meta.dt == 0.5 and meta.parameter_names == ("vel_top", "viscosity")
        assert meta.boundary_conditions == case.boundary_conditions
    assert meta.splits == {name: tuple(ids) for name, ids in read_splits(tmp_path).items()}
    assert meta.content_hash == content_hash(tmp_path)
    assert meta.generator is None and not meta.generated and not meta.legacy
    operator = OperatorMeta.from_dataset(meta, ("u", "v"), input_frames=2)
    assert operator == OperatorMeta(("u", "v"), 2, 2, (NY, NX), ("vel_top", "viscosity"), 2, 1)


def test_metadata_of_an_unsealed_folder_has_no_hash_or_splits(tmp_path):
    build(tmp_path, "hdf5", finalise=False)
    meta = StoredDataset(tmp_path).metadata
    assert meta.content_hash is None and meta.splits is None and meta.name == tmp_path.name
