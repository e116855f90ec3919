"""Training losses by name: ``build_loss(name, options)`` is a per-sample loss ``fn(pred, target, mask) -> (B,)``.

The trainer's batches hold normalised fields, (B, m·C, ...) for m predicted frames of C fields;
``mask`` is (B, 1, ...) with 1 in the fluid. Every loss takes the option ``units``:
``normalised`` (the batch as it is) or ``physical`` (pred and target de-normalised first by the
``to_physical`` the trainer passes, built from the dataset's normalisation). The names:

- ``nmse``, ``mse``: CFDBench's masked NMSE and MSE, the metric code of ``metrics.pointwise``.
- ``relative_l2``: ‖p − y‖₂ / ‖y‖₂ per sample over fluid cells and fields (``squared: true``:
  its square, which is the NMSE's formula).
- ``sobolev``: the H^s norm of :mod:`cfdbench.losses.sobolev` per sample (``order``, ``alpha``,
  ``diameter``, ``relative``, ``time_average`` over the m frames, ``freq_cutoff``), with
  ``convention: cfdbench`` (order s is H^s) or ``reference`` (torch-cfd's ``norm_order``; see
  :func:`cfdbench.losses.sobolev.reference_order`).

Options are checked by :func:`check_loss` when the training settings are read, so a bad name or
option fails in one line before any work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.losses.sobolev import SobolevLoss, reference_order
from cfdbench.metrics import pointwise

PerSampleLoss = Callable[[Tensor, Tensor, Tensor], Tensor]
UNITS = ("normalised", "physical")
CONVENTIONS = ("cfdbench", "reference")


@dataclass(frozen=True)
class Option:
    """One option of a loss: its default, its type (``float`` also takes integers) and, for a
    string, its choices."""

    default: Any
    kind: type
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is allowed


COMMON = {"units": Option("normalised", str, UNITS)}
OPTIONS: dict[str, dict[str, Option]] = {
    "nmse": COMMON,
    "mse": COMMON,
    "relative_l2": {**COMMON, "squared": Option(False, bool)},
    "sobolev": {
        **COMMON,
        "order": Option(0.0, float),
        "alpha": Option(0.1, float),
        "diameter": Option(1.0, float),
        "relative": Option(True, bool),
        "time_average": Option(False, bool),
        "freq_cutoff": Option(None, int, optional=True),
        "convention": Option("cfdbench", str, CONVENTIONS),
    },
}
LOSS_NAMES = tuple(OPTIONS)


def resolve_options(name: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every option of loss ``name``: the given ones checked and typed, the rest at their defaults."""
    if name not in OPTIONS:
        raise UnknownNameError("loss", name, list(LOSS_NAMES))
    if not isinstance(options or {}, dict):
        raise CfdbenchError(f"training setting loss_options must be a mapping of option: value, got {options!r}")
    known = OPTIONS[name]
    unknown = sorted(set(options or {}) - set(known))
    if unknown:
        raise CfdbenchError(f"loss '{name}' has no options {unknown}; valid: {sorted(known)}")
    return {key: _typed_option(name, key, (options or {}).get(key, spec.default), spec) for key, spec in known.items()}


def check_loss(name: str, options: dict[str, Any] | None = None) -> None:
    """Refuse an unknown loss or a bad option of it, in one line (the training settings' boundary)."""
    settings = resolve_options(name, options)
    if name == "sobolev":
        _sobolev(**{k: v for k, v in settings.items() if k != "units"}, frames=1)  # its own range checks


def _typed_option(loss: str, key: str, value: Any, spec: Option) -> Any:
    """``value`` as the option's type; YAML may give a number as a string ("1e-3")."""
    if value is None and spec.optional:
        return None
    if spec.kind is float and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number):
            return number
    elif spec.kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif spec.kind is bool and isinstance(value, bool):
        return value
    elif spec.kind is str and value in spec.choices:
        return value
    expected = {float: "a finite number", int: "an integer", bool: "true or false", str: f"one of {', '.join(spec.choices)}"}
    nullable = " or null" if spec.optional else ""
    raise CfdbenchError(f"loss '{loss}' option {key} must be {expected[spec.kind]}{nullable}, got {value!r}")


def build_loss(
    name: str,
    options: dict[str, Any] | None = None,
    *,
    frames: int = 1,
    to_physical: Callable[[Tensor], Tensor] | None = None,
) -> PerSampleLoss:
    """The per-sample loss ``name`` with ``options``, for batches of ``frames`` predicted frames;
    ``to_physical`` de-normalises a (B, m·C, ...) batch when the loss is in physical units."""
    settings = resolve_options(name, options)
    units = settings.pop("units")
    loss = _BUILDERS[name](**settings, frames=frames)
    if units == "normalised":
        return loss
    if to_physical is None:
        raise CfdbenchError(f"loss '{name}' in physical units needs the dataset's normalisation to undo")
    return lambda pred, target, mask: loss(to_physical(pred), to_physical(target), mask)


def masked_loss(pred: Tensor, target: Tensor, mask: Tensor, kind: str = "nmse") -> Tensor:
    """Mean over the batch of the loss ``kind`` with its default options (normalised units)."""
    return build_loss(kind)(pred, target, mask).mean()


def _relative_l2(squared: bool, frames: int) -> PerSampleLoss:
    """‖p − y‖₂ / ‖y‖₂ over fluid cells and fields; squared, the NMSE's formula (one definition)."""
    return pointwise.nmse if squared else pointwise.relative_l2


def _sobolev(
    order: float,
    alpha: float,
    diameter: float,
    relative: bool,
    time_average: bool,
    freq_cutoff: int | None,
    convention: str,
    frames: int,
) -> PerSampleLoss:
    """The H^s loss per sample on (B, m·C, H, W) batches, seen as (B, m, C, H, W): L2 over frames
    and fields, ``time_average`` dividing by sqrt(m)."""
    cfdbench_order = reference_order(order) if convention == "reference" else order
    norm = SobolevLoss(cfdbench_order, alpha, diameter, relative, time_average, time_dim=1, freq_cutoff=freq_cutoff)
    mesh_weighted = convention == "reference" and not relative

    def loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        if pred.dim() != 4:
            raise CfdbenchError(f"the sobolev loss is for 2D frames (B, C, H, W), got shape {tuple(pred.shape)}")
        pred, target = (x.unflatten(1, (frames, -1)) for x in (pred, target))
        value = norm.per_sample(pred, target, mask.unsqueeze(1))
        return value / math.sqrt(pred.shape[-2] * pred.shape[-1]) if mesh_weighted else value

    return loss


_BUILDERS: dict[str, Callable[..., PerSampleLoss]] = {
    "nmse": lambda frames: pointwise.nmse,
    "mse": lambda frames: pointwise.mse,
    "relative_l2": _relative_l2,
    "sobolev": _sobolev,
}
