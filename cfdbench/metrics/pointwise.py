"""Pointwise error metrics inside the fluid mask: one definition for every model and baseline.

All functions take ``pred`` and ``target`` of shape (B, C, H, W) in physical units and a
``mask`` (B or 1, 1, H, W) with 1 in the fluid, and return one value per sample (B,); all but the
boundary errors (2D) also take 3D volumes (B, C, D, H, W). Formulas are written out in
``docs/metrics.md``. Cells outside the mask never count, not even as zeros; PDEBench's formulas
(``crmse``, ``brmse``) are computed exactly as its ``metric_func`` does, on the fields zeroed in
solids, for each sample as a batch of one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-12  # guards CFDBench's NMSE against an all-zero target frame
WELL_EPS = 1e-7  # The Well's guard in VRMSE and NRMSE (PDEBench's nRMSE had none)


def _sample_dims(x: Tensor) -> tuple[int, ...]:
    """Every axis but the batch: fields and space (2D frames or 3D volumes alike)."""
    return tuple(range(1, x.dim()))


def _space_dims(x: Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.dim()))


def _masked_sum(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask).sum(dim=_sample_dims(values))


def _fluid_cells(pred: Tensor, mask: Tensor) -> Tensor:
    """Fluid cells per sample, (B,)."""
    return mask.expand(pred.shape[0], 1, *pred.shape[2:]).sum(dim=_sample_dims(pred))


def _count(pred: Tensor, mask: Tensor) -> Tensor:
    """Number of scored values per sample: fluid cells times fields."""
    return _fluid_cells(pred, mask) * pred.shape[1]


def _per_field_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over the fluid cells of each field, (B, C)."""
    return (values * mask).sum(dim=_space_dims(values)) / mask.sum(dim=_space_dims(mask)).clamp(min=1)


def _masked_error(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """(p - y) m: PDEBench's and DPOT's formulas see the fields zeroed in solids, so solids add no error."""
    return (pred - target) * mask


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


def l2re(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """DPOT's relative L2 error (its ``SimpleLpLoss``): per field ||e_c||_2 / (||y_c||_2 + 1e-8) over
    the grid, fields zeroed in solids, then the mean over fields."""
    error_norm = _masked_error(pred, target, mask).flatten(2).norm(dim=2)  # (B, C)
    truth_norm = (target * mask).flatten(2).norm(dim=2)
    return (error_norm / (truth_norm + 1e-8)).mean(dim=1)


def vrmse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """The Well's VRMSE per field, sqrt(mean (p - y)^2 / (var y + 1e-7)) with the Bessel-corrected
    variance over the fluid cells, then the mean over fields. Predicting the target's fluid mean
    scores sqrt((n-1)/n), just under 1."""
    n = mask.sum(dim=_space_dims(mask))
    squared_error = _per_field_mean((pred - target) ** 2, mask)
    mean = _per_field_mean(target, mask).reshape(*target.shape[:2], *(1 for _ in _space_dims(target)))
    centred = (target - mean) * mask
    variance = (centred**2).sum(dim=_space_dims(centred)) / (n - 1).clamp(min=1)
    return torch.sqrt(squared_error / (variance + WELL_EPS)).mean(dim=1)


def nrmse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PDEBench's nRMSE per field, sqrt(mean (p - y)^2 / (mean y^2 + 1e-7)) (with The Well's guard
    that PDEBench lacks), then the mean over fields."""
    squared_error = _per_field_mean((pred - target) ** 2, mask)
    return torch.sqrt(squared_error / (_per_field_mean(target**2, mask) + WELL_EPS)).mean(dim=1)


def crmse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PDEBench's cRMSE of one sample: the error of each field's spatial mean, abs(sum_i e_ci) / n_cells
    over every cell of the grid (2D or 3D), then the mean over fields."""
    error = _masked_error(pred, target, mask)
    return (error.sum(dim=_space_dims(error)).abs() / error[0, 0].numel()).mean(dim=1)


def brmse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PDEBench's bRMSE of one 2D sample: per field, the squared errors on the four domain edges
    summed (corner cells twice, as PDEBench does) over 2 nx + 2 ny, square root; then the mean
    over fields. Obstacles do not count: :func:`boundary_rmse_ring` covers them."""
    error = _masked_error(pred, target, mask) ** 2
    h, w = error.shape[-2:]
    edges = error[..., 0, :].sum(-1) + error[..., -1, :].sum(-1) + error[..., :, 0].sum(-1) + error[..., :, -1].sum(-1)
    return torch.sqrt(edges / (2 * h + 2 * w)).mean(dim=1)


def boundary_band(mask: Tensor) -> Tensor:
    """Fluid cells next to a wall or a solid: fluid cells with a non-fluid 4-neighbour, the domain
    edge counting as wall. (B or 1, 1, H, W), 0 or 1."""
    outside = F.pad(1 - mask, (1, 1, 1, 1), value=1.0)
    touches = outside[..., :-2, 1:-1] + outside[..., 2:, 1:-1] + outside[..., 1:-1, :-2] + outside[..., 1:-1, 2:]
    return mask * (touches > 0).to(mask.dtype)


def boundary_rmse_ring(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """cfdbench's boundary error, walls and obstacles: RMSE over the ring of :func:`boundary_band`
    (each cell once, all fields together)."""
    band = boundary_band(mask)
    return torch.sqrt(_masked_sum((pred - target) ** 2, band) / _count(pred, band).clamp(min=1))
