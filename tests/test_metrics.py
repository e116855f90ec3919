"""Masked pointwise metrics against direct computations on synthetic fields."""

import numpy as np
import pytest
import torch

from cfdbench.metrics import MetricAccumulator, evaluate_all


def synthetic(seed=0, batch=3):
    rng = np.random.default_rng(seed)
    pred = torch.tensor(rng.normal(size=(batch, 2, 8, 10)))
    target = torch.tensor(rng.normal(size=(batch, 2, 8, 10)))
    mask = torch.ones(batch, 1, 8, 10, dtype=torch.float64)
    mask[:, :, 2:5, 3:7] = 0  # an obstacle
    return pred, target, mask


def test_metrics_match_direct_formulas_inside_the_mask():
    pred, target, mask = synthetic()
    values = evaluate_all(pred, target, mask)
    for b in range(pred.shape[0]):
        fluid = mask[b, 0].bool()
        p, y = pred[b][:, fluid].numpy(), target[b][:, fluid].numpy()
        err = p - y
        assert values["mse"][b] == pytest.approx(np.mean(err**2))
        assert values["mae"][b] == pytest.approx(np.mean(np.abs(err)))
        assert values["nmse"][b] == pytest.approx(np.sum(err**2) / np.sum(y**2))
        assert values["max_abs"][b] == pytest.approx(np.abs(err).max())
        assert values["rel_l2"][b] == pytest.approx(np.linalg.norm(err) / np.linalg.norm(y))


def test_values_in_solids_never_count():
    pred, target, mask = synthetic()
    spoiled = pred.clone()
    spoiled[:, :, 2:5, 3:7] = 1e6  # garbage inside the obstacle
    clean, dirty = evaluate_all(pred, target, mask), evaluate_all(spoiled, target, mask)
    for name in clean:
        torch.testing.assert_close(clean[name], dirty[name])


def test_perfect_prediction_scores_zero_and_identity_scores_one_nmse_from_rest():
    _, target, mask = synthetic()
    assert all(float(v.max()) == 0 for v in evaluate_all(target, target, mask).values())
    # Predicting zeros (the state at rest) has NMSE exactly 1.
    assert evaluate_all(torch.zeros_like(target), target, mask)["nmse"] == pytest.approx(torch.ones(3, dtype=torch.float64))


def test_accumulator_averages_per_sample_not_per_batch():
    pred, target, mask = synthetic(batch=5)
    acc = MetricAccumulator()
    acc.update(pred[:4], target[:4], mask[:4])
    acc.update(pred[4:], target[4:], mask[4:])  # uneven batches
    direct = evaluate_all(pred, target, mask)
    for name, mean in acc.mean().items():
        assert mean == pytest.approx(float(direct[name].mean()))


# --------------------------------------------------------------------------- The Well's and PDEBench's metrics

from cfdbench.metrics import evaluate_velocity  # noqa: E402
from cfdbench.metrics.aggregate import (  # noqa: E402
    VALID_TIME_NMSE,
    bootstrap_interval,
    step_windows,
    valid_steps,
    valid_time,
    windowed_means,
)
from cfdbench.metrics.channel import (  # noqa: E402
    channel_statistics,
    channel_statistics_errors,
    energy_spectra,
    mkm_gates,
    rollout_scores,
    wall_units,
)
from cfdbench.metrics.physics import (  # noqa: E402
    divergence,
    dominant_frequency,
    strouhal,
)
from cfdbench.metrics.pointwise import boundary_band  # noqa: E402
from cfdbench.metrics.spectral import BANDS  # noqa: E402


def test_well_and_pdebench_metrics_match_direct_formulas():
    pred, target, mask = synthetic()
    values = evaluate_all(pred, target, mask)
    for b in range(pred.shape[0]):
        fluid = mask[b, 0].bool()
        p, y = pred[b][:, fluid].numpy(), target[b][:, fluid].numpy()
        vrmse = [np.sqrt(np.mean((p[c] - y[c]) ** 2) / (np.var(y[c], ddof=1) + 1e-7)) for c in range(2)]
        nrmse = [np.sqrt(np.mean((p[c] - y[c]) ** 2) / (np.mean(y[c] ** 2) + 1e-7)) for c in range(2)]
        crmse = np.mean(np.abs((p - y).sum(axis=1))) / fluid.numel()  # PDEBench's: mean over fields, all cells
        assert values["vrmse"][b] == pytest.approx(np.mean(vrmse))
        assert values["nrmse"][b] == pytest.approx(np.mean(nrmse))
        assert values["crmse"][b] == pytest.approx(crmse)


