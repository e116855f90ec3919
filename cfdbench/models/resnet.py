"""ResNet exactly as CFDBench builds it: residual blocks of two 7x7 convolutions at constant resolution.

Every stage is a residual block: a 7x7 convolution to ``inner`` channels (replicate padding),
dropout 0.2, GELU, a 7x7 convolution to the block's output channels, plus a shortcut. The first
block lifts the input planes [window, mask, case parameters] to ``hidden`` channels and the last
projects them to the fields; their shortcuts are 1x1 convolutions (channel counts change), the
``depth`` blocks between them keep ``hidden`` channels and add their input. The output is added
to the last input frame and masked. CFDBench's blocks also hold two batch norms they never call
(932 parameters at the card's sizes); they are left out here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cfdbench.models.base import NeuralOperator, OperatorMeta, broadcast_params
from cfdbench.models.registry import register_model


class ResidualBlock(nn.Module):
    """``n_in -> n_out`` channels: conv -> dropout -> GELU -> conv, plus the input (through a 1x1
    convolution when ``projected_shortcut``, as CFDBench's first and last blocks)."""

    def __init__(self, n_in: int, n_out: int, inner: int, kernel: int, dropout: float, projected_shortcut: bool = False):
        super().__init__()
        if n_in != n_out and not projected_shortcut:
            raise ValueError(f"a block from {n_in} to {n_out} channels needs a projected (1x1) shortcut")
        padding = kernel // 2
        self.body = nn.Sequential(
            nn.Conv2d(n_in, inner, kernel, padding=padding, padding_mode="replicate"),
            nn.Dropout(dropout),
            nn.GELU(),
            nn.Conv2d(inner, n_out, kernel, padding=padding, padding_mode="replicate"),
        )
        self.shortcut = nn.Conv2d(n_in, n_out, 1) if projected_shortcut else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.body(x)


@register_model("resnet")
class ResNet(NeuralOperator):
    def __init__(
        self,
        meta: OperatorMeta,
        hidden: int = 16,
        inner: int = 64,
        depth: int = 4,
        kernel: int = 7,
        dropout: float = 0.2,
        residual: bool = True,
    ):
        super().__init__(meta)
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd to keep the frame size, got {kernel}")
        self.residual = residual
        self.lift = ResidualBlock(meta.image_channels, hidden, inner, kernel, dropout, projected_shortcut=True)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden, hidden, inner, kernel, dropout) for _ in range(depth)))
        self.project = ResidualBlock(hidden, meta.n_fields, inner, kernel, dropout, projected_shortcut=True)

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        x = torch.cat([inputs, mask, broadcast_params(params, inputs)], dim=1)
        out = self.project(self.blocks(self.lift(x)))
        return out + self.last_frame(inputs) if self.residual else out
