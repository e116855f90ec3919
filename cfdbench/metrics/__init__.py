"""Every score of cfdbench, one module per kind, at the bottom of the package so that training
(its losses and validation), data generation (the channel's spin-up gates), the evaluator and the
leaderboard all use the same code: ``pointwise`` (masked errors), ``spectral`` (error per
wavenumber band, energy spectra), ``physics`` (divergence, energy, shedding frequency),
``channel`` (turbulent-channel statistics, also accumulated while a DNS runs) and ``aggregate``
(windows, valid time, bootstrap intervals). Formulas: ``docs/metrics.md``.

:data:`METRICS` are the per-frame metrics of any field set: ``fn(pred, target, mask) -> (B,)``.
:data:`VELOCITY_METRICS` need the velocity (u, v) and, for the divergence, the grid spacing.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from cfdbench.metrics.physics import divergence, ke_drift
from cfdbench.metrics.pointwise import (
    boundary_rmse_ring,
    brmse,
    crmse,
    l2re,
    mae,
    max_abs_error,
    mse,
    nmse,
    nrmse,
    relative_l2,
    vrmse,
)
from cfdbench.metrics.spectral import BANDS, band_rmse, frmse, spectrum_error

METRICS = {
    "mse": mse,
    "nmse": nmse,
    "mae": mae,
    "max_abs": max_abs_error,
    "rel_l2": relative_l2,
    "l2re": l2re,  # DPOT's: relative L2 per field
    "vrmse": vrmse,
    "nrmse": nrmse,
    "crmse": crmse,  # PDEBench's cRMSE, bRMSE and fRMSE, exactly
    "brmse": brmse,
    **{f"frmse_{band}": partial(frmse, band=band) for band in BANDS},
    "boundary_rmse_ring": boundary_rmse_ring,  # cfdbench's: walls and obstacles
    **{f"band_rmse_{band}": partial(band_rmse, band=band) for band in BANDS},  # cfdbench's: every mode
}
VELOCITY_METRICS = ("divergence", "ke_drift", "spectrum_error")
PLANAR_ONLY = (
    "brmse",
    "boundary_rmse_ring",
    *(f"{kind}_{band}" for kind in ("frmse", "band_rmse") for band in BANDS),
)  # 2D boundaries, 2D spectra


def metric_names(n_spatial_dims: int = 2) -> tuple[str, ...]:
    """The metrics defined for frames of this dimension: all of :data:`METRICS` in 2D, the
    pointwise ones in 3D (the channel's 3D spectra and statistics are in ``metrics.channel``)."""
    return tuple(name for name in METRICS if n_spatial_dims == 2 or name not in PLANAR_ONLY)


def evaluate_all(pred: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Every metric defined for these frames (:func:`metric_names`), per sample, in float64."""
    pred, target, mask = pred.double(), target.double(), mask.double()
    return {name: METRICS[name](pred, target, mask) for name in metric_names(pred.dim() - 2)}


def evaluate_velocity(pred: Tensor, target: Tensor, mask: Tensor, dx: Tensor, dy: Tensor) -> dict[str, Tensor]:
    """The :data:`VELOCITY_METRICS` of velocity frames (B, 2, H, W), per sample, in float64."""
    pred, target, mask = pred.double(), target.double(), mask.double()
    return {
        "divergence": divergence(pred, mask, dx.double(), dy.double()),
        "ke_drift": ke_drift(pred, target, mask),
        "spectrum_error": spectrum_error(pred, target, mask),
    }


class MetricAccumulator:
    """Collects per-sample metric values across batches; reports their mean and spread.

    Dividing by the number of samples seen (not batches, not n - 1) avoids PDEBench's
    aggregation defect.
    """

    def __init__(self, n_spatial_dims: int = 2) -> None:
        self._values: dict[str, list[Tensor]] = {name: [] for name in metric_names(n_spatial_dims)}

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        for name, value in evaluate_all(pred, target, mask).items():
            self._values[name].append(value.detach().cpu())

    def values(self) -> dict[str, Tensor]:
        return {name: torch.cat(v) if v else torch.zeros(0, dtype=torch.float64) for name, v in self._values.items()}

    def mean(self) -> dict[str, float]:
        return {name: float(v.mean()) for name, v in self.values().items()}
