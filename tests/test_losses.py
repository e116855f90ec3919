"""Training losses: Sobolev norms against their analytic values on sine fields and direct
computations; the registry's losses against hand formulas (normalised and physical units, the
reference's Sobolev convention), one-line errors for bad names and options, NMSE bit-identical
to the trainer's former formula, and a short training run with each loss."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cfdbench.errors import CfdbenchError
from cfdbench.losses import build_loss, masked_loss
from cfdbench.losses.sobolev import SobolevLoss, reference_order
from cfdbench.training.config import TrainConfig

N, L = 32, 2 * math.pi


def _grid() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(N, dtype=torch.float64) * L / N
    return torch.meshgrid(x, x, indexing="xy")  # (y, x) arrays


@pytest.mark.parametrize("order", [-1.0, -0.5, 0.0, 1.0, 2.0])
def test_norm_of_a_sine_is_its_analytic_value(order):
    x, y = _grid()
    m, n, amplitude, alpha = 3, 2, 1.7, 0.1
    field = amplitude * torch.sin(2 * math.pi * (m * x + n * y) / L)
    loss = SobolevLoss(order=order, alpha=alpha, diameter=L, relative=False)
    symbol = alpha + 4 * math.pi**2 * (m**2 + n**2) / L**2
    # Unnormalised FFT: N² / sqrt(|domain|) times the continuous norm sqrt(symbol^s · A² L²/2).
    expected = N**2 / L * math.sqrt(symbol**order * amplitude**2 * L**2 / 2)
    assert float(loss.norm(field[None, None])[0]) == pytest.approx(expected, rel=1e-10)


def test_a_rectangular_domain_scales_each_wavenumber_by_its_own_side():
    height, width, alpha = 0.5, 3.0, 0.1
    ys = torch.arange(N, dtype=torch.float64) * height / N
    xs = torch.arange(N, dtype=torch.float64) * width / N
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    field = torch.sin(2 * math.pi * (2 * x / width + 3 * y / height))
    symbol = alpha + 4 * math.pi**2 * ((2 / width) ** 2 + (3 / height) ** 2)
    norm = SobolevLoss(order=-1, alpha=alpha, diameter=(height, width), relative=False).norm(field[None, None])
    assert float(norm[0]) == pytest.approx(N**2 * math.sqrt(symbol**-1 / 2), rel=1e-10)  # Σ|ê|² = N⁴ / 2 for a unit sine


def test_h1_and_h_minus_1_match_direct_computations():
    torch.manual_seed(0)
    spectrum = torch.fft.fft2(torch.randn(2, 3, N, N, dtype=torch.float64))
    spectrum[..., N // 2, :] = 0  # no Nyquist modes: their derivative is not a real field
    spectrum[..., :, N // 2] = 0
    field = torch.fft.ifft2(spectrum).real
    alpha = 0.5
    k = torch.fft.fftfreq(N, 1.0 / N, dtype=torch.float64) * 2 * math.pi / L
    spectrum = torch.fft.fft2(field)
    grad_x = torch.fft.ifft2(1j * k[None, :] * spectrum).real
    grad_y = torch.fft.ifft2(1j * k[:, None] * spectrum).real
    points = N * N
    h1_direct = points * (alpha * field**2 + grad_x**2 + grad_y**2).flatten(1).sum(dim=1)
    h1 = SobolevLoss(order=1, alpha=alpha, diameter=L, relative=False).norm(field)
    torch.testing.assert_close(h1**2, h1_direct)
    # H^-1: <e, (alpha - Δ)^-1 e>, the inverse applied by solving in Fourier space.
    solved = torch.fft.ifft2(spectrum / (alpha + k[None, :] ** 2 + k[:, None] ** 2)).real
    h_minus_1_direct = points * (field * solved).flatten(1).sum(dim=1)
    h_minus_1 = SobolevLoss(order=-1, alpha=alpha, diameter=L, relative=False).norm(field)
    torch.testing.assert_close(h_minus_1**2, h_minus_1_direct)


def test_relative_time_average_cutoff_mask_and_gradients():
    x, y = _grid()
    low, high = torch.sin(x), torch.sin(10 * x)
    target = (low + high)[None, None, None].repeat(1, 1, 4, 1, 1)  # (B, C, T, ny, nx)
    prediction = (1.1 * low + high)[None, None, None].repeat(1, 1, 4, 1, 1).requires_grad_()
    plain = SobolevLoss(order=0.0, diameter=L)(prediction, target)
    assert float(plain.detach()) == pytest.approx(0.1 / math.sqrt(2), rel=1e-10)  # ‖0.1 low‖ / ‖low + high‖
    averaged = SobolevLoss(order=0.0, diameter=L, time_average=True, time_dim=2)(prediction, target)
    assert float(averaged.detach()) == pytest.approx(float(plain.detach()) / 2)
    # A cut-off below wavenumber 10 drops the high mode from a negative norm.
    cut = SobolevLoss(order=-1.0, diameter=L, relative=False, freq_cutoff=5)
    assert float(cut.norm(high[None, None])[0]) < 1e-9 * float(cut.norm(low[None, None])[0])
    plain.backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all()
    mask = torch.zeros(N, N, dtype=torch.float64)
    assert float(SobolevLoss(order=0.0, relative=False)(prediction, target, mask).detach()) == 0.0
    with pytest.raises(CfdbenchError, match="differ in shape"):
        SobolevLoss()(prediction, target[..., :-1])
    with pytest.raises(CfdbenchError, match="is not a time axis"):
        SobolevLoss(time_average=True, time_dim=-1)(prediction, target)
    with pytest.raises(CfdbenchError, match="needs alpha > 0"):
        SobolevLoss(order=-1, alpha=0.0)


# --------------------------------------------------------------------------- the registry


def _old_per_sample_loss(pred, target, mask, kind):
    """The trainer's loss before the registry (commit b493e53), kept here to prove the new one equal."""
    dims = tuple(range(1, pred.dim()))
    squared = ((pred - target) ** 2 * mask).sum(dim=dims)
    if kind == "mse":
        return squared / (mask.expand(pred.shape[0], 1, *pred.shape[2:]).sum(dim=dims) * pred.shape[1])
    return squared / ((target**2 * mask).sum(dim=dims) + 1e-8)


