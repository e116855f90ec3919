"""Baselines every leaderboard shows: persistence (identity) and the training-set mean field.

Neither has trainable weights: ``cfdbench run --model identity`` skips the epochs, evaluates
and writes an entry like any model, so every table can carry the floor a model must beat.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cfdbench.models.base import NeuralOperator, OperatorMeta
from cfdbench.models.registry import register_model


@register_model("identity")
class Identity(NeuralOperator):
    """Persistence: the next frame is the last input frame."""

    spatial_dims = (2, 3)

    def __init__(self, meta: OperatorMeta):
        super().__init__(meta)

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        return self.last_frame(inputs)


@register_model("mean-field")
class MeanField(NeuralOperator):
    """The mean of every training target frame, per field and cell (normalised units), whatever
    the case and time: what a model that learned nothing case-specific would predict."""

    autoregressive = False
    spatial_dims = (2, 3)

    def __init__(self, meta: OperatorMeta):
        super().__init__(meta)
        self.register_buffer("mean_field", torch.zeros(meta.n_fields, *meta.grid_shape))

    @torch.no_grad()
    def fit(self, train_data) -> None:
        total = torch.zeros_like(self.mean_field, dtype=torch.float64)
        count = 0
        for batch in train_data.loader(256, shuffle=False):
            total += batch["target"].double().sum(dim=0).to(total.device)
            count += batch["target"].shape[0]
        self.mean_field.copy_(total / max(count, 1))

    def predict_at(self, time: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        return self.mean_field.expand(params.shape[0], *self.mean_field.shape)
