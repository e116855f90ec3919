"""The DeepONet family of CFDBench (Lu et al. 2021): a branch net encodes the case (and, for the
autoregressive members, the current frame), a trunk net encodes a query point, and their dot
product is the field there. Queries are every cell of the frame grid, so each model returns
whole frames and is scored like any other.

Deviations from CFDBench, all deliberate: every member predicts all fields (u and v; CFDBench
predicted u only), the mask is applied to the output, coordinates and time are normalised
(cell centres in [0, 1], time as a fraction of the trajectory), and the autoregressive members
see the whole input window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cfdbench.layers.mlp import MLP, activation, grid_points
from cfdbench.models.base import NeuralOperator, OperatorMeta, broadcast_params
from cfdbench.models.registry import register_model


def _contract(branch: Tensor, trunk: Tensor, bias: Tensor, n_fields: int, grid_shape: tuple[int, ...]) -> Tensor:
    """branch (B, C*K), trunk (H*W, K) -> frames (B, C, H, W): one dot product per field and cell."""
    b = branch.shape[0]
    values = torch.einsum("bck,qk->bcq", branch.reshape(b, n_fields, -1), trunk)
    return values.reshape(b, n_fields, *grid_shape) + bias.reshape(1, -1, 1, 1)


class _GridQueries(NeuralOperator):
    """Shared by the family: the frame grid's cell centres as trunk inputs, centred on 0."""

    def query_points(self, like: Tensor) -> Tensor:
        h, w = self.meta.grid_shape
        return grid_points(h, w, like.device, like.dtype) - 0.5


@register_model("deeponet")
class DeepONet(_GridQueries):
    """Non-autoregressive: (case parameters, t, x, y) -> fields. Branch ``[P] + [width] * depth``;
    trunk ``Linear(t) + Linear(x, y)`` then ``[width] * depth``; scale-invariant ReLU (NormAct)."""

    autoregressive = False

    def __init__(self, meta: OperatorMeta, width: int = 100, branch_depth: int = 8, trunk_depth: int = 8, act: str = "relu"):
        super().__init__(meta)
        c = meta.n_fields
        self.branch = MLP([meta.n_params] + [width] * (branch_depth - 1) + [width * c], act, norm_act=True)
        self.trunk_time = nn.Linear(1, width)
        self.trunk_space = nn.Linear(2, width)
        self.trunk_act = activation(act, norm=True)
        self.trunk = MLP([width] * trunk_depth, act, norm_act=True)
        self.bias = nn.Parameter(torch.zeros(c))

    def predict_at(self, time: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        points = self.query_points(params)  # (Q, 2)
        # the trunk sees (t, x, y): a time term per sample plus a space term per point
        first = self.trunk_time(time.reshape(-1, 1, 1).to(params.dtype)) + self.trunk_space(points)[None]  # (B, Q, K)
        trunk = self.trunk(self.trunk_act(first))
        branch = self.branch(params).reshape(params.shape[0], self.meta.n_fields, -1)
        values = torch.einsum("bck,bqk->bcq", branch, trunk)
        return values.reshape(params.shape[0], self.meta.n_fields, *self.meta.grid_shape) + self.bias.reshape(1, -1, 1, 1)


class _AutoDeepONetBase(_GridQueries):
    """Autoregressive members: the input window (flattened) conditions the branch; the output is
    added to the last input frame (CFDBench's residual form)."""

    def __init__(self, meta: OperatorMeta, residual: bool):
        super().__init__(meta)
        self.residual = residual
        self.bias = nn.Parameter(torch.zeros(meta.n_fields))

    def branch_features(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        trunk = self.trunk(self.query_points(inputs))
        out = _contract(self.branch_features(inputs, mask, params), trunk, self.bias, self.meta.n_fields, self.meta.grid_shape)
        return out + self.last_frame(inputs) if self.residual else out


@register_model("auto-deeponet")
class AutoDeepONet(_AutoDeepONetBase):
    """Branch ``[window, P] + [width] * depth``, trunk ``[2] + [width] * depth``."""

    def __init__(self, meta: OperatorMeta, width: int = 100, depth: int = 8, act: str = "relu", residual: bool = True):
        super().__init__(meta, residual)
        c = meta.n_fields
        self.branch = MLP([meta.window_values + meta.n_params] + [width] * (depth - 1) + [width * c], act)
        self.trunk = MLP([2] + [width] * depth, act)

    def branch_features(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        return self.branch(torch.cat([inputs.flatten(1), params], dim=1))


@register_model("auto-edeeponet")
class AutoEDeepONet(_AutoDeepONetBase):
    """Enhanced DeepONet: separate branches for the window and the parameters, multiplied."""

    def __init__(self, meta: OperatorMeta, width: int = 100, depth: int = 8, act: str = "relu", residual: bool = True):
        super().__init__(meta, residual)
        c = meta.n_fields
        self.field_branch = MLP([meta.window_values] + [width] * (depth - 1) + [width * c], act)
        self.param_branch = MLP([meta.n_params] + [width] * (depth - 1) + [width * c], act)
        self.trunk = MLP([2] + [width] * depth, act)

    def branch_features(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        return self.field_branch(inputs.flatten(1)) * self.param_branch(params)


@register_model("auto-deeponet-cnn")
class AutoDeepONetCNN(_AutoDeepONetBase):
    """Branch: a CNN over [window, mask, parameter planes] (a 5x5 convolution to ``channels``, four
    5x5 convolution + 2x max-pool + ReLU stages, a last 5x5 convolution), flattened to
    ``channels * H/16 * W/16`` features (512 at 64x64); trunk ``[2] + [width] * 4 + [features]``;
    their product goes through a ``[features] * 3 + [C]`` head. Unlike CFDBench, v is predicted
    and rolled out like u (CFDBench froze v during rollouts)."""

    def __init__(
        self,
        meta: OperatorMeta,
        channels: int = 32,
        kernel: int = 5,
        width: int = 100,
        trunk_depth: int = 4,
        head_depth: int = 3,
        act: str = "relu",
        residual: bool = True,
    ):
        super().__init__(meta, residual)
        pad = kernel // 2
        stages = [nn.Conv2d(meta.image_channels, channels, kernel, padding=pad)]
        for _ in range(4):
            stages += [nn.Conv2d(channels, channels, kernel, padding=pad), nn.MaxPool2d(2), nn.ReLU()]
        stages.append(nn.Conv2d(channels, channels, kernel, padding=pad))
        self.branch = nn.Sequential(*stages, nn.Flatten())
        h, w = (-(-n // 16) for n in meta.grid_shape)  # frames are padded up to a multiple of 16
        features = channels * h * w
        self.trunk = MLP([2] + [width] * trunk_depth + [features], act)
        self.head = MLP([features] * head_depth + [meta.n_fields], act)

    def branch_features(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        x = torch.cat([inputs, mask, broadcast_params(params, inputs)], dim=1)
        h, w = x.shape[-2:]
        return self.branch(F.pad(x, (0, -w % 16, 0, -h % 16), mode="replicate"))

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        trunk = self.trunk(self.query_points(inputs))  # (Q, F)
        branch = self.branch_features(inputs, mask, params)  # (B, F)
        values = self.head(branch[:, None, :] * trunk[None])  # (B, Q, C)
        out = values.transpose(1, 2).reshape(inputs.shape[0], self.meta.n_fields, *self.meta.grid_shape)
        out = out + self.bias.reshape(1, -1, 1, 1)
        return out + self.last_frame(inputs) if self.residual else out