def test_predicting_the_mean_scores_vrmse_near_one():
    _, target, mask = synthetic()
    fluid_mean = (target * mask).sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True)
    n = float(mask[0].sum())
    expected = np.sqrt((n - 1) / n)  # population MSE over the Bessel-corrected variance
    assert evaluate_all(fluid_mean.expand_as(target), target, mask)["vrmse"] == pytest.approx(torch.full((3,), expected))


def test_boundary_band_rings_walls_and_obstacles():
    _, _, mask = synthetic(batch=1)
    band = boundary_band(mask)[0, 0]
    assert band[0].all() and band[:, 0].all() and band[-1].all()  # the domain edge is a wall
    assert band[1, 3] == 1 and band[5, 4] == 1 and band[3, 2] == 1  # cells touching the obstacle
    assert band[3, 4] == 0 and band[3, 8] == 0 or mask[0, 0, 3, 8] == 0
    pred, target, _ = synthetic(batch=1)
    err = ((pred - target) ** 2)[0].numpy()
    direct = np.sqrt(err[:, band.bool().numpy()].mean())
    assert evaluate_all(pred, target, mask)["boundary_rmse_ring"][0] == pytest.approx(direct)


def test_brmse_is_pdebench_s_edges_with_corners_counted_twice():
    """One error of 1 in a corner cell of field 0 and one on an edge of field 1: PDEBench sums each
    edge's squared errors (the corner lies on two) over 2 nx + 2 ny, roots per field, averages."""
    pred = torch.zeros(1, 2, 8, 10, dtype=torch.float64)
    pred[0, 0, 0, 0] = 1.0
    pred[0, 1, 4, -1] = 1.0
    values = evaluate_all(pred, torch.zeros_like(pred), torch.ones(1, 1, 8, 10, dtype=torch.float64))
    assert float(values["brmse"][0]) == pytest.approx((np.sqrt(2 / 36) + np.sqrt(1 / 36)) / 2)
    assert float(values["crmse"][0]) == pytest.approx((1 / 80 + 1 / 80) / 2)


def test_frmse_is_pdebench_s_quadrant_shells_averaged_per_band():
    """A cosine of amplitude a along y with ky = 1 (shell 1) or ky = 5 (shell 5): PDEBench keeps
    the ky >= 0 quadrant only, so its shell holds |F| = a nx ny / 2, the value a / 2; a band is the
    mean over its shells: 4 in low, 8 in mid. Below 26 cells a side the high band has no shell: 0."""
    y = np.arange(64)[:, None] / 64 * np.ones((1, 32))
    mask, a = torch.ones(1, 1, 64, 32, dtype=torch.float64), 3.0
    for ky, band, shells in ((1, "low", 4), (5, "mid", 8)):
        mode = torch.tensor(a * np.cos(2 * np.pi * ky * y))[None, None].expand(1, 2, 64, 32)
        values = evaluate_all(mode, torch.zeros_like(mode), mask)
        assert float(values[f"frmse_{band}"][0]) == pytest.approx(a / 2 / shells)
        assert all(float(values[f"frmse_{other}"][0]) == pytest.approx(0, abs=1e-12) for other in BANDS if other != band)
    small = torch.ones(1, 2, 16, 16, dtype=torch.float64)
    assert float(evaluate_all(small, 0 * small, torch.ones(1, 1, 16, 16, dtype=torch.float64))["frmse_high"][0]) == 0


@pytest.mark.parametrize("k, band", [((1, 2), "low"), ((-5, 3), "mid"), ((7, -20), "high")])
def test_band_rmse_puts_a_mode_in_its_band_with_negative_frequencies(k, band):
    """A single Fourier mode of error lands entirely in its |k| band, whatever the signs of its wave
    numbers (PDEBench's quadrant binning dropped the negative ones)."""
    y, x = np.meshgrid(np.arange(64) / 64, np.arange(64) / 64, indexing="ij")
    mode = torch.tensor(np.cos(2 * np.pi * (k[0] * x + k[1] * y)))[None, None].expand(1, 2, 64, 64)
    zero, mask = torch.zeros_like(mode), torch.ones(1, 1, 64, 64, dtype=torch.float64)
    values = evaluate_all(mode, zero, mask)
    for name in ("low", "mid", "high"):
        expected = np.sqrt(0.5) if name == band else 0.0  # rms of a cosine
        assert float(values[f"band_rmse_{name}"][0]) == pytest.approx(expected, abs=1e-9)


