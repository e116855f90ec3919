"""Sobolev losses against their analytic values on sine fields and direct computations."""

from __future__ import annotations

import math

import pytest
import torch

from cfdbench.errors import CfdbenchError
from cfdbench.losses.sobolev import SobolevLoss

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
