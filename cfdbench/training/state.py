"""The full state of a training run, saved after every epoch, so that ``--resume`` continues it
exactly: model, optimiser, scheduler, gradient scaler, every random generator, epoch, step,
best validation score and history.

``last.pt`` beside the best-on-validation ``checkpoint.pt`` holds it; it is written atomically,
so a run killed at any moment resumes from the end of its last finished epoch and, on the CPU,
ends with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cfdbench.errors import CfdbenchError
from cfdbench.io import atomic_path
from cfdbench.models.base import NeuralOperator
from cfdbench.training.config import TrainConfig

STATE_FILE = "last.pt"


@dataclass
class Progress:
    """Where a run stands: the next epoch to run, optimiser steps so far, best validation so far."""

    epoch: int = 1
    step: int = 0
    best_nmse: float = float("inf")
    best_epoch: int = 0
    stale_epochs: int = 0  # epochs since the best, for early stopping
    history: list[dict[str, float]] = field(default_factory=list)


def rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_state(path: Path, model: NeuralOperator, optimizer, scheduler, scaler, progress: Progress, identity: dict) -> None:
    """Everything needed to continue the run, atomically."""
    payload = {
        "identity": identity,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": progress.__dict__,
        "rng": rng_states(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_state(path: Path, model: NeuralOperator, optimizer, scheduler, scaler, identity: dict) -> Progress:
    """Restore a run saved by :func:`save_state`; a state of another model, configuration or
    dataset is refused, naming what differs."""
    if not path.is_file():
        raise CfdbenchError(f"cannot resume: {path} does not exist (the run saves it after its first epoch)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        saved = payload["identity"]
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise CfdbenchError(f"cannot resume from {path}: unreadable ({err.__class__.__name__})") from None
    saved = {**saved, "training": with_new_defaults(saved.get("training", {}))}
    differences = [key for key in sorted(set(saved) | set(identity)) if saved.get(key) != identity.get(key)]
    if differences:
        shown = ", ".join(f"{k}: saved {saved.get(k)!r}, now {identity.get(k)!r}" for k in differences[:3])
        raise CfdbenchError(f"cannot resume from {path}: it belongs to another run ({shown})")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    scaler.load_state_dict(payload["scaler"])
    restore_rng_states(payload["rng"])
    return Progress(**payload["progress"])



# Training settings added after runs were saved without them; each one's default is the old behaviour.
ADDED_SETTINGS = frozenset({"loss_options", "div_factor", "final_div_factor"})


def with_new_defaults(training: dict) -> dict:
    """A saved run's training settings with the settings added since it ran at their defaults: it
    trained as those defaults do (a setting is only ever added with the behaviour it had before as
    its default), so it still resumes."""
    defaults = asdict(TrainConfig())
    return {**{key: defaults[key] for key in ADDED_SETTINGS - training.keys()}, **training}
