"""IFactFormer-m / -o and the 3D FNO: the paper's parameter count, shapes and gradients, save/reload, overfitting,
rotary encoding, dimension refusals, and a loss that falls on generated channel data."""

from __future__ import annotations

import pytest
import torch
from conftest import run_entry_point, write_channel_card

from cfdbench.cards import load_model_card
from cfdbench.data.generate_channel import generate_channel_dataset
from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError
from cfdbench.layers.factorized_attention import RotaryEmbedding
from cfdbench.models.base import OperatorMeta
from cfdbench.models.registry import build_model, load_checkpoint, save_checkpoint
from cfdbench.training.trainer import TrainConfig, masked_loss

VARIANTS = ("ifactformer_m", "ifactformer_o", "fno3d")  # fno3d: the channel baseline, same 3D contract
SMALL = dict(dim=24, heads=2, dim_head=8, n_layer=3, latent_dim=16, lx=1.5, lz=0.6)


def channel_meta(shape=(4, 5, 6), frames: int = 1) -> OperatorMeta:
    return OperatorMeta(("u", "v", "w"), frames, 3, shape, ("re_tau", "length_x", "length_z"), n_spatial_dims=3)


def test_paper_configuration_has_the_published_parameter_count():
    card = load_model_card("ifactformer_m")
    model = build_model("ifactformer_m", channel_meta(), **card.model)
    assert model.parameter_count() == card.reference_parameter_count == 1_163_331
    chained = build_model("ifactformer_o", channel_meta(), **load_model_card("ifactformer_o").model)
    assert chained.parameter_count() == 1_163_331 - 2 * 480 * 96  # to_out reads H·Dv channels, not 3·H·Dv
    TrainConfig.from_dict(card.training)  # the card's training settings are valid


def small(name: str) -> dict:
    return dict(modes=[4, 4, 4], hidden_channels=8, projection_channels=16) if name == "fno3d" else SMALL


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_gradients_mask_and_reload(name, tmp_path):
    meta = channel_meta(frames=2)
    model = build_model(name, meta, **small(name))
    torch.manual_seed(0)
    inputs = torch.randn(2, 6, 4, 5, 6)
    mask = torch.ones(2, 1, 4, 5, 6)
    mask[..., 0, :] = 0  # the walls
    out = model(inputs, mask, torch.zeros(2, 3))
    assert out.shape == (2, 3, 4, 5, 6) and float(out.detach()[..., 0, :].abs().max()) == 0
    out.square().mean().backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    reloaded, _ = load_checkpoint(save_checkpoint(model, tmp_path / "model.pt"))
    torch.testing.assert_close(reloaded(inputs, mask, torch.zeros(2, 3)), out.detach())


