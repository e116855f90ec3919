"""Channel datasets: the coarse filter, the card, and generation (stages, resume, store, loader, CLI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import CHANNEL_CARD, channel_dns_bytes_differ_here, write_channel_card

from cfdbench.cards import find_channel_card, load_dataset_card
from cfdbench.data.generate_channel import generate_channel_dataset
from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.data.store import list_cases, open_case
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError
from cfdbench.metrics.channel import PROFILES as PROFILE_NAMES
from cfdbench.pipeline import operator_meta
from cfdbench.solvers.channel import ChannelGrid, ChannelSolver
from cfdbench.solvers.channel_filter import ChannelFilter, CoarseGrid, periodic_filter_matrix

# --------------------------------------------------------------------------- filter


@pytest.mark.parametrize("kind", ["top-hat", "sharp"])
def test_periodic_filter_damps_each_wave_by_its_transfer_function(kind):
    n, length, coarse = 24, 2.0, 6
    width = length / coarse
    fine = (np.arange(n) + 0.5) * length / n
    points = (np.arange(coarse) + 0.5) * width
    matrix = periodic_filter_matrix(n, length, 0.5 * length / n, points, width, kind)
    for mode in (1, 2, 5):
        k = 2 * np.pi * mode / length
        gain = np.sinc(k * width / (2 * np.pi)) if kind == "top-hat" else float(k <= np.pi / width)
        np.testing.assert_allclose(matrix @ np.cos(k * fine + 0.3), gain * np.cos(k * points + 0.3), atol=1e-12)
    np.testing.assert_allclose(matrix @ np.ones(n), 1.0)  # the mean passes unchanged


def test_channel_filter_keeps_a_laminar_profile_exactly():
    grid = ChannelGrid(8, 20, 6, 2.0, 1.0, stretching=1.5)
    solver = ChannelSolver(grid, nu=0.01, pressure_gradient=0.02)
    state = solver.laminar_state(batch=2)
    coarse = CoarseGrid(4, 11, 3, y_stretching=1.2)
    frames = ChannelFilter(grid, coarse, torch.float64, "cpu")(state)
    assert frames["u"].shape == (2, 3, 11, 4)  # (B, nz, ny, nx)
    y = coarse.y()
    expected = (0.02 / (2 * 0.01)) * (1 - y**2)  # quadratic: the cubic spline reproduces it
    np.testing.assert_allclose(frames["u"][0, 1, :, 2].numpy(), expected, atol=1e-12)
    assert float(frames["v"].abs().max()) == 0 and float(frames["w"].abs().max()) == 0
    with pytest.raises(CfdbenchError, match="finer than the DNS"):
        ChannelFilter(grid, CoarseGrid(16, 11, 3), torch.float64, "cpu")
    with pytest.raises(CfdbenchError, match="unknown channel filter"):
        CoarseGrid(4, 11, 3, filter="gaussian")


# --------------------------------------------------------------------------- cards


def test_channel_cards_parse_and_refuse_bad_settings(tmp_path):
    paper, tiny = find_channel_card("channel180"), find_channel_card("channel180-tiny")
    assert (paper.dns.nx, paper.dns.ny, paper.dns.nz) == (192, 128, 128) and paper.trajectories == 21 and paper.frames == 400
    assert (paper.coarse.nx, paper.coarse.ny, paper.coarse.nz) == (32, 33, 16)
    assert tiny.name == "channel180-tiny" and tiny.dns.nx == 16 and tiny.coarse.nx == 8
    assert find_channel_card("cavity-mini") is None
    with pytest.raises(CfdbenchError, match="3D channel-flow card"):
        load_dataset_card("channel180")
    with pytest.raises(CfdbenchError, match="too coarse for a DNS at Re_tau = 180.*first_centre_y_plus"):
        write_channel_card(tmp_path, re_tau=180)
    with pytest.raises(CfdbenchError, match="must be a whole number of dns.dt"):
        write_channel_card(tmp_path, trajectories={**CHANNEL_CARD["trajectories"], "frame_interval": 0.0125})
    with pytest.raises(CfdbenchError, match="malformed channel card"):
        write_channel_card(tmp_path, dns={"nx": 8})


# --------------------------------------------------------------------------- generation


def _stored_frames(path: Path) -> dict[str, np.ndarray]:
    return {case_id: open_case(p).read(["u", "v", "w", "p"], slice(None)) for case_id, p in sorted(list_cases(path).items())}


def test_generation_stores_3d_trajectories_that_the_loader_reads(tmp_path):
    card = write_channel_card(tmp_path)
    report = generate_channel_dataset(card, tmp_path / "out", fmt="zarr")
    assert report.generated == ["traj-0000", "traj-0001", "traj-0002"]
    dataset = StoredDataset(tmp_path / "out")
    assert sorted(len(dataset.split(s)) for s in ("train", "valid", "test")) == [1, 1, 1]
    with dataset.open_case("traj-0001") as case:
        assert case.shape == (4, 9, 4) and case.n_frames == 6 and case.dt == pytest.approx(0.1)
        assert case.boundary_conditions == {"x": "periodic", "y": "wall", "z": "periodic"}
        assert case.attrs["filter"]["filter"] == "top-hat" and case.attrs["filter"]["dns_grid"]["ny"] == 24
    view = dataset["traj-0002"]
    assert view["w"].dims == ("t", "z", "y", "x") and view["y"].values[0] == -1 and view["mask"].dims == ("z", "y", "x")
    samples = AutoregressiveDataset(dataset, "train", fields=("u", "v", "w"))
    batch = samples[[0, 1]]
    assert batch["input"].shape == (2, 3, 4, 9, 4) and batch["mask"].shape == (2, 1, 4, 9, 4)
    assert operator_meta(samples).n_spatial_dims == 3 and operator_meta(samples).grid_shape == (4, 9, 4)
    assert dataset.n_spatial_dims == 3
    frames = _stored_frames(tmp_path / "out")
    assert not np.allclose(frames["traj-0000"], frames["traj-0001"])  # independent perturbations
    assert (tmp_path / "out" / "spinup.json").is_file() and not (tmp_path / "out" / "restart").exists()
    # A sealed dataset is reused, not regenerated.
    assert generate_channel_dataset(card, tmp_path / "out").reused == report.generated


def test_sharded_channel_cases_hold_the_same_frames_in_one_object_per_array(tmp_path):
    """``--zarr-shards`` for a channel card: each array one object (for object stores), the frames
    those of the unsharded layout, and xarray opens a case without cfdbench."""
    xr = pytest.importorskip("xarray")
    card = write_channel_card(tmp_path)
    generate_channel_dataset(card, tmp_path / "plain", fmt="zarr")
    generate_channel_dataset(card, tmp_path / "sharded", fmt="zarr", zarr_shards=True)
    plain, sharded = (_stored_frames(tmp_path / name) for name in ("plain", "sharded"))
    assert plain.keys() == sharded.keys()
    for case_id in plain:
        np.testing.assert_array_equal(plain[case_id], sharded[case_id])
    case = list_cases(tmp_path / "sharded")["traj-0000"]
    arrays = [p for p in case.rglob("zarr.json") if '"node_type": "array"' in p.read_text()]
    objects = [p for p in case.rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(objects) <= len(arrays)
    velocity = xr.open_datatree(case, engine="zarr", consolidated=False)["t1_fields"]["velocity"]
    assert velocity.dims == ("sample", "time", "x", "y", "z", "component")


def test_interrupted_generation_resumes_to_the_same_data(tmp_path):
    card = write_channel_card(tmp_path)
    generate_channel_dataset(card, tmp_path / "whole", fmt="hdf5")

    def interrupt(stage: str, done: float, total: float) -> None:
        if stage == "trajectories" and done >= 0.3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_channel_dataset(card, tmp_path / "pieces", fmt="hdf5", progress=interrupt)
    restart = tmp_path / "pieces" / "restart"
    assert sorted(p.name for p in restart.iterdir()) == ["spinup.pt", "trajectories.pt"]
    (restart / ".spinup.pt.tmp-99999").write_bytes(b"a write killed halfway")
    changed = write_channel_card(tmp_path / "other", trajectories={**CHANNEL_CARD["trajectories"], "perturbation": 0.1})
    with pytest.raises(CfdbenchError, match="written for another card or preset.*delete"):
        generate_channel_dataset(changed, tmp_path / "pieces", fmt="hdf5")
    generate_channel_dataset(card, tmp_path / "pieces", fmt="hdf5")
    assert not restart.exists()
    whole, pieces = _stored_frames(tmp_path / "whole"), _stored_frames(tmp_path / "pieces")
    for case_id in whole:
        np.testing.assert_array_equal(whole[case_id], pieces[case_id])


def test_spin_up_statistics_cover_a_window_that_is_not_a_whole_number_of_restart_intervals(tmp_path):
    card = write_channel_card(tmp_path, spinup={**CHANNEL_CARD["spinup"], "average": 0.1}, checkpoint_every=0.3)
    generate_channel_dataset(card, tmp_path / "out")
    report = yaml.safe_load((tmp_path / "out" / "spinup.json").read_text())
    assert report["samples"] > 0 and report["wall_units"]["re_tau"] > 0


def test_cli_generates_a_channelwrite_channel_card(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cfdbench.cli import app

    write_channel_card(tmp_path)
    monkeypatch.setenv("CFDBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("CFDBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    command = ["data", "generate", "chantest", "--device", "cpu"]
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output
    assert "3 trajectories generated" in " ".join(done.output.split())
    assert len(list_cases(tmp_path / "data" / "chantest", fmt="zarr")) == 3
    refused = CliRunner().invoke(app, [*command, "--shard", "0/2"])
    assert isinstance(refused.exception, CfdbenchError) and "one DNS run" in str(refused.exception)  # exit 2 via main()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 3 min alone on 2 cores; sharing them with other jobs it has taken > 10 min
def test_tiny_preset_generates_turbulence_on_a_cpu(tmp_path):
    """The `cfdbench data generate channel180 --preset tiny` card end to end (minutes on a CPU)."""
    card = find_channel_card("channel180-tiny")
    generate_channel_dataset(card, tmp_path / "tiny")
    spinup = yaml.safe_load((tmp_path / "tiny" / "spinup.json").read_text())
    assert 120 < spinup["wall_units"]["re_tau"] < 240  # near 180: turbulent, not relaminarised
    assert spinup["wall_units"]["bulk_u_plus"] < 25  # laminar flow at this gradient would reach 60
    from cfdbench.data.dataset_dir import content_hash
    from cfdbench.leaderboard.submit import published_hash

    if (why := channel_dns_bytes_differ_here()) is not None:
        pytest.skip(f"physics checked; the bytes are not comparable here: {why}")
    assert content_hash(tmp_path / "tiny") == published_hash("channel180-tiny"), "bump the card's version and republish its hash"


def test_channel_rollouts_are_scored_by_their_statistics(tmp_path, monkeypatch):
    """`cfdbench run` and `evaluate` on volumes: pointwise scores plus the channel statistics of the
    rollout against the DNS truth, in a valid entry with a profile figure; the identity's statistics
    are those of a frozen field, not of the truth."""
    from cfdbench.entries.entry import validate_entry
    from cfdbench.pipeline import evaluate_checkpoint, run

    card = write_channel_card(tmp_path)
    monkeypatch.setenv("CFDBENCH_DATA", str(tmp_path / "data"))
    generate_channel_dataset(card, tmp_path / "data" / "chantest")
    small = ["model.dim=12", "model.heads=2", "model.dim_head=8", "model.n_layer=2", "model.latent_dim=12"]
    run_dir, entry = run(
        "ifactformer_m", "chantest", "cpu", {"epochs": 1}, rollout_steps=4, runs_root=tmp_path / "runs", show_progress=False,
        settings=small,
    )  # fmt: skip
    validate_entry(entry)
    statistics = entry["channel_statistics"]
    assert statistics["windows"] == {"all": [1, 4], "late": [3, 4]}
    for who in ("model", "identity"):
        for window in ("all", "late"):
            assert set(statistics[who][window]) == {*PROFILE_NAMES, "spectrum_x_u", "spectrum_z_u", "re_tau"}
    identity = statistics["identity"]["all"]
    assert 0 < identity["rms_v"] < np.inf and statistics["re_tau"]["truth"] > 0
    assert "brmse" not in entry["metrics"]["rollout"]["model"] and entry["metrics"]["one_step"]["model"]["nmse"] > 0
    assert (run_dir / entry["artifacts"]["channel_plot"]).is_file() and (run_dir / "fields.png").is_file()
    again = evaluate_checkpoint(run_dir / "checkpoint.pt", "chantest", steps=4, device="cpu")[1]
    assert again["channel_statistics"] == statistics


def test_publishing_a_hash_in_the_card_keeps_its_datasets_valid(tmp_path, monkeypatch):
    """A generated channel dataset records its card's hash; publishing the dataset's content hash in
    the card afterwards must not make the card look changed, and submission reads it from there."""
    from cfdbench.leaderboard.submit import published_hash

    card = write_channel_card(tmp_path)
    before = card.content_hash()
    with open(card.path, "a") as handle:
        handle.write("published_content_hashes:\n  chantest: " + "ab" * 32 + "\n")
    assert card.content_hash() == before
    monkeypatch.setenv("CFDBENCH_HOME", str(tmp_path))
    assert published_hash("chantest") == "ab" * 32
    with open(card.path, "a") as handle:
        handle.write("re_tau_note: changed\n")
    assert card.content_hash() != before
