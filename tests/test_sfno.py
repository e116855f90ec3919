"""SFNO (Spectral-Refiner's spatiotemporal FNO): the reference's parameter counts, window shapes,
masking and gradients, checkpoints, refusals, overfitting, and a trained SFNO beating the
identity on the tiny cavity's rollouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cfdbench.cards import load_model_card
from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.refinement import check_refinable, refine_test_cases
from cfdbench.evaluation.rollout import RolloutTask, evaluate_rollout
from cfdbench.evaluation.spectral_refine import RefineSettings, full_modes, widened_output
from cfdbench.layers.spectral_conv_t import SpectralConvT
from cfdbench.losses.navier_stokes_residual import interior_mask, vorticity_residual
from cfdbench.models.base import OperatorMeta, predict_batch
from cfdbench.models.registry import build_model, get_model_class, load_checkpoint, save_checkpoint
from cfdbench.training.trainer import TrainConfig, masked_loss, train

SMALL = {"width": 8, "modes_x": 4, "modes_y": 4, "modes_t": 2, "latent_steps": 2}


def window_batch(meta: OperatorMeta, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, 1, *meta.grid_shape)
    mask[..., 3:6, 2:5] = 0  # a body
    return {
        "input": torch.randn(batch, meta.input_frames * meta.n_fields, *meta.grid_shape, generator=g) * mask,
        "target": torch.randn(batch, meta.output_frames * meta.n_fields, *meta.grid_shape, generator=g) * mask,
        "mask": mask,
        "fluid_fraction": mask,  # the body's edges on cell faces: its fluid fraction is the mask
        "params": torch.randn(batch, meta.n_params, generator=g),
        "time": torch.zeros(batch),
    }


@pytest.mark.parametrize("width, modes, published", [(10, 32, 16_469_791), (20, 12, 9_242_461)])
def test_the_reference_network_has_the_published_parameter_count(width, modes, published):
    """One vorticity field, no conditioning, no padding: the reference's network (models.md B.1)."""
    meta = OperatorMeta(("w",), 10, 0, (64, 64), output_frames=10)
    model = build_model("sfno", meta, width=width, modes_x=modes, modes_y=modes, modes_t=5, conditioning=False, spatial_padding=0)
    assert model.parameter_count() == published
    card = load_model_card("sfno")
    reference = build_model("sfno", meta, **{**card.resolve("cavity")[0], "conditioning": False, "spatial_padding": 0})
    assert reference.parameter_count() == card.reference_parameter_count


@pytest.mark.parametrize("output_frames", [1, 3])
def test_windows_have_the_right_shape_mask_and_gradients(output_frames):
    meta = OperatorMeta(("u", "v"), 4, 5, (16, 12), output_frames=output_frames)
    model = build_model("sfno", meta, **SMALL)
    batch = window_batch(meta)
    out = predict_batch(model, batch, torch.device("cpu"))
    assert out.shape == (2, output_frames * 2, 16, 12)
    assert torch.all(out[batch["mask"].expand_as(out) == 0] == 0)
    masked_loss(out, batch["target"], batch["mask"], "nmse").backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_a_zero_network_predicts_the_last_input_frame():
    """The output is the last input frame plus a correction: with the correction's weights at zero
    the model is persistence, frame for frame."""
    meta = OperatorMeta(("u", "v"), 3, 5, (16, 16), output_frames=2)
    model = build_model("sfno", meta, **SMALL)
    with torch.no_grad():
        for parameter in model.output.parameters():
            parameter.zero_()
    batch = window_batch(meta)
    out = predict_batch(model, batch, torch.device("cpu"))
    last = batch["input"][:, -2:]
    torch.testing.assert_close(out, torch.cat([last, last], dim=1))


def test_time_resampling_keeps_a_constant_in_time_field():
    """A spectral layer that keeps only the mean mode maps a constant-in-time field to the same
    constant over any number of output steps, up to the T_in / T_out factor of the unnormalised FFT."""
    layer = SpectralConvT(1, 1, (1, 1, 1))
    with torch.no_grad():
        for weight in layer.weights:
            weight.zero_()
        layer.weights[0][..., 0] = 1.0  # the (0, 0, 0) mode passes unchanged
    x = torch.full((1, 1, 8, 8, 6), 2.0)
    for steps in (3, 6, 10):
        torch.testing.assert_close(layer(x, out_steps=steps), torch.full((1, 1, 8, 8, steps), 2.0 * 6 / steps))


