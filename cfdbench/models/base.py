"""The operator contract every cfdbench model follows.

A model maps the last ``input_frames`` frames of a flow (normalised fields stacked along
channels), the fluid mask and the case parameters to the next frame of the same fields. All
sizes come from :class:`OperatorMeta`, which is built from the dataset, never hand-written.
A model records its constructor arguments, so a checkpoint rebuilds it by itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor, nn


@dataclass(frozen=True)
class OperatorMeta:
    """What a model needs to know about the data it will see."""

    fields: tuple[str, ...]  # predicted (and input) fields, e.g. ("u", "v")
    input_frames: int  # k frames in the input window
    n_params: int  # length of the case-parameter vector
    grid_shape: tuple[int, ...]  # (H, W) of a frame
    parameter_names: tuple[str, ...] = ()
    n_spatial_dims: int = 2

    @property
    def n_fields(self) -> int:
        return len(self.fields)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "OperatorMeta":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


class NeuralOperator(nn.Module):
    """Base class: subclasses implement :meth:`predict`; the base applies the mask.

    ``forward(inputs, mask, params)``:
      - ``inputs``: (B, k*C, H, W) normalised input window, oldest frame first;
      - ``mask``: (B, 1, H, W), 1 in the fluid, 0 in solids / outside;
      - ``params``: (B, P) normalised case parameters;
      returns (B, C, H, W), the normalised next frame, zero outside the fluid.
    """

    def __init__(self, meta: OperatorMeta, **hparams: Any):
        super().__init__()
        self.meta = meta
        self.hparams = dict(hparams)

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model: registered name, metadata, hyper-parameters."""
        return {"name": self.registered_name, "meta": self.meta.to_dict(), "hparams": self.hparams}

    registered_name: str = "unregistered"

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        return self.predict(inputs, mask, params) * mask

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Tensors only: neuraloperator submodules inject a ``_metadata`` entry that
        ``load_state_dict`` on a wrapper rejects; :attr:`config` already records
        everything needed to rebuild the model."""
        state = super().state_dict(*args, **kwargs)
        state.pop("_metadata", None)
        return state

    def parameter_count(self) -> int:
        """Trainable tensor elements, a complex weight counting once (torch's and CFDBench's convention)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def real_parameter_count(self) -> int:
        """Trainable real numbers: a complex weight counts twice."""
        return sum(p.numel() * (2 if p.is_complex() else 1) for p in self.parameters() if p.requires_grad)

    def last_frame(self, inputs: Tensor) -> Tensor:
        """The most recent input frame (B, C, H, W): the identity prediction."""
        return inputs[:, -self.meta.n_fields :]


def broadcast_params(params: Tensor, like: Tensor) -> Tensor:
    """(B, P) parameters as constant planes (B, P, H, W) matching ``like`` (an expand, no copy)."""
    return params[:, :, None, None].expand(-1, -1, *like.shape[-2:])
