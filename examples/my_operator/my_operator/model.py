"""A small residual CNN written against cfdbench's operator contract (docs/operator-contract.md)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cfdbench.models.base import NeuralOperator, OperatorMeta, broadcast_params


class MyOperator(NeuralOperator):
    """Three 3x3 convolutions over [window, mask, x, y, case parameters]; adds a correction to the last frame."""

    def __init__(self, meta: OperatorMeta, width: int = 32):
        super().__init__(meta)  # the base class records width: checkpoints rebuild the model
        self.net = nn.Sequential(
            nn.Conv2d(meta.image_channels + 2, width, 3, padding=1),  # + x, y
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, meta.n_fields, 3, padding=1),
        )

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        x = torch.cat([inputs, mask, self.coordinates(inputs), broadcast_params(params, inputs)], dim=1)
        return self.last_frame(inputs) + self.net(x)