def test_checkpoint_rebuilds_identical_windows(tmp_path):
    meta = OperatorMeta(("u", "v"), 4, 5, (16, 16), output_frames=2)
    model = build_model("sfno", meta, **SMALL).eval()
    batch = window_batch(meta, batch=3)
    with torch.no_grad():
        expected = predict_batch(model, batch, torch.device("cpu"))
        rebuilt, _ = load_checkpoint(save_checkpoint(model, tmp_path / "sfno.pt"))
        torch.testing.assert_close(predict_batch(rebuilt.eval(), batch, torch.device("cpu")), expected, rtol=0, atol=0)
    assert rebuilt.config == model.config and rebuilt.meta.output_frames == 2


def test_bad_windows_and_modes_are_refused(tiny_dataset):
    meta = OperatorMeta(("u", "v"), 4, 5, (16, 16), output_frames=2)
    with pytest.raises(CfdbenchError, match="latent_steps must lie in"):
        build_model("sfno", meta, **{**SMALL, "latent_steps": 6})
    with pytest.raises(CfdbenchError, match="do not fit a 16 x 16 grid"):
        build_model("sfno", meta, **{**SMALL, "modes_x": 9})
    with pytest.raises(CfdbenchError, match="predicts one frame per call; training.output_frames must be 1"):
        build_model("fno", meta)
    with pytest.raises(CfdbenchError, match="a window of 5 inputs and 4 targets at stride 1 needs 9"):
        AutoregressiveDataset(tiny_dataset, "train", input_frames=5, output_frames=4)  # its cases have 8 frames


def test_overfits_a_batch_of_windows(tiny_dataset):
    torch.manual_seed(0)
    data = AutoregressiveDataset(tiny_dataset, "train", input_frames=2, output_frames=2)
    batch = data[[1, 3, 6, 9]]
    meta = OperatorMeta(data.fields, 2, len(data.parameter_names), tuple(data.frame_shape), output_frames=2)
    model = build_model("sfno", meta, **SMALL)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss = masked_loss(predict_batch(model, batch, torch.device("cpu")), batch["target"], batch["mask"], "mse")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] < 0.2 * losses[0]:
            break
    assert losses[-1] < 0.2 * losses[0], f"loss {losses[0]:.3g} -> {losses[-1]:.3g} in {len(losses)} steps"


def test_trained_sfno_beats_the_identity_on_tiny_cavity_rollouts(tiny_dataset, tmp_path):
    """Trained on 2 -> 2 windows, rolled out window by window over 4 steps of the test cavity."""
    window = {"input_frames": 2, "output_frames": 2}
    train_data = AutoregressiveDataset(tiny_dataset, "train", **window)
    valid_data = AutoregressiveDataset(tiny_dataset, "valid", normalization=train_data.normalization, **window)
    meta = OperatorMeta(train_data.fields, 2, len(train_data.parameter_names), tuple(train_data.frame_shape), output_frames=2)
    torch.manual_seed(0)
    model = build_model("sfno", meta, **SMALL)
    config = TrainConfig(epochs=12, batch_size=4, lr=3e-3, scheduler="cosine", eval_batch_size=16, **window)
    result = train(model, train_data, valid_data, config, tmp_path, torch.device("cpu"), show_progress=False)
    best, _ = load_checkpoint(result.checkpoint)
    task = RolloutTask(input_frames=2, stride=1, steps=4, start_frame=1)
    scores = evaluate_rollout(best, tiny_dataset, train_data.normalization, task).summary()
    assert np.isfinite(scores["model"]["nmse"])
    assert scores["model"]["nmse"] < scores["identity"]["nmse"], scores


# --------------------------------------------------------------------------- spectral refinement


def _taylor_green(n: int, nu: float = 0.1) -> tuple[torch.Tensor, float]:
    """Decaying Taylor–Green velocity (1, 4, 2, n, n) on cell centres of (0, 2π)², an exact NS solution."""
    h = 2 * math.pi / n
    x = (torch.arange(n, dtype=torch.float64) + 0.5) * h
    dt = 0.4 * h
    decay = torch.exp(-2 * nu * torch.arange(4, dtype=torch.float64) * dt)[:, None, None]
    u = torch.sin(x)[None, None, :] * torch.cos(x)[None, :, None] * decay
    v = -torch.cos(x)[None, None, :] * torch.sin(x)[None, :, None] * decay
    return torch.stack([u, v], dim=1)[None], dt


