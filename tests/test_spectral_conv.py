"""Spectral layers on odd-length axes: an identity spectral convolution returns a band-limited field
unchanged wherever the odd axis sits (2D and 3D, the channel's 33 wall-normal points), and the
corrected layer changes nothing on the even grids of the committed 2D entries."""

from __future__ import annotations

import itertools

import pytest
import torch
from neuralop.layers.spectral_convolution import SpectralConv as NeuralopSpectralConv

from cfdbench.layers.spectral_conv import SpectralConv
from cfdbench.layers.spectral_conv_t import SpectralConvT
from cfdbench.models.base import OperatorMeta
from cfdbench.models.registry import build_model

SHAPES = [(33, 32), (32, 33), (33, 33), (33, 16, 16), (16, 33, 16), (16, 16, 33), (17, 21, 9)]
CHANNELS = 2


def band_limited(shape: tuple[int, ...], k_max: int, seed: int) -> torch.Tensor:
    """A real field made of every Fourier mode with |k| <= k_max along each axis, random amplitudes."""
    generator = torch.Generator().manual_seed(seed)
    coords = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) / n for n in shape), indexing="ij")
    field = torch.zeros(shape, dtype=torch.float64)
    for k in itertools.product(range(-k_max, k_max + 1), repeat=len(shape)):
        phase = 2 * torch.pi * sum(ki * x for ki, x in zip(k, coords))
        a, b = torch.randn(2, generator=generator, dtype=torch.float64)
        field += a * torch.cos(phase) + b * torch.sin(phase)
    return field.float()


def identity_conv(cls: type[NeuralopSpectralConv], n_dims: int) -> NeuralopSpectralConv:
    """A spectral convolution that multiplies each of its kept modes (8 per axis) by one, per channel."""
    conv = cls(CHANNELS, CHANNELS, (8,) * n_dims, bias=False)
    with torch.no_grad():
        weight = torch.zeros(conv.weight.shape, dtype=torch.cfloat)
        for channel in range(CHANNELS):
            weight[channel, channel] = 1
        conv.weight.tensor.copy_(weight)
    return conv


def fields(shape: tuple[int, ...]) -> torch.Tensor:
    """Two channels with modes |k| <= 3: inside 8 kept modes per axis (4 along the real-FFT axis)."""
    return torch.stack([band_limited(shape, 3, seed=0), band_limited(shape, 2, seed=1)])[None]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_identity_spectral_conv_round_trips_odd_axes_in_every_position(shape):
    x = fields(shape)
    with torch.no_grad():
        torch.testing.assert_close(identity_conv(SpectralConv, len(shape))(x), x, rtol=0, atol=1e-4)


@pytest.mark.parametrize("shape", [s for s in SHAPES if any(n % 2 for n in s[:-1])], ids=lambda s: "x".join(map(str, s)))
def test_neuraloperator_2_0_0_spectral_conv_fails_it(shape):
    """Why cfdbench subclasses it: neuraloperator 2.0.0 un-centres with fftshift, rolling the modes
    of an odd axis that is not last (upstream PR #688). If this starts passing, a fixed release is
    installed and the subclass can go."""
    x = fields(shape)
    with torch.no_grad():
        error = (identity_conv(NeuralopSpectralConv, len(shape))(x) - x).abs().max()
    assert error > 1.0


@pytest.mark.parametrize("shape", [(33, 17, 9), (32, 33, 8)], ids=lambda s: "x".join(map(str, s)))
def test_sfno_spectral_layer_round_trips_odd_axes(shape):
    """SFNO's own (H, W, T) layer keeps the low modes by corner slices, right for any length."""
    conv = SpectralConvT(CHANNELS, CHANNELS, (4, 4, 4))
    with torch.no_grad():
        for weight in conv.weights:
            weight.zero_()
            for channel in range(CHANNELS):
                weight[channel, channel, ..., 0] = 1
        x = torch.stack([band_limited(shape, 3, seed=0), band_limited(shape, 2, seed=1)])[None]
        torch.testing.assert_close(conv(x), x, rtol=0, atol=1e-4)


def swap_spectral_class(model: torch.nn.Module, cls: type) -> None:
    for module in model.modules():
        if isinstance(module, NeuralopSpectralConv):
            module.__class__ = cls


@pytest.mark.parametrize("name, grid", [("fno", (64, 64)), ("fno-cfdbench", (64, 64)), ("fno", (66, 65))])
def test_correction_changes_nothing_on_the_committed_2d_grids(name, grid):
    """The 2D entries (64 x 64 frames, padded to 80 x 80; CFDBench's legacy 66 x 65) have no odd
    shifted axis: the corrected layer gives neuraloperator's outputs bit for bit."""
    torch.manual_seed(0)
    model = build_model(name, OperatorMeta(("u", "v"), 1, 5, grid), modes=(6, 6), hidden_channels=8).eval()
    inputs, mask, params = torch.randn(2, 2, *grid), torch.ones(2, 1, *grid), torch.randn(2, 5)
    with torch.no_grad():
        corrected = model(inputs, mask, params)
        swap_spectral_class(model, NeuralopSpectralConv)
        original = model(inputs, mask, params)
    assert torch.equal(corrected, original)


@pytest.mark.parametrize(
    "name, meta, modes",
    [
        ("fno", OperatorMeta(("u", "v"), 1, 5, (16, 16)), (4, 4)),
        ("fno-cfdbench", OperatorMeta(("u", "v"), 1, 5, (16, 16)), (4, 4)),
        ("fno3d", OperatorMeta(("u", "v", "w"), 1, 5, (8, 9, 8), n_spatial_dims=3), (4, 4, 4)),
    ],
)
def test_every_fno_uses_the_corrected_layer(name, meta, modes):
    model = build_model(name, meta, modes=modes, hidden_channels=4)
    layers = [m for m in model.modules() if isinstance(m, NeuralopSpectralConv)]
    assert layers and all(type(m) is SpectralConv for m in layers)