def _normalised_batch(shape, seed=0):
    """float32 (pred, target, mask) like the trainer's batches: z-scored fields, zero in solids."""
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(shape[0], 1, *shape[2:], generator=generator) > 0.1).float()
    target = torch.randn(shape, generator=generator) * mask
    pred = target + 0.1 * torch.randn(shape, generator=generator)
    return pred, target, mask


@pytest.mark.parametrize("shape", [(8, 2, 64, 64), (4, 20, 16, 16), (4, 3, 8, 9, 8), (16, 2, 8, 8)])
@pytest.mark.parametrize("kind", ["nmse", "mse"])
def test_nmse_and_mse_are_bit_identical_to_the_former_trainer_loss(shape, kind):
    """The metric's 1e-12 guard in place of the trainer's 1e-8: added to a float32 sum of at least
    ~100 squares of z-scored values, both vanish in rounding (half an ulp of 100 is 4e-6)."""
    for seed in range(5):
        pred, target, mask = _normalised_batch(shape, seed)
        new, old = build_loss(kind)(pred, target, mask), _old_per_sample_loss(pred, target, mask, kind)
        assert new.dtype == old.dtype == torch.float32
        assert torch.equal(new.view(torch.int32), old.view(torch.int32))
        assert masked_loss(pred, target, mask, kind) == old.mean()