@pytest.mark.parametrize("name", VARIANTS)
def test_overfits_one_batch(name):
    torch.manual_seed(1)
    model = build_model(name, channel_meta(), **small(name))
    inputs, target = torch.randn(2, 3, 4, 5, 6), torch.randn(2, 3, 4, 5, 6)
    mask = torch.ones(2, 1, 4, 5, 6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(80):
        optimizer.zero_grad()
        loss = masked_loss(model(inputs, mask, torch.zeros(2, 3)), target, mask, "mse")
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.4 * losses[0]


def test_rotary_scores_depend_only_on_coordinate_differences():
    rope = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    coordinates = torch.linspace(0, 1, 5)
    scores = rope(q, coordinates) @ rope(k, coordinates).transpose(-1, -2)
    shifted = rope(q, coordinates + 0.37) @ rope(k, coordinates + 0.37).transpose(-1, -2)
    torch.testing.assert_close(scores, shifted, rtol=1e-4, atol=1e-4)


def test_models_refuse_frames_of_the_wrong_dimension():
    with pytest.raises(CfdbenchError, match="ifactformer_m' works on 3D frames; the data has 2D"):
        build_model("ifactformer_m", OperatorMeta(("u", "v"), 1, 5, (64, 64)))
    with pytest.raises(CfdbenchError, match="'fno' works on 2D frames; the data has 3D"):
        build_model("fno", channel_meta())


def test_trains_on_generated_channel_data(tmp_path):
    """The loss of IFactFormer-m falls on real channel frames (the small test card's DNS)."""
    generate_channel_dataset(write_channel_card(tmp_path), tmp_path / "data")
    samples = AutoregressiveDataset(StoredDataset(tmp_path / "data"), "train", fields=("u", "v", "w"))
    meta = OperatorMeta(("u", "v", "w"), 1, 3, tuple(samples.frame_shape), samples.parameter_names, n_spatial_dims=3)
    torch.manual_seed(0)
    model = build_model("ifactformer_m", meta, **SMALL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    batch = samples[list(range(len(samples)))]
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = masked_loss(model(batch["input"], batch["mask"], batch["params"]), batch["target"], batch["mask"], "nmse")
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    # The same data through the command line: `train` on volumes, `evaluate` with the channel statistics.
    data = str(tmp_path / "data")
    train = ["train", "--model", "ifactformer_m", "--dataset", data, "--epochs", "2", "--device", "cpu"]
    train += [arg for key in ("dim=24", "heads=2", "dim_head=8", "n_layer=2") for arg in ("--set", f"model.{key}")]
    trained = run_entry_point(*train, cwd=tmp_path)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    (checkpoint,) = (tmp_path / "runs").glob("*-ifactformer_m-chantest/checkpoint.pt")
    evaluate = ["evaluate", "--checkpoint", str(checkpoint), "--dataset", data, "--device", "cpu"]
    scored = run_entry_point(*evaluate, "--steps", "4", cwd=tmp_path)
    assert scored.returncode == 0 and "channel statistics" in scored.stdout and "Re_tau over the rollout" in scored.stdout
    too_long = run_entry_point(*evaluate, cwd=tmp_path)  # 20 steps from frame 0 on 6-frame trajectories
    assert too_long.returncode == 2 and "has 6 frames; a 20-step rollout at stride 1 from frame 0 needs 21" in too_long.stderr


def test_bf16_autocast_keeps_the_positional_phases_in_float32():
    """Angles of hundreds of radians in RoPE and the Fourier features: bf16 would turn them to noise."""
    meta = channel_meta(shape=(8, 9, 16))
    torch.manual_seed(2)
    model = build_model("ifactformer_m", meta, **{**SMALL, "lx": 12.566, "lz": 4.189}).eval()
    inputs, mask, params = torch.randn(1, 3, 8, 9, 16), torch.ones(1, 1, 8, 9, 16), torch.zeros(1, 3)
    reference = model(inputs, mask, params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(inputs, mask, params).float()
    assert float((mixed - reference).detach().norm() / reference.detach().norm()) < 0.05


@pytest.mark.parametrize("name", ("ifactformer_m", "ifactformer_o"))
def test_runs_in_float64_throughout(name):
    """Positions and phases follow the model's precision (they were cast to float32): a float64 model
    gives float64 outputs, and agrees with its float32 copy to float32 round-off."""
    meta = channel_meta(shape=(8, 9, 16))
    torch.manual_seed(3)
    model = build_model(name, meta, **SMALL).eval()
    inputs, mask, params = torch.randn(1, 3, 8, 9, 16), torch.ones(1, 1, 8, 9, 16), torch.zeros(1, 3)
    single = model(inputs, mask, params).detach()
    double = model.double()(inputs.double(), mask.double(), params.double()).detach()
    assert double.dtype == torch.float64
    assert float((double - single.double()).norm() / double.norm()) < 1e-5


def test_the_implicit_layer_shares_one_block():
    """n_layer repeats the same weights: the parameter count does not depend on it."""
    one, seven = (build_model("ifactformer_m", channel_meta(), **{**SMALL, "n_layer": n}) for n in (1, 7))
    assert one.parameter_count() == seven.parameter_count()
