"""Resampling of cell-centred fields between uniform grids over the same window."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def resample_cells(field: Tensor, shape: tuple[int, int]) -> Tensor:
    """(B, ny, nx) cell averages -> (B, *shape).

    Exact block averaging when the target divides the source (it conserves the cell means);
    otherwise bilinear interpolation between cell centres (``align_corners=False`` is the
    cell-centred convention), with values beyond the outer centres held constant.
    """
    ny, nx = field.shape[-2:]
    if (ny, nx) == tuple(shape):
        return field
    x = field.unsqueeze(1)
    if ny % shape[0] == 0 and nx % shape[1] == 0:
        out = F.avg_pool2d(x, kernel_size=(ny // shape[0], nx // shape[1]))
    else:
        out = F.interpolate(x, size=tuple(shape), mode="bilinear", align_corners=False)
    return out.squeeze(1)