def test_relative_l2_squared_or_not_in_normalised_and_physical_units():
    pred, target, mask = _normalised_batch((3, 4, 8, 8))
    pred, target = pred.double(), target.double()
    error, truth = ((pred - target) ** 2 * mask).sum((1, 2, 3)), (target**2 * mask).sum((1, 2, 3))
    torch.testing.assert_close(build_loss("relative_l2")(pred, target, mask), (error / truth).sqrt())
    torch.testing.assert_close(build_loss("relative_l2", {"squared": True})(pred, target, mask), error / truth)
    mean, std = torch.tensor([1.0, -2.0, 0.5, 3.0]), torch.tensor([2.0, 0.5, 1.0, 4.0])
    physical = lambda x: x * std[:, None, None].double() + mean[:, None, None].double()  # noqa: E731
    p, t = physical(pred), physical(target)
    expected = (((p - t) ** 2 * mask).sum((1, 2, 3)) / (t**2 * mask).sum((1, 2, 3))).sqrt()
    got = build_loss("relative_l2", {"units": "physical"}, to_physical=physical)(pred, target, mask)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, (error / truth).sqrt())  # the units change the value
    with pytest.raises(CfdbenchError, match="physical units needs the dataset's normalisation"):
        build_loss("mse", {"units": "physical"})


def test_sobolev_conventions_and_time_average_over_the_window():
    assert [reference_order(r) for r in (0, -1, 1, 2)] == [1.0, -0.5, 0.5, 1.0]
    frames, fields = 3, 2
    pred, target, mask = (x.double() for x in _normalised_batch((2, frames * fields, 16, 16)))
    window = lambda x: x.unflatten(1, (frames, fields))  # noqa: E731
    h1 = SobolevLoss(order=1.0, relative=True).norm
    e, y = window((pred - target) * mask), window(target * mask)
    expected = h1(e) / h1(y) / math.sqrt(frames)
    reference = build_loss("sobolev", {"convention": "reference", "order": 0, "time_average": True}, frames=frames)
    torch.testing.assert_close(reference(pred, target, mask), expected)
    same = build_loss("sobolev", {"order": 1, "time_average": True}, frames=frames)
    torch.testing.assert_close(same(pred, target, mask), expected)
    # Not relative, the reference divides by the grid's side (its mesh weighting).
    absolute = build_loss("sobolev", {"convention": "reference", "order": -2, "relative": False, "alpha": 0.5}, frames=frames)
    norm = SobolevLoss(order=-1.0, alpha=0.5, relative=False).norm
    torch.testing.assert_close(absolute(pred, target, mask), norm(e) / 16)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"loss": "l1"}, "unknown loss 'l1'; valid choices: mse, nmse, relative_l2, sobolev"),
        ({"loss": "relative_l2", "loss_options": {"squared": "no"}}, "loss 'relative_l2' option squared must be true or false"),
        ({"loss": "nmse", "loss_options": {"squared": True}}, "loss 'nmse' has no options ['squared']; valid: ['units']"),
        ({"loss": "mse", "loss_options": {"units": "SI"}}, "option units must be one of normalised, physical, got 'SI'"),
        ({"loss": "sobolev", "loss_options": {"order": "high"}}, "loss 'sobolev' option order must be a finite number"),
        ({"loss": "sobolev", "loss_options": {"convention": "torch-cfd"}}, "convention must be one of cfdbench, reference"),
        ({"loss": "sobolev", "loss_options": {"order": -1, "alpha": 0}}, "a negative Sobolev order needs alpha > 0"),
        ({"loss_options": [1]}, "training setting loss_options must be a mapping"),
        ({"scheduler": "onecycle", "div_factor": 0}, "training setting div_factor must be positive"),
        ({"scheduler": "plateau"}, "unknown scheduler 'plateau'; valid choices: step, cosine, onecycle, none"),
    ],
)
def test_bad_loss_names_and_options_are_one_readable_line(settings, message):
    with pytest.raises(CfdbenchError) as raised:
        TrainConfig.from_dict(settings)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_numbers_from_yaml_strings_are_read_as_numbers():
    config = TrainConfig.from_dict({"loss": "sobolev", "loss_options": {"alpha": "1e-3", "freq_cutoff": None}})
    assert config.loss_options == {"alpha": "1e-3", "freq_cutoff": None}  # recorded as given
    build_loss(config.loss, config.loss_options)  # and read as 1e-3


# --------------------------------------------------------------------------- training with each loss


