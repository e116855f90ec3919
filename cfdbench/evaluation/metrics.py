"""Pointwise error metrics inside the fluid mask: one definition for every model and baseline.

All functions take ``pred`` and ``target`` of shape (B, C, H, W) in physical units and a
``mask`` (B or 1, 1, H, W) with 1 in the fluid, and return one value per sample (B,), pooled
over the C fields and the fluid cells of that frame. Formulas are written out in
``docs/metrics.md``. Cells outside the mask never count, not even as zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-12  # guards the normalised metrics against an all-zero target frame


def _masked_sum(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask).sum(dim=(1, 2, 3))


def _count(pred: Tensor, mask: Tensor) -> Tensor:
    """Number of scored values per sample: fluid cells times fields."""
    return mask.expand(pred.shape[0], 1, *pred.shape[2:]).sum(dim=(1, 2, 3)) * pred.shape[1]


def mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over fluid cells and fields."""
    return _masked_sum((pred - target) ** 2, mask) / _count(pred, mask)


def nmse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Squared error normalised by the target's energy: sum (p - y)^2 / sum y^2 (CFDBench's NMSE)."""
    return _masked_sum((pred - target) ** 2, mask) / (_masked_sum(target**2, mask) + EPS)


def mae(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error over fluid cells and fields."""
    return _masked_sum((pred - target).abs(), mask) / _count(pred, mask)


def max_abs_error(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Largest absolute error in the fluid."""
    error = (pred - target).abs() * mask
    return error.flatten(1).amax(dim=1)


def relative_l2(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """||p - y||_2 / ||y||_2 over fluid cells and fields."""
    return torch.sqrt(nmse(pred, target, mask))


METRICS = {
    "mse": mse,
    "nmse": nmse,
    "mae": mae,
    "max_abs": max_abs_error,
    "rel_l2": relative_l2,
}


def evaluate_all(pred: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Every metric of :data:`METRICS`, per sample, in float64."""
    pred, target, mask = pred.double(), target.double(), mask.double()
    return {name: fn(pred, target, mask) for name, fn in METRICS.items()}


class MetricAccumulator:
    """Collects per-sample metric values across batches; reports their mean and spread.

    Dividing by the number of samples seen (not batches, not n - 1) avoids PDEBench's
    aggregation defect.
    """

    def __init__(self) -> None:
        self._values: dict[str, list[Tensor]] = {name: [] for name in METRICS}

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        for name, value in evaluate_all(pred, target, mask).items():
            self._values[name].append(value.detach().cpu())

    def values(self) -> dict[str, Tensor]:
        return {name: torch.cat(v) if v else torch.zeros(0, dtype=torch.float64) for name, v in self._values.items()}

    def mean(self) -> dict[str, float]:
        return {name: float(v.mean()) for name, v in self.values().items()}