def test_band_rmse_bands_add_up_to_the_masked_mse_over_all_cells():
    pred, target, mask = synthetic()
    values = evaluate_all(pred, target, mask)
    bands = sum(values[f"band_rmse_{b}"] ** 2 for b in ("low", "mid", "high"))
    all_cells = (((pred - target) * mask) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(bands, all_cells)


def test_divergence_of_a_stream_function_field_is_zero_and_of_a_source_is_not():
    h = 1 / 32
    y, x = np.meshgrid((np.arange(32) + 0.5) * h, (np.arange(32) + 0.5) * h, indexing="ij")
    solenoidal = torch.tensor(np.stack([np.sin(np.pi * x) * np.cos(np.pi * y), -np.cos(np.pi * x) * np.sin(np.pi * y)]))[None]
    source = torch.tensor(np.stack([x, y]))[None]
    mask, spacing = torch.ones(1, 1, 32, 32, dtype=torch.float64), torch.tensor([h], dtype=torch.float64)
    assert float(divergence(solenoidal, mask, spacing, spacing)[0]) < 1e-12
    assert float(divergence(source, mask, spacing, spacing)[0]) == pytest.approx(np.sqrt(2))  # div 2, |grad| sqrt 2


def test_energy_metrics():
    _, target, mask = synthetic()
    spacing = torch.ones(3, dtype=torch.float64)
    same = evaluate_velocity(target, target, mask, spacing, spacing)
    assert float(same["ke_drift"].abs().max()) == 0 and float(same["spectrum_error"].max()) == 0
    louder = evaluate_velocity(1.1 * target, target, mask, spacing, spacing)
    assert louder["ke_drift"] == pytest.approx(torch.full((3,), 0.21, dtype=torch.float64))
    assert louder["spectrum_error"] == pytest.approx(torch.full((3,), 0.21, dtype=torch.float64))


def test_strouhal_of_a_sampled_sine():
    dt, f = 0.05, 0.2
    t = np.arange(400) * dt
    assert dominant_frequency(np.sin(2 * np.pi * f * t) + 0.3, dt) == pytest.approx(f, rel=0.01)
    assert strouhal(np.sin(2 * np.pi * f * t), dt, length=0.02, velocity=0.5) == pytest.approx(f * 0.02 / 0.5, rel=0.01)
    assert np.isnan(strouhal(np.sin(2 * np.pi * f * t[:30]), dt, 0.02, 0.5))  # 1.5 periods: too short
    assert np.isnan(dominant_frequency(np.ones(50), dt))


def test_channel_statistics_recover_profiles():
    rng = np.random.default_rng(0)
    ny = 9
    profile = np.linspace(0, 1, ny)
    noise = rng.normal(size=(200, 3, 8, ny, 6))
    velocity = noise.copy()
    velocity[:, 0] += profile[None, None, :, None]
    velocity[:, 1] -= 0.5 * noise[:, 0]  # correlated u'v' < 0: Reynolds stress -<u'v'> = 0.5
    stats = channel_statistics(velocity)
    np.testing.assert_allclose(stats["mean_u"], profile, atol=0.05)
    np.testing.assert_allclose(stats["reynolds_stress"], 0.5, atol=0.05)
    np.testing.assert_allclose(stats["rms_w"], 1.0, atol=0.05)
    errors = channel_statistics_errors(velocity, velocity)
    assert set(errors) == {"mean_u", "rms_u", "rms_v", "rms_w", "reynolds_stress"} and max(errors.values()) == 0


def _laminar_channel(y: np.ndarray, frames: int = 2) -> np.ndarray:
    """Poiseuille flow at u_τ = 1, ν = 1/180 as a (T, 3, nz, ny, nx) trajectory."""
    velocity = np.zeros((frames, 3, 4, len(y), 6))
    velocity[:, 0] = (90 * (1 - y**2))[None, None, :, None]
    return velocity


def test_wall_units_of_laminar_channel_flow_are_exact():
    y = np.tanh(2.0 * np.linspace(-1, 1, 65)) / np.tanh(2.0)  # stretched, walls included
    units = wall_units(_laminar_channel(y), y, nu=1 / 180)
    assert units["u_tau"] == pytest.approx(1.0, rel=1e-12)  # the quadratic wall slope is exact here
    assert units["re_tau"] == pytest.approx(180.0, rel=1e-12)
    assert units["centreline_u_plus"] == pytest.approx(90.0, rel=1e-12)
    assert units["bulk_u_plus"] == pytest.approx(60.0, rel=1e-3)
    assert units["bulk_reynolds"] == pytest.approx(2 * 60 * 180, rel=1e-3)
    assert units["y_plus"][0] == 0 and units["y_plus"][-1] == pytest.approx(180)
    gates = mkm_gates(units)
    # Laminar flow carries the exact total stress 1 - y/δ, but is far from turbulent MKM's centreline.
    assert gates["total_shear_stress"]["passed"] and gates["total_shear_stress"]["max_deviation"] < 0.02
    assert not gates["centreline_u_plus"]["passed"]


def test_rollout_scores_of_a_doubled_velocity_are_known():
    """Doubling every velocity doubles the mean and rms profiles and quadruples the stress and the
    spectra (errors 1, 1 and 3); the wall shear doubles, so Re_τ grows by √2."""
    rng = np.random.default_rng(3)
    y = np.linspace(-1, 1, 17)
    truth = _laminar_channel(y, frames=20) + rng.normal(size=(20, 3, 4, 17, 6)) * (1 - y**2)[None, None, None, :, None]
    scores = rollout_scores(truth, truth, y, nu=1 / 180, length_x=2.0, length_z=1.0)
    assert max(scores.values()) == 0
    scores = rollout_scores(2 * truth, truth, y, nu=1 / 180, length_x=2.0, length_z=1.0)
    for name in ("mean_u", "rms_u", "rms_v", "rms_w"):
        assert scores[name] == pytest.approx(1.0)
    for name in ("reynolds_stress", "spectrum_x_u", "spectrum_z_u"):
        assert scores[name] == pytest.approx(3.0)
    assert scores["re_tau"] == pytest.approx(np.sqrt(2) - 1)


def test_wall_units_fold_the_reynolds_stress_of_both_halves():
    rng = np.random.default_rng(1)
    y = np.linspace(-1, 1, 21)
    velocity = _laminar_channel(y, frames=400)
    xi = rng.normal(size=(400, 4, 21, 6))
    velocity[:, 0] += xi
    velocity[:, 1] += np.sign(y)[None, None, :, None] * 0.5 * xi  # -u'v' > 0 below, < 0 above, as in a channel
    units = wall_units(velocity, y, nu=1 / 180)
    inside = (units["y_over_delta"] > 0) & (units["y_over_delta"] < 1)  # walls and centre carry none
    np.testing.assert_allclose(units["reynolds_stress_plus"][inside], 0.5, atol=0.05)
    assert units["y_over_delta"][-1] == 1 and abs(units["reynolds_stress_plus"][-1]) < 1e-12  # odd count: the centre node


def test_energy_spectra_peak_at_the_wave_and_sum_to_the_variance():
    length, n = 2 * np.pi, 32
    x = np.arange(n) * length / n
    rng = np.random.default_rng(2)
    field = np.repeat(1.5 * np.sin(3 * x)[None, :], 5, axis=0)
    k, spectrum = energy_spectra(field, axis=-1, length=length)
    assert k[3] == pytest.approx(3.0) and int(np.argmax(spectrum)) == 3
    assert spectrum[3] == pytest.approx(1.5**2 / 2)
    noisy = rng.normal(size=(7, 5, n))
    _, spectrum = energy_spectra(noisy, axis=-1, length=length)
    assert spectrum.sum() == pytest.approx(noisy.var(axis=-1).mean())
    _, odd = energy_spectra(rng.normal(size=(7, 5, 15)), axis=-1, length=1.0)  # no Nyquist mode
    assert odd.shape == (8,)


def test_windows_valid_time_and_bootstrap():
    assert step_windows(20) == {"1": (1, 1), "1-5": (1, 5), "6-12": (6, 12), "13-20": (13, 20)}
    assert step_windows(3) == {"1": (1, 1), "1-5": (1, 3)}
    values = np.arange(1, 21, dtype=float)[None].repeat(2, axis=0)
    assert windowed_means(values)["6-12"] == pytest.approx(9.0)
    nmse = np.array([[0.1, 0.5, 1.5, 0.2], [0.1, 0.2, 0.3, 0.4], [0.1, np.inf, np.inf, np.inf]])
    assert valid_steps(nmse, threshold=1.0).tolist() == [2, 4, 1]
    assert valid_steps(nmse).tolist() == [1, 1, 1]  # VALID_TIME_NMSE = 0.1: "exceeds" is strictly above
    assert valid_time(nmse, 0.5)["threshold_nmse"] == VALID_TIME_NMSE == 0.1
    per_case = np.random.default_rng(1).normal(size=50)
    low, high = bootstrap_interval(per_case)
    assert low < per_case.mean() < high and bootstrap_interval(per_case) == [low, high]  # seeded
    assert bootstrap_interval(np.array([1.0, np.inf])) is None


def test_valid_time_threshold_is_one_the_identity_can_fail():
    """A flow at rest at frame 0, half-way to its steady state at frame 1, then relaxing towards it
    (u(t) = a(t) u_steady): from rest the identity's NMSE is exactly 1, and from frame 1 it levels off
    at 0.25, so at a threshold of 1 the identity is never invalid; at VALID_TIME_NMSE it is."""
    amplitude = np.concatenate([[0.0], 1 - 0.5 * np.exp(-np.arange(21) / 4.0)])

    def identity_nmse(start: int) -> np.ndarray:  # the start frame against the 20 frames after it
        later = amplitude[start + 1 : start + 21]
        return (((amplitude[start] - later) / later) ** 2)[None]

    assert identity_nmse(0) == pytest.approx(1.0) and identity_nmse(1).max() < 0.25
    for start in (0, 1):
        assert valid_steps(identity_nmse(start), threshold=1.0).tolist() == [20]  # censored: never invalid
    assert valid_steps(identity_nmse(0)).tolist() == [0]
    assert valid_steps(identity_nmse(1)).tolist() == [2]  # NMSE 0.033, 0.080, then 0.119


# --------------------------------------------------------------------------- against PDEBench's own function

PDEBENCH = "pdebench==0.1.0"  # PyPI's wheel is pure Python; it installs only on Python < 3.11, but its metrics module imports


def pdebench_metric_func():
    """``metric_func`` from PDEBench's published wheel, imported from its unpacked files."""
    import importlib.util

    from peer_envs import unpacked_wheel

    path = unpacked_wheel(PDEBENCH, python_version="3.10") / "pdebench" / "models" / "metrics.py"
    spec = importlib.util.spec_from_file_location("pdebench_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.metric_func


def to_pdebench(fields: torch.Tensor) -> torch.Tensor:
    """cfdbench's (B, C, H = y, W = x) frames as PDEBench's (B, x, y, t = 1, C)."""
    return fields.permute(0, 3, 2, 1)[:, :, :, None, :].contiguous()


@pytest.mark.slow
def test_pdebench_named_metrics_are_pdebench_s_metric_func():
    """PDEBench's own metric_func on the same arrays (masked fields, one sample per call: cfdbench
    scores samples alone and averages them) gives cfdbench's nRMSE, cRMSE, bRMSE and fRMSE bands.
    Tolerances: 1e-7 relative for nRMSE (cfdbench's guard), 1e-6 for fRMSE (PDEBench sums its shells
    in float32). Over a batch, nRMSE and bRMSE are PDEBench's batch means as well."""
    metric_func = pdebench_metric_func()
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(4, 2, 64, 48, generator=generator, dtype=torch.float64).cumsum(-1)
    pred = target + 0.1 * torch.randn(target.shape, generator=generator, dtype=torch.float64) + 0.05
    mask = torch.ones(1, 1, 64, 48, dtype=torch.float64)
    mask[..., 20:30, 10:20] = 0  # an obstacle
    ours = evaluate_all(pred, target, mask)
    for b in range(len(pred)):
        _, nrmse, crmse, _, brmse, bands = metric_func(to_pdebench(pred[b : b + 1] * mask), to_pdebench(target[b : b + 1] * mask))
        assert float(ours["nrmse"][b]) == pytest.approx(float(nrmse), rel=1e-7)
        assert float(ours["crmse"][b]) == pytest.approx(float(crmse), rel=1e-12)
        assert float(ours["brmse"][b]) == pytest.approx(float(brmse), rel=1e-12)
        for band, value in zip(BANDS, bands):
            assert float(ours[f"frmse_{band}"][b]) == pytest.approx(float(value), rel=1e-6)
    _, nrmse, _, _, brmse, _ = metric_func(to_pdebench(pred * mask), to_pdebench(target * mask))
    assert float(ours["nrmse"].mean()) == pytest.approx(float(nrmse), rel=1e-7)
    assert float(ours["brmse"].mean()) == pytest.approx(float(brmse), rel=1e-12)
