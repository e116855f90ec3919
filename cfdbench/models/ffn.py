"""Feed-forward networks of CFDBench: a point-wise MLP evaluated at every cell of the frame grid.

``ffn`` (non-autoregressive) maps (case parameters, x, y, t) to the fields at that point;
``auto-ffn`` maps (the flattened input window, case parameters, x, y) to the next frame's fields
there. CFDBench's Auto-FFN paired each query with another sample's field when the batch held
more than one sample (a recorded defect); here every query is evaluated with its own sample's
window, by construction: the first layer is applied to the window once per sample and to the
coordinates once per point, and the two are added (the same linear map, computed without
copying the window to every point).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cfdbench.layers.mlp import MLP, activation, grid_points
from cfdbench.models.base import NeuralOperator, OperatorMeta
from cfdbench.models.registry import register_model


def standardized_points(h: int, w: int, like: Tensor) -> Tensor:
    """Cell centres (H*W, 2) scaled to zero mean and unit variance, like the standardised window
    they are fed with (in [0, 1] the coordinates would be drowned by the window's H*W inputs)."""
    return (grid_points(h, w, like.device, like.dtype) - 0.5) * 12**0.5


def _to_frames(values: Tensor, meta: OperatorMeta) -> Tensor:
    """(B, H*W, C) point values -> (B, C, H, W)."""
    return values.transpose(1, 2).reshape(values.shape[0], meta.n_fields, *meta.grid_shape)


@register_model("ffn")
class FFN(NeuralOperator):
    """Non-autoregressive MLP ``[P + 3] + [width] * depth + [C]`` with scale-invariant ReLU (NormAct)."""

    autoregressive = False

    def __init__(self, meta: OperatorMeta, width: int = 100, depth: int = 8, act: str = "relu"):
        super().__init__(meta)
        self.net = MLP([meta.n_params + 3] + [width] * depth + [meta.n_fields], act, norm_act=True)

    def predict_at(self, time: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        b, (h, w) = params.shape[0], self.meta.grid_shape
        points = grid_points(h, w, params.device, params.dtype)  # (Q, 2)
        q = points.shape[0]
        times = time.to(params.dtype).reshape(b, 1, 1).expand(b, q, 1)
        features = torch.cat([params[:, None].expand(b, q, -1), points[None].expand(b, q, 2), times], dim=2)
        return _to_frames(self.net(features), self.meta)


@register_model("auto-ffn")
class AutoFFN(NeuralOperator):
    """Autoregressive MLP ``[window + P + 2] + [width] * depth + [C]``, ReLU, residual on the last frame."""

    def __init__(self, meta: OperatorMeta, width: int = 200, depth: int = 8, act: str = "relu", residual: bool = True):
        super().__init__(meta)
        self.first = nn.Linear(meta.window_values + meta.n_params + 2, width)
        self.act = activation(act)
        self.rest = MLP([width] * depth + [meta.n_fields], act)
        self.residual = residual

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        h, w = self.meta.grid_shape
        n_case = self.meta.window_values + self.meta.n_params
        weight_case, weight_point = self.first.weight[:, :n_case], self.first.weight[:, n_case:]
        per_sample = torch.cat([inputs.flatten(1), params], dim=1) @ weight_case.T + self.first.bias  # (B, K)
        per_point = standardized_points(h, w, inputs) @ weight_point.T  # (Q, K)
        values = self.rest(self.act(per_sample[:, None, :] + per_point[None]))  # (B, Q, C)
        out = _to_frames(values, self.meta)
        return out + self.last_frame(inputs) if self.residual else out