def test_vorticity_residual_of_an_exact_solution_converges_at_second_order():
    one = torch.ones(1, dtype=torch.float64)
    peaks = []
    for n in (32, 64):
        velocity, dt = _taylor_green(n)
        mask = torch.ones(1, 1, n, n, dtype=torch.float64)
        residual = vorticity_residual(velocity, mask, one * dt, one * 2 * math.pi / n, one * 2 * math.pi / n, one * 0.1)
        assert residual.shape == (1, 3, n, n) and torch.all(residual[..., :2, :] == 0)  # two cells at each edge excluded
        peaks.append(float(residual.abs().max()))
    assert 3.5 < peaks[0] / peaks[1] < 4.5, peaks
    assert peaks[1] < 1e-3  # against vorticity terms of order 1


def test_interior_mask_keeps_cells_two_away_from_solids_and_edges():
    mask = torch.ones(1, 1, 12, 12)
    mask[..., 5:7, 5:7] = 0
    inner = interior_mask(mask)[0, 0]
    assert inner[4, 4] == 0 and inner[2, 2] == 1 and inner[1, 6] == 0 and inner[9, 9] == 1 and inner[3, 5] == 0


def test_widened_output_layer_starts_from_the_trained_prediction():
    meta = OperatorMeta(("u", "v"), 4, 5, (16, 16), output_frames=2)
    model = build_model("sfno", meta, **SMALL).eval()
    with torch.no_grad():
        for bias in model.output.biases:
            bias.normal_()  # a trained bias, to be carried over under the new delta
        batch = window_batch(meta)
        fields = model.input_fields(batch["input"]).double()
        latent = model.latent(batch["input"], batch["mask"], batch["params"]).double()
        wide = widened_output(model.output, full_modes(16, 16, model), delta=1.0)
        assert wide.modes == (8, 8, 4)
        torch.testing.assert_close(
            model.window_from_latent(fields, latent, wide), model.window_from_latent(fields, latent), rtol=1e-4, atol=1e-4
        )


def test_refinement_lowers_the_residual_and_is_refused_where_it_cannot_run(tiny_dataset):
    train_data = AutoregressiveDataset(tiny_dataset, "train", input_frames=2, output_frames=2)
    meta = OperatorMeta(train_data.fields, 2, len(train_data.parameter_names), tuple(train_data.frame_shape), output_frames=2)
    torch.manual_seed(0)
    model = build_model("sfno", meta, **SMALL)
    task = RolloutTask(input_frames=2, stride=1, steps=4, start_frame=1)
    settings = RefineSettings(iterations=20)
    summary, seconds = refine_test_cases(model, tiny_dataset, train_data.normalization, task, settings=settings)
    residual = summary["residual_h_minus_1"]
    assert residual["after"] < 0.5 * residual["before"] and residual["truth"] > 0 and seconds > 0
    assert summary["cases"] == len(tiny_dataset.split("test")) and summary["nmse"]["before"] > 0
    with pytest.raises(CfdbenchError, match="the dam break's free surface"):
        check_refinable(type(model), "dam", "dam-tiny")
    with pytest.raises(CfdbenchError, match="needs SFNO's spectral output operator; fno has none"):
        check_refinable(get_model_class("fno"), "cavity", "cavity-mini")


def test_run_with_refinement_writes_it_into_a_valid_entry(tiny_dataset, tmp_path):
    from cfdbench.entries.entry import validate_entry
    from cfdbench.pipeline import run

    small = [f"model.{key}={value}" for key, value in SMALL.items()] + ["training.input_frames=2", "training.output_frames=2"]
    _, entry = run(
        "sfno", str(tiny_dataset.path), "cpu", {"epochs": 1, "batch_size": 4}, rollout_steps=4, runs_root=tmp_path,
        show_progress=False, settings=small, refine=RefineSettings(iterations=5),
    )  # fmt: skip
    validate_entry(entry)
    assert entry["refinement"]["window_frames"] == 2 and entry["refinement"]["settings"]["iterations"] == 5
    assert entry["cost"]["refinement_seconds"] > 0 and entry["task"]["input_frames"] == 2
