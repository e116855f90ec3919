"""Spectral refinement: Spectral-Refiner's test-time fine-tuning of a trained SFNO (models.md B.3).

The trained network is frozen; its output operator, a spectral convolution that kept only the
lowest modes, is replaced by one that keeps every mode the grid holds (the trained modes and
bias copied in, the new weights near zero), and that layer alone is optimised per trajectory on
the H^-1 norm of the Navier–Stokes residual of the predicted window
(:mod:`cfdbench.losses.navier_stokes_residual`). No truth is used, so the refinement is an
a-posteriori correction a user can run on new data; its error against the truth is measured
before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError
from cfdbench.layers.spectral_conv_t import SpectralConvT
from cfdbench.losses.navier_stokes_residual import residual_norm, vorticity_residual
from cfdbench.models.base import fluid_cells


@dataclass(frozen=True)
class RefineSettings:
    """The reference's fine-tuning of its FNO-data model: Adam, two learning rates, 50 iterations, δ = 1."""

    iterations: int = 50
    bias_lr: float = 0.2
    weight_lr: float = 1e-4
    delta: float = 1.0

    def __post_init__(self) -> None:
        if self.iterations < 1 or min(self.bias_lr, self.weight_lr, self.delta) <= 0:
            raise CfdbenchError(f"refinement settings {self} must be positive")


@dataclass(frozen=True)
class Geometry:
    """What the residual needs of one case, physical units, each a (1,) tensor: the time between two
    predicted frames, the cell sizes, the kinematic viscosity and the frame's height and width (the
    periods of the H^-1 norm's wavenumbers)."""

    dt: Tensor
    dx: Tensor
    dy: Tensor
    nu: Tensor
    height: Tensor
    width: Tensor

    def residual(self, velocity: Tensor, mask: Tensor) -> Tensor:
        """The fine-tuning norm of the residual of this case's trajectory ``velocity`` (1, T, 2, H, W): (1,)."""
        residual = vorticity_residual(velocity, mask, self.dt, self.dx, self.dy, self.nu)
        return residual_norm(residual, self.height, self.width)


def widened_output(trained: SpectralConvT, modes: tuple[int, int, int], delta: float) -> SpectralConvT:
    """A float64 output layer keeping ``modes``, starting from the trained one's prediction exactly:
    its modes and bias copied into the matching corners (the bias rescaled for the new δ), the new
    weights xavier-uniform with gain 1e-6 and the new bias zero."""
    channels = trained.weights[0].shape[0]
    wide = SpectralConvT(channels, channels, modes, bias=True, delta=delta).double()
    mh, mw, mt = trained.modes
    big_h, big_w, _ = modes
    rows = (slice(0, mh), slice(big_h - mh, big_h), slice(0, mh), slice(big_h - mh, big_h))
    cols = (slice(0, mw), slice(0, mw), slice(big_w - mw, big_w), slice(big_w - mw, big_w))
    with torch.no_grad():
        for index in range(4):
            weight = wide.weights[index]
            torch.nn.init.xavier_uniform_(weight.view(weight.shape[0], -1), gain=1e-6)
            weight[:, :, rows[index], cols[index], :mt] = trained.weights[index].double()
            wide.biases[index].zero_()
            wide.biases[index][:, rows[index], cols[index], :mt] = trained.biases[index].double() * trained.delta / delta
    return wide


def full_modes(height: int, width: int, model) -> tuple[int, int, int]:
    """Every mode of the output operator's grid: H//2 and W//2 corners (on an odd grid the unpaired
    highest positive frequency stays out, as in every corner-based spectral layer), and the padded
    series' time modes."""
    series = 2 * (model.latent_steps + 1)
    steps = model.meta.output_frames + 1 + model.latent_steps + 1
    return height // 2, width // 2, min(series, steps) // 2 + 1


def refine_window(
    model,
    inputs: Tensor,
    fluid_fraction: Tensor,
    params: Tensor,
    to_physical: Callable[[Tensor], Tensor],
    velocity: list[int],
    geometry: Geometry,
    settings: RefineSettings,
) -> tuple[Tensor, Tensor, list[float]]:
    """Refine one trajectory's window: (trained window, refined window, residual norm per iteration,
    the first before any step). Windows are physical, (1, m, C, H, W); ``to_physical`` maps
    normalised frames (1, n, C, H, W) to physical ones; ``velocity`` indexes u and v; the model sees
    ``fluid_fraction`` (1, 1, H, W) as its mask, the window and the residual are taken on the fluid cells."""
    with torch.no_grad():  # the network stays as trained: only the new layer is optimised
        latent = model.latent(inputs, fluid_fraction, params).double()
        fields = model.input_fields(inputs).double()
    h, w = fluid_fraction.shape[-2:]
    layer = widened_output(model.output, full_modes(h, w, model), settings.delta).to(inputs.device)
    groups = [(layer.biases, settings.bias_lr), (layer.weights, settings.weight_lr)]
    optimizer = torch.optim.Adam([{"params": list(group.parameters()), "lr": lr} for group, lr in groups])
    mask64 = fluid_cells(fluid_fraction).double()

    def physical_window(output: SpectralConvT | None) -> Tensor:
        window = model.window_from_latent(fields, latent, output).permute(0, 4, 1, 2, 3) * mask64[:, None]
        return to_physical(window)

    def residual(window: Tensor) -> Tensor:
        last = to_physical(fields[..., -1:].permute(0, 4, 1, 2, 3))
        return geometry.residual(torch.cat([last, window], dim=1)[:, :, velocity], mask64).sum()

    with torch.no_grad():
        trained = physical_window(None)
    history = []
    for _ in range(settings.iterations):
        loss = residual(physical_window(layer))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    with torch.no_grad():
        refined = physical_window(layer)
        history.append(float(residual(refined)))
    return trained, refined, history
