"""Every training hyper-parameter of a run, with CFDBench's defaults; model cards and the command
line override them, and unknown keys are refused."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from cfdbench.errors import CfdbenchError
from cfdbench.losses import check_loss

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Beyond these a setting is a typo (1e23 epochs) rather than a plan.
UPPER_BOUNDS = {"num_workers": 1024, "epochs": 10**6, "batch_size": 2**20, "eval_batch_size": 2**20, "input_frames": 10**4, "output_frames": 10**4, "stride": 10**4}
WANDB_MODES = ("off", "offline", "online")
SCHEDULERS = ("step", "cosine", "onecycle", "none")


@dataclass
class TrainConfig:
    """Training settings. ``precision="auto"`` is bf16 autocast on CUDA and float32 on the CPU;
    ``grad_clip``, ``early_stopping`` (patience in epochs) and ``max_minutes`` are off at 0.
    ``loss`` names a loss of :mod:`cfdbench.losses.registry` and ``loss_options`` its options."""

    epochs: int = 100
    batch_size: int = 128  # global: split evenly over the ranks of a distributed run
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "adamw"
    scheduler: str = "step"  # "step" | "cosine" | "onecycle" | "none", stepped every batch
    step_size: int = 20  # epochs, for the step schedule
    gamma: float = 0.9
    div_factor: float = 25.0  # onecycle: the first lr is lr / div_factor (torch's defaults)
    final_div_factor: float = 1e4  # onecycle: the last lr is the first / final_div_factor
    loss: str = "nmse"  # "nmse" | "mse" | "relative_l2" | "sobolev", masked
    loss_options: dict = field(default_factory=dict)  # the loss's options, e.g. {units: physical}
    input_frames: int = 1
    output_frames: int = 1  # frames predicted per call: > 1 for window models (SFNO)
    stride: int = 1
    eval_batch_size: int = 32
    seed: int = 0
    precision: str = "auto"
    compile: bool = False  # torch.compile the model
    grad_clip: float = 0.0  # max gradient norm
    early_stopping: int = 0  # stop after this many epochs without a better validation NMSE
    max_minutes: float = 0.0  # stop after the epoch during which this much training time has passed
    wandb: str = "off"  # Weights & Biases: off, offline (no account needed) or online
    num_workers: int = 0  # processes reading batches (0: the training process); same batches for any count

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise CfdbenchError(f"unknown training settings {sorted(unknown)}; valid: {sorted(known)}")
        types = {f.name: f.type for f in fields(cls)}
        config = cls(**{key: _typed(key, value, types[key]) for key, value in raw.items()})
        config.validate()
        return config

    def validate(self) -> None:
        """Refuse settings no run can use, before any work: every number finite, the counts positive
        and within :data:`UPPER_BOUNDS`."""
        positive = ("epochs", "batch_size", "eval_batch_size", "lr", "input_frames", "output_frames", "stride", "div_factor", "final_div_factor")
        for name in (*positive, "step_size", "gamma", "weight_decay", "grad_clip", "early_stopping", "max_minutes"):
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise CfdbenchError(f"training setting {name} must be a finite number, got {value}")
        for name in (*positive, "step_size", "gamma"):
            if not getattr(self, name) > 0:
                raise CfdbenchError(f"training setting {name} must be positive, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "early_stopping", "max_minutes", "num_workers"):
            if getattr(self, name) < 0:
                raise CfdbenchError(f"training setting {name} must be >= 0, got {getattr(self, name)}")
        for name, limit in UPPER_BOUNDS.items():
            if getattr(self, name) > limit:
                raise CfdbenchError(f"training setting {name} = {getattr(self, name)} is beyond {limit:g}; no run needs that many")
        for name, value, choices in (
            ("optimizer", self.optimizer, ("adam", "adamw")),
            ("scheduler", self.scheduler, SCHEDULERS),
            ("precision", self.precision, PRECISIONS),
            ("wandb", self.wandb, WANDB_MODES),
        ):
            if value not in choices:
                raise CfdbenchError(f"unknown {name} '{value}'; valid choices: {', '.join(choices)}")
        check_loss(self.loss, self.loss_options)


def _typed(name: str, value: Any, kind: str) -> Any:
    """``value`` as the setting's declared type (``--set`` and YAML give strings such as "3e-4")."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "float":
        try:
            if not isinstance(value, bool):
                return float(value)
        except (TypeError, ValueError):
            pass
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "dict":
        if isinstance(value, dict):
            return dict(value)
    expected = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "dict": "a mapping"}[kind]
    raise CfdbenchError(f"training setting {name} must be {expected}, got {value!r}")
