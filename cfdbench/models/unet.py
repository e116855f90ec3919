"""U-Net in CFDBench's configuration (dim 12: 12-24-48-96-192 channels, four levels down and up).

Input planes [window, mask, case parameters]; each level two (3x3 convolution, batch norm, ReLU)
with replicate padding, max-pooling down, transposed convolutions up, skip connections by
concatenation; the output is added to the last input frame (residual) and masked. Frames whose
size is not divisible by 16 are replicate-padded on the way in and cropped on the way out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cfdbench.models.base import NeuralOperator, OperatorMeta, broadcast_params
from cfdbench.models.registry import register_model


def double_conv(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(n_in, n_out, 3, padding=1, padding_mode="replicate"),
        nn.BatchNorm2d(n_out),
        nn.ReLU(),
        nn.Conv2d(n_out, n_out, 3, padding=1, padding_mode="replicate"),
        nn.BatchNorm2d(n_out),
        nn.ReLU(),
    )


@register_model("unet")
class UNet(NeuralOperator):
    def __init__(self, meta: OperatorMeta, dim: int = 12, levels: int = 4, residual: bool = True):
        super().__init__(meta)
        self.residual, self.levels = residual, levels
        channels = [dim * 2**i for i in range(levels + 1)]
        self.inlet = double_conv(meta.image_channels, channels[0])
        self.down = nn.ModuleList(double_conv(a, b) for a, b in zip(channels[:-1], channels[1:]))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(channels[:-1], channels[1:]))
        self.up = nn.ModuleList(double_conv(2 * a, a) for a in channels[:-1])
        self.outlet = nn.Conv2d(dim, meta.n_fields, 1)

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        x = torch.cat([inputs, mask, broadcast_params(params, inputs)], dim=1)
        h, w = x.shape[-2:]
        multiple = 2**self.levels
        pad = (0, -w % multiple, 0, -h % multiple)
        x = F.pad(x, pad, mode="replicate") if any(pad) else x
        skips = [self.inlet(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for upsample, block in zip(reversed(self.upsample), reversed(self.up)):
            x = block(torch.cat([skips.pop(), upsample(x)], dim=1))
        out = self.outlet(x)[..., :h, :w]
        return out + self.last_frame(inputs) if self.residual else out
