"""A plain, readable training loop for autoregressive operators.

One-step teacher forcing on (window -> next frame) pairs in normalised space, masked loss,
Adam/AdamW with a step or cosine schedule, validation every epoch with the shared metric
code, and the best-on-validation checkpoint kept. CPU when there is no GPU.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.metrics import MetricAccumulator
from cfdbench.io import write_json_atomic
from cfdbench.models.base import NeuralOperator, predict_batch
from cfdbench.models.registry import save_checkpoint


@dataclass
class TrainConfig:
    """Every training hyper-parameter; defaults are CFDBench's, the model card overrides them."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "adamw"
    scheduler: str = "step"  # "step" | "cosine" | "none"
    step_size: int = 20  # epochs, for the step schedule
    gamma: float = 0.9
    loss: str = "nmse"  # "nmse" | "mse", masked, in normalised space
    input_frames: int = 1
    stride: int = 1
    eval_batch_size: int = 32
    seed: int = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise CfdbenchError(f"unknown training settings {sorted(unknown)}; valid: {sorted(known)}")
        config = cls(**raw)
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "lr", "input_frames", "stride", "step_size", "gamma"):
            if not getattr(self, name) > 0:
                raise CfdbenchError(f"training setting {name} must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise CfdbenchError(f"training setting weight_decay must be >= 0, got {self.weight_decay}")
        for name, value, choices in (
            ("optimizer", self.optimizer, ("adam", "adamw")),
            ("scheduler", self.scheduler, ("step", "cosine", "none")),
            ("loss", self.loss, ("nmse", "mse")),
        ):
            if value not in choices:
                raise CfdbenchError(f"unknown {name} '{value}'; valid choices: {', '.join(choices)}")


@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict[str, float]]
    seconds: float
    epochs: int
    steps: int
    best_epoch: int
    best_valid_nmse: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Masked MSE, or NMSE per sample averaged over the batch (CFDBench's default loss)."""
    squared = ((pred - target) ** 2 * mask).sum(dim=(1, 2, 3))
    if kind == "mse":
        return squared.sum() / (mask.sum() * pred.shape[1])
    return (squared / ((target**2 * mask).sum(dim=(1, 2, 3)) + 1e-8)).mean()


def _optimizer(model: NeuralOperator, config: TrainConfig) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size * steps_per_epoch, config.gamma)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def check_model(model: NeuralOperator, data: AutoregressiveDataset, device: torch.device) -> None:
    """Fail before training, naming the model, when its output cannot be scored against the target."""
    name = model.registered_name
    batch = data[list(range(min(2, len(data))))]
    try:
        with torch.no_grad():
            pred = predict_batch(model, batch, device)
    except Exception as err:  # noqa: BLE001 - any failure on a real batch is the model's problem
        raise CfdbenchError(f"model '{name}' fails on a batch of {data.dataset.name}: {err.__class__.__name__}: {err}") from None
    if tuple(pred.shape) != tuple(batch["target"].shape):
        raise CfdbenchError(
            f"model '{name}' returns shape {tuple(pred.shape)} but the target is {tuple(batch['target'].shape)} "
            f"(B, fields {list(data.fields)}, H, W)"
        )


@torch.no_grad()
def validate(model: NeuralOperator, data: AutoregressiveDataset, batch_size: int) -> dict[str, float]:
    """One-step metrics on a split in physical units (the evaluator's metric code)."""
    model.eval()
    device = model.device
    scores = MetricAccumulator()
    to_physical = data.scaler.denormalize
    for batch in data.loader(batch_size, shuffle=False):
        pred = predict_batch(model, batch, device).cpu()
        scores.update(to_physical(pred), to_physical(batch["target"]), batch["mask"])
    return scores.mean()


def _save_untrained(model, valid_data, config: TrainConfig, checkpoint: Path, extra: dict) -> TrainResult:
    """A model without trainable weights (a baseline): validate once and save it, no epochs."""
    start = time.perf_counter()
    valid = validate(model, valid_data, config.eval_batch_size)
    save_checkpoint(model, checkpoint, epoch=0, valid=valid, **extra)
    history = [{"epoch": 0, **{f"valid_{k}": v for k, v in valid.items()}}]
    write_json_atomic(checkpoint.parent / "history.json", history)
    return TrainResult(checkpoint, history, time.perf_counter() - start, 0, 0, 0, valid["nmse"])


def train(
    model: NeuralOperator,
    train_data: AutoregressiveDataset,
    valid_data: AutoregressiveDataset,
    config: TrainConfig,
    run_dir: Path,
    device: torch.device,
    show_progress: bool = True,
) -> TrainResult:
    """Train ``model`` and keep the checkpoint with the best validation NMSE in ``run_dir``."""
    seed_everything(config.seed)
    model.to(device)
    check_model(model, train_data, device)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint.pt"
    extra = {"normalization": train_data.normalization.to_dict(), "train_config": asdict(config)}
    model.fit(train_data)
    if not any(p.requires_grad for p in model.parameters()):
        return _save_untrained(model, valid_data, config, checkpoint, extra)
    loader = train_data.loader(config.batch_size, shuffle=True, seed=config.seed)
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config, len(loader))
    history: list[dict[str, float]] = []
    best = (float("inf"), 0)
    steps, start = 0, time.perf_counter()
    progress = Progress(
        TextColumn("[bold]train[/] epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3e}  valid NMSE {task.fields[valid]:.3e}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
        transient=False,
    )
    with progress:
        bar = progress.add_task("train", total=config.epochs * len(loader), epoch=1, loss=float("nan"), valid=float("nan"))
        for epoch in range(1, config.epochs + 1):
            model.train()
            losses = []
            for batch in loader:
                pred = predict_batch(model, batch, device)
                loss = masked_loss(pred, batch["target"].to(device), batch["mask"].to(device), config.loss)
                if not torch.isfinite(loss):
                    raise CfdbenchError(f"training diverged: loss is {loss.item()} at epoch {epoch}, step {steps}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                steps += 1
                losses.append(loss.item())
                progress.update(bar, advance=1, epoch=epoch, loss=float(np.mean(losses)))
            valid = validate(model, valid_data, config.eval_batch_size)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)),
                    "lr": scheduler.get_last_lr()[0],
                    **{f"valid_{k}": v for k, v in valid.items()},
                }
            )
            progress.update(bar, valid=valid["nmse"])
            if valid["nmse"] < best[0]:
                best = (valid["nmse"], epoch)
                save_checkpoint(model, checkpoint, epoch=epoch, valid=valid, **extra)
    seconds = time.perf_counter() - start
    write_json_atomic(run_dir / "history.json", history)
    return TrainResult(checkpoint, history, seconds, config.epochs, steps, best[1], best[0])
