"""ResNet in CFDBench's configuration: residual blocks of two 7x7 convolutions at constant resolution.

Input planes [window, mask, case parameters] are lifted to ``hidden`` channels by a 7x7
convolution; each of ``depth`` blocks maps hidden -> ``inner`` -> hidden channels (7x7
convolutions with replicate padding, dropout 0.2 and GELU between them) and adds its input; a 7x7
convolution projects to the fields, which are added to the last input frame and masked.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cfdbench.models.base import NeuralOperator, OperatorMeta, broadcast_params
from cfdbench.models.registry import register_model


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, inner: int, kernel: int, dropout: float):
        super().__init__()
        padding = kernel // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, inner, kernel, padding=padding, padding_mode="replicate"),
            nn.Dropout(dropout),
            nn.GELU(),
            nn.Conv2d(inner, channels, kernel, padding=padding, padding_mode="replicate"),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


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
        super().__init__(meta, hidden=hidden, inner=inner, depth=depth, kernel=kernel, dropout=dropout, residual=residual)
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd to keep the frame size, got {kernel}")
        self.residual = residual
        padding = kernel // 2
        self.lift = nn.Conv2d(meta.image_channels, hidden, kernel, padding=padding, padding_mode="replicate")
        self.blocks = nn.Sequential(*(ResidualBlock(hidden, inner, kernel, dropout) for _ in range(depth)))
        self.project = nn.Conv2d(hidden, meta.n_fields, kernel, padding=padding, padding_mode="replicate")

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        x = torch.cat([inputs, mask, broadcast_params(params, inputs)], dim=1)
        out = self.project(self.blocks(self.lift(x)))
        return out + self.last_frame(inputs) if self.residual else out
