"""The operator contract every cfdbench model follows (documented in ``docs/operator-contract.md``).

Two tasks, one call. An *autoregressive* model maps the last ``input_frames`` frames of a flow
(normalised fields stacked along channels), the geometry (each cell's fluid fraction) and the case parameters to the next
frame of the same fields. A *non-autoregressive* model maps (case parameters, time) to the
frame at that time. Both are called as ``model(inputs, mask, params, time)`` and return a
frame, so training, rollouts and metrics are the same code for every model. All sizes come
from :class:`OperatorMeta`, which is built from the dataset, never hand-written. The base class
records the arguments every model was constructed with (:func:`constructor_call`), so a
checkpoint rebuilds it by itself and no model writes its hyper-parameters down twice.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from cfdbench.errors import CfdbenchError
from cfdbench.layers.mlp import grid_points
from cfdbench.solvers.geometry import is_fluid_cell

if TYPE_CHECKING:
    from cfdbench.data.metadata import DatasetMetadata


@dataclass(frozen=True)
class OperatorMeta:
    """What a model needs to know about the data it will see."""

    fields: tuple[str, ...]  # predicted (and input) fields, e.g. ("u", "v")
    input_frames: int  # k frames in the input window
    n_params: int  # length of the case-parameter vector
    grid_shape: tuple[int, ...]  # (H, W) of a frame
    parameter_names: tuple[str, ...] = ()
    n_spatial_dims: int = 2
    output_frames: int = 1  # m frames predicted per call (window models such as SFNO; 1 for the rest)

    @property
    def n_fields(self) -> int:
        return len(self.fields)

    @property
    def image_channels(self) -> int:
        """Channels of [input window, mask, parameter planes]: what the image models stack as input."""
        return self.input_frames * self.n_fields + 1 + self.n_params

    @property
    def window_values(self) -> int:
        """Numbers in one flattened input window (k * C * H * W): what the point-wise models' branches read."""
        return self.input_frames * self.n_fields * math.prod(self.grid_shape)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dataset(
        cls, metadata: "DatasetMetadata", fields: tuple[str, ...], input_frames: int = 1, output_frames: int = 1
    ) -> "OperatorMeta":
        """The description a model gets of a stored dataset (its typed metadata), predicting ``fields``
        from windows of ``input_frames`` frames, ``output_frames`` at a time."""
        return cls(
            fields=tuple(fields),
            input_frames=input_frames,
            n_params=len(metadata.parameter_names),
            grid_shape=tuple(metadata.grid_shape),
            parameter_names=tuple(metadata.parameter_names),
            n_spatial_dims=metadata.n_spatial_dims,
            output_frames=output_frames,
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "OperatorMeta":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def constructor_call(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments ``cls(*args, **kwargs)`` passes to ``cls.__init__``, by name and with its defaults
    applied, without ``self`` and the first argument (``meta``, recorded as :class:`OperatorMeta`):
    what ``cls(meta, **record)`` rebuilds the model from.

    A ``**kwargs`` catch-all is recorded flat, one entry per keyword (it rebuilds by keyword; defaults
    of a class it passes them on to are not seen). Values a ``*args`` catch-all receives have no name
    to rebuild them by: they are refused. Tuples are recorded as lists, as JSON reads them back."""
    bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    bound.apply_defaults()
    parameters = list(bound.signature.parameters.values())[1:]  # after self
    record: dict[str, Any] = {}
    for index, parameter in enumerate(parameters):
        value = bound.arguments[parameter.name]
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            record.update((key, item) for key, item in value.items() if key != "meta")
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            _refuse_unnamed(cls, value[1:] if index == 0 else value)  # meta may be the first of them
        elif index > 0:
            record[parameter.name] = value
    return {key: _as_recorded(value) for key, value in record.items()}


def _refuse_unnamed(cls: type, values: tuple[Any, ...]) -> None:
    """Positional values caught by ``*args`` cannot be rebuilt by name from a checkpoint: refuse them."""
    if values:
        raise CfdbenchError(
            f"{cls.__qualname__} got {len(values)} unnamed argument(s) through *args; a checkpoint rebuilds "
            "a model from named arguments only: pass them by keyword or give them parameters"
        )


def _as_recorded(value: Any) -> Any:
    """``value`` with its tuples made lists (nested ones too), so the record equals its JSON round trip
    and shares no list or dict with the caller."""
    if isinstance(value, (list, tuple)):
        return [_as_recorded(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_recorded(item) for key, item in value.items()}
    return value


class NeuralOperator(nn.Module):
    """Base class: subclasses implement :meth:`predict` (autoregressive) or :meth:`predict_at`
    (``autoregressive = False``); the base applies the mask.

    ``forward(inputs, mask, params, time)``:
      - ``inputs``: (B, k*C, H, W) normalised input window, oldest frame first;
      - ``mask``: (B, 1, H, W), each cell's fluid fraction: 1 in the fluid, 0 in solids / outside,
        in between where a body's edge crosses the cell (so a barrier or disc thinner than a cell
        is visible); the fluid cells are those at least half fluid (:func:`fluid_cells`);
      - ``params``: (B, P) normalised case parameters;
      - ``time``: (B,) time of the frame to predict as a fraction of the stored trajectory
        (frame index / (frames - 1)); only non-autoregressive models use it;
      returns (B, C, H, W), the normalised predicted frame, zero outside the fluid cells; a window model
      (``output_window``) returns the next ``meta.output_frames`` frames, (B, m*C, H, W), oldest first.
    Coordinates of the frame grid: :meth:`coordinates`; the physical size of the case's
    domain is in its parameters.

    ``hparams`` holds the arguments the model was constructed with (:func:`constructor_call`), recorded
    by the base class: those of the class actually instantiated, not of the ``super().__init__``
    calls under it. ``config`` (name, meta, hparams) rebuilds the model.
    """

    autoregressive: bool = True
    spatial_dims: tuple[int, ...] = (2,)  # frame dimensions the operator handles (3: the channel flows)
    output_window: bool = False  # predicts meta.output_frames frames per call (else exactly one)
    hybrid_solver: bool = False  # a flow solver with a learned part (DCDM): scored by re-running the solver, not by predict

    def __new__(cls, *args: Any, **kwargs: Any) -> "NeuralOperator":
        """Record the construction call before any ``__init__`` runs: ``__new__`` sees the arguments of
        the class actually instantiated, once, whatever its ``__init__`` passes to its parents. A call
        without arguments (copy, unpickling) records nothing: the copied state carries ``hparams``."""
        instance = super().__new__(cls)
        if args or kwargs:
            try:
                call = constructor_call(cls, args, kwargs)
            except TypeError:  # arguments __init__ does not take: its own call raises the usual error
                return instance
            object.__setattr__(instance, "_constructor_call", call)
        return instance

    def __init__(self, meta: OperatorMeta, **_ignored: Any):
        """``meta`` describes the data; keywords passed here (plug-ins written when each model recorded
        its own arguments) are ignored: the recorded call is the model's ``hparams``."""
        super().__init__()
        self.meta = meta
        self.hparams: dict[str, Any] = self.__dict__.pop("_constructor_call", {})
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)  # a device even without weights

    @property
    def device(self) -> torch.device:
        return self._device_anchor.device

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model: registered name, metadata, hyper-parameters."""
        return {"name": self.registered_name, "meta": self.meta.to_dict(), "hparams": self.hparams}

    registered_name: str = "unregistered"

    def library_call(self) -> tuple[str, dict[str, Any]]:
        """The class this model is built as and its constructor arguments, what a model card's
        ``builds`` states: by default the model's own class and hyper-parameters (besides ``meta``);
        a model that wraps a library's class (the FNOs) names that class and the arguments it passed."""
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}", dict(self.hparams)

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        """Autoregressive models: the next frame (B, C, H, W) from the input window."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict (or predict_at with autoregressive = False)")

    def predict_at(self, time: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        """Non-autoregressive models: the frame (B, C, H, W) at ``time`` (B,) of the case ``params``."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict_at (or predict with autoregressive = True)")

    def forward(self, inputs: Tensor, mask: Tensor, params: Tensor, time: Tensor | None = None) -> Tensor:
        if self.autoregressive:
            return self.predict(inputs, mask, params) * fluid_cells(mask)
        if time is None:
            raise ValueError(f"{type(self).__name__} is non-autoregressive: it needs the time of the frame to predict")
        return self.predict_at(time, mask, params) * fluid_cells(mask)

    def fit(self, train_data: Any) -> None:
        """Compute closed-form parts from the training split before any gradient step (a baseline's
        mean field); the default has none. ``train_data`` is an ``AutoregressiveDataset``."""

    def coordinates(self, like: Tensor) -> Tensor:
        """Cell-centre coordinates of the frame grid in [0, 1], (B, 2, H, W) as (x, y), matching ``like``."""
        h, w = like.shape[-2:]
        grid = grid_points(h, w, like.device, like.dtype).T.reshape(2, h, w)
        return grid.expand(like.shape[0], -1, -1, -1)

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
    """(B, P) parameters as constant planes (B, P, H, W), or volumes (B, P, D, H, W), matching ``like``
    (an expand, no copy)."""
    spatial = like.shape[2:]
    return params.reshape(*params.shape, *(1 for _ in spatial)).expand(-1, -1, *spatial)


def fluid_cells(fluid_fraction: Tensor) -> Tensor:
    """1 on the cells at least half fluid, the cells that are predicted and scored, else 0 (in the
    fraction's dtype; a 0/1 mask gives itself back)."""
    return is_fluid_cell(fluid_fraction).to(fluid_fraction.dtype)


def predict_batch(model: NeuralOperator, batch: dict[str, Tensor], device: torch.device) -> Tensor:
    """The model's prediction for a loader batch: the one place a batch becomes a model call (the
    model sees the fluid fraction as its mask)."""
    return model(*(batch[key].to(device) for key in ("input", "fluid_fraction", "params", "time")))