def _run(tiny_dataset, tmp_path, resume=False, **settings):
    from cfdbench.pipeline import require_dataset, resolve_run_config, resume_config, train_stage

    if resume:
        config = resume_config(tmp_path, "cpu")
    else:
        overrides = {"epochs": 1, "batch_size": 8, **settings}
        config = resolve_run_config("fno", str(tiny_dataset.path), torch.device("cpu"), overrides, settings=["model.modes=[4,4]"])
    return train_stage(config, require_dataset(str(tiny_dataset.path)), tmp_path, show_progress=False, resume=resume)


@pytest.mark.parametrize(
    ("loss", "options"),
    [
        ("nmse", {}),
        ("mse", {"units": "physical"}),
        ("relative_l2", {"squared": True}),
        ("sobolev", {"convention": "reference", "order": 0, "time_average": True}),
    ],
)
def test_a_model_trains_a_few_steps_with_each_loss(tiny_dataset, tmp_path, loss, options):
    _, result, _ = _run(tiny_dataset, tmp_path, loss=loss, loss_options=options)
    assert result.steps > 0 and math.isfinite(result.history[-1]["train_loss"])
    assert json.loads((tmp_path / "config.json").read_text())["training"]["loss_options"] == options


def test_physical_relative_l2_in_the_trainer_is_the_hand_formula(tiny_dataset):
    """The trainer's loss de-normalises with the dataset's own statistics before the loss."""
    from cfdbench.data.loader import AutoregressiveDataset
    from cfdbench.training.trainer import training_loss

    config = TrainConfig.from_dict({"loss": "relative_l2", "loss_options": {"units": "physical"}})
    data = AutoregressiveDataset(tiny_dataset, "train", fields=("u", "v"))
    batch = data[list(range(4))]
    pred = batch["target"] + 0.1 * torch.randn_like(batch["target"])
    std, mean = data.scaler.std.float()[:, None, None], data.scaler.mean.float()[:, None, None]
    p, t, m = pred * std + mean, batch["target"] * std + mean, batch["mask"]
    expected = (((p - t) ** 2 * m).sum((1, 2, 3)) / (t**2 * m).sum((1, 2, 3))).sqrt()
    torch.testing.assert_close(training_loss(config, data)(pred, batch["target"], batch["mask"]), expected)
    nmse = training_loss(TrainConfig(), data)(pred, batch["target"], batch["mask"])  # and on real frames, the same bits
    assert torch.equal(nmse, _old_per_sample_loss(pred, batch["target"], batch["mask"], "nmse"))


def test_onecycle_rises_from_lr_over_div_factor_to_lr_and_ends_at_its_final_division():
    from cfdbench.training.trainer import _scheduler

    config = TrainConfig.from_dict({"scheduler": "onecycle", "lr": 1e-2, "div_factor": 1e3, "final_div_factor": 1e4, "epochs": 4})
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=config.lr)
    scheduler = _scheduler(optimizer, config, steps_per_epoch=5)
    used = []
    for _ in range(20):  # the trainer steps it after every batch
        used.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert used[0] == pytest.approx(1e-5) and max(used) == pytest.approx(1e-2) and used[-1] == pytest.approx(1e-9)


def test_loss_options_and_onecycle_round_trip_through_config_json_into_an_exact_resume(tiny_dataset, tmp_path):
    settings = {"epochs": 2, "loss": "relative_l2", "loss_options": {"units": "physical"}, "scheduler": "onecycle", "lr": 1e-2}
    _, whole, _ = _run(tiny_dataset, tmp_path / "whole", **settings)
    _, cut, _ = _run(tiny_dataset, tmp_path / "cut", max_minutes=1e-9, **settings)
    assert len(cut.history) == 1  # out of time after its first epoch
    _, resumed, _ = _run(tiny_dataset, tmp_path / "cut", resume=True)
    assert len(resumed.history) == 2
    for key in ("train_loss", "lr", "valid_nmse"):
        assert [r[key] for r in resumed.history] == [r[key] for r in whole.history]
    saved = json.loads((tmp_path / "cut" / "config.json").read_text())["training"]
    assert saved["loss_options"] == {"units": "physical"} and saved["scheduler"] == "onecycle"
