"""A plain, readable training loop for every operator of the suite, on one device or many.

One-step teacher forcing on (window -> next frame) pairs in normalised space, a masked loss chosen
by name (``cfdbench.losses``; in normalised or physical units), Adam/AdamW with a step, cosine or
one-cycle schedule stepped every batch, validation every epoch with the shared metric code,
the best-on-validation checkpoint kept, and the full state saved after every epoch for an exact
``--resume``. Under torchrun, DDP averages gradients (``distributed.py``) and only rank 0 writes.
Mixed precision, gradient clipping, early stopping and ``torch.compile`` are settings of
:class:`TrainConfig`.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cfdbench.data.batches import BatchLoader, FixedBatches, RankBatches, Ranks, check_batch_size, to_device
from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.errors import CfdbenchError
from cfdbench.losses import PerSampleLoss, build_loss, masked_loss
from cfdbench.metrics import MetricAccumulator, metric_names
from cfdbench.models.base import NeuralOperator, predict_batch
from cfdbench.models.registry import save_checkpoint
from cfdbench.training import distributed, precision, state
from cfdbench.training.config import TrainConfig
from cfdbench.training.tracking import Tracker

__all__ = ["TrainConfig", "TrainResult", "check_model", "masked_loss", "seed_everything", "train", "validate"]


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


def physical_frames(data: AutoregressiveDataset, x: torch.Tensor) -> torch.Tensor:
    """A normalised (B, m·C, ...) batch of ``data`` in physical units, as (B, m, C, ...)."""
    return data.scaler.denormalize(x.unflatten(1, (data.output_frames, -1)), channel_dim=2)


def training_loss(config: TrainConfig, data: AutoregressiveDataset) -> PerSampleLoss:
    """The run's per-sample loss on ``data``'s normalised batches (:func:`cfdbench.losses.build_loss`)."""
    to_physical = lambda x: physical_frames(data, x).flatten(1, 2)  # noqa: E731 - (B, m·C, ...) in, (B, m·C, ...) out
    return build_loss(config.loss, config.loss_options, frames=data.output_frames, to_physical=to_physical)


def _optimizer(model: NeuralOperator, config: TrainConfig) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size * steps_per_epoch, config.gamma)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs * steps_per_epoch)
    if config.scheduler == "onecycle":  # Spectral-Refiner's schedule: up from lr / div_factor, then down
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=config.epochs * steps_per_epoch,
            div_factor=config.div_factor,
            final_div_factor=config.final_div_factor,
        )
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
            f"(B, {data.output_frames} frame(s) x fields {list(data.fields)}, H, W)"
        )


def validation_batches(
    data: AutoregressiveDataset, batch_size: int, ranks: Ranks, num_workers: int = 0
) -> BatchLoader:
    """This rank's validation batches: every ``world``-th sample of the split, in order."""
    mine = torch.arange(ranks.rank, len(data), ranks.world_size)
    return BatchLoader(data, FixedBatches(mine, batch_size), num_workers, pin_memory=ranks.device.type == "cuda", lend=True)


@torch.no_grad()
def validate(
    model: NeuralOperator,
    data: AutoregressiveDataset,
    batch_size: int,
    ranks: Ranks | None = None,
    batches: BatchLoader | None = None,
) -> dict[str, float]:
    """One-step metrics on a split in physical units (the evaluator's metric code), each rank
    scoring every ``world``-th sample (``batches``: those of :func:`validation_batches`) and the
    per-sample sums reduced over ranks."""
    ranks = ranks or Ranks(device=model.device)
    model.eval()
    names = metric_names(len(data.frame_shape))
    scores = MetricAccumulator(len(data.frame_shape))
    for batch, _ in batches or validation_batches(data, batch_size, ranks):
        pred = predict_batch(model, to_device(batch, ranks.device), ranks.device).float().cpu()
        pred, target = (physical_frames(data, x).flatten(0, 1) for x in (pred, batch["target"]))
        scores.update(pred, target, batch["mask"].repeat_interleave(data.output_frames, dim=0))
    values = scores.values()
    sums = torch.tensor([float(values[m].sum()) for m in names] + [float(len(values["mse"]))], dtype=torch.float64)
    sums = distributed.all_reduce_sums(sums, ranks)
    return {m: float(sums[i] / sums[-1]) for i, m in enumerate(names)}


def _save_untrained(
    model, valid_data, config: TrainConfig, checkpoint: Path, extra: dict, tracker: Tracker, ranks
) -> TrainResult:
    """A model without trainable weights (a baseline): validate once and save it, no epochs."""
    start = time.perf_counter()
    valid = validate(model, valid_data, config.eval_batch_size, ranks)
    if ranks.is_main:
        save_checkpoint(model, checkpoint, epoch=0, valid=valid, **extra)
        tracker.log_epoch({"epoch": 0, **{f"valid_{k}": v for k, v in valid.items()}})
    return TrainResult(checkpoint, tracker.history, time.perf_counter() - start, 0, 0, 0, valid["nmse"])


def _progress_bar(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]train[/] epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3e}  valid NMSE {task.fields[valid]:.3e}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not show,
        transient=False,
    )


RESUMABLE_CHANGES = ("epochs", "early_stopping", "max_minutes", "wandb", "compile", "num_workers")  # may differ on --resume


def run_identity(model: NeuralOperator, train_data: AutoregressiveDataset, config: TrainConfig) -> dict:
    """What a saved state must match to be resumed: the model and its settings, the training
    cases and every training setting except the run's length, stopping rules and logging."""
    settings = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    return {
        "model": model.config,
        "dataset": train_data.dataset.name,
        "train_cases": list(train_data.case_ids),
        "training": settings,
    }


def train(
    model: NeuralOperator,
    train_data: AutoregressiveDataset,
    valid_data: AutoregressiveDataset,
    config: TrainConfig,
    run_dir: Path,
    device: torch.device,
    show_progress: bool = True,
    resume: bool = False,
    ranks: Ranks | None = None,
    tracker: Tracker | None = None,
) -> TrainResult:
    """Train ``model`` and keep the checkpoint with the best validation NMSE in ``run_dir``."""
    ranks = ranks or Ranks(device=device)
    seed_everything(config.seed)
    model.to(ranks.device)
    check_model(model, train_data, ranks.device)
    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    tracker = tracker or Tracker(run_dir, asdict(config), config.wandb if ranks.is_main else "off")
    checkpoint = run_dir / "checkpoint.pt"
    extra = {"normalization": train_data.normalization.to_dict(), "train_config": asdict(config)}
    model.fit(train_data)
    if not any(p.requires_grad for p in model.parameters()):
        return _save_untrained(model, valid_data, config, checkpoint, extra, tracker, ranks)
    return _Loop(model, train_data, valid_data, config, run_dir, ranks, tracker, extra).run(resume, show_progress)


class _Loop:
    """One training run's moving parts; :meth:`run` is the epoch loop."""

    def __init__(self, model, train_data, valid_data, config: TrainConfig, run_dir: Path, ranks, tracker: Tracker, extra: dict):
        self.model, self.train_data, self.valid_data = model, train_data, valid_data
        self.config, self.run_dir, self.ranks, self.tracker, self.extra = config, run_dir, ranks, tracker, extra
        self.precision = precision.resolve_precision(config.precision, ranks.device)
        if self.precision != "fp32":
            precision.keep_spectral_float32(model)
        self.rank_batch = check_batch_size(config.batch_size, ranks.world_size)
        # The batch order is drawn here, in the main process; worker processes only read the batches.
        pinned = ranks.device.type == "cuda"
        schedule = RankBatches(len(train_data), config.batch_size, ranks, config.seed)
        self.train_batches = BatchLoader(train_data, schedule, config.num_workers, pin_memory=pinned, lend=True)
        self.valid_batches = validation_batches(valid_data, config.eval_batch_size, ranks, config.num_workers)
        self.steps_per_epoch = len(schedule)
        self.loss = training_loss(config, train_data)
        self.optimizer = _optimizer(model, config)
        self.scheduler = _scheduler(self.optimizer, config, self.steps_per_epoch)
        self.scaler = precision.grad_scaler(self.precision, ranks.device)
        self.identity = run_identity(model, train_data, config)
        self.net = model
        if ranks.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[ranks.device] if ranks.device.type == "cuda" else None
            )
        if config.compile:
            self.net = torch.compile(self.net)

    def run(self, resume: bool, show_progress: bool) -> TrainResult:
        progress = state.Progress()
        if resume:
            progress = state.load_state(
                self.run_dir / state.STATE_FILE, self.model, self.optimizer, self.scheduler, self.scaler, self.identity
            )
            self.tracker.restore(progress.history)
        start = time.perf_counter()
        bar_view = _progress_bar(show_progress and self.ranks.is_main)
        with bar_view:
            total = self.config.epochs * self.steps_per_epoch
            bar = bar_view.add_task(
                "train", total=total, completed=progress.step, epoch=progress.epoch, loss=float("nan"), valid=float("nan")
            )
            for epoch in range(progress.epoch, self.config.epochs + 1):
                epoch_start = time.perf_counter()
                if self.ranks.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(self.ranks.device)
                train_loss = self._epoch(epoch, progress, lambda loss: bar_view.update(bar, advance=1, epoch=epoch, loss=loss))
                valid = validate(self.model, self.valid_data, self.config.eval_batch_size, self.ranks, self.valid_batches)
                bar_view.update(bar, valid=valid["nmse"])
                spent = time.perf_counter() - start
                out_of_time = distributed.broadcast_object(0 < self.config.max_minutes * 60 <= spent, self.ranks)
                cost = self._epoch_cost(epoch_start)
                if self._end_epoch(epoch, train_loss, valid, progress, out_of_time, cost):
                    break
        return TrainResult(
            self.run_dir / "checkpoint.pt",
            self.tracker.history,
            time.perf_counter() - start,
            len(self.tracker.history),
            progress.step,
            progress.best_epoch,
            progress.best_nmse,
        )

    def _epoch(self, epoch: int, progress: state.Progress, advance) -> float:
        """One pass over the training samples; returns the mean per-sample loss over all ranks."""
        self.model.train()
        total = torch.zeros(2, dtype=torch.float64)  # loss sum, samples
        self.train_batches.set_epoch(epoch)
        for batch, global_batch in self.train_batches:
            batch = to_device(batch, self.ranks.device)
            losses = self._step(batch, global_batch, epoch, progress.step)
            progress.step += 1
            total += torch.tensor([float(losses.sum()), len(losses)], dtype=torch.float64)
            advance(float(total[0] / total[1]))
        total = distributed.all_reduce_sums(total, self.ranks)
        return float(total[0] / total[1])

    def _step(self, batch: dict, global_batch: int, epoch: int, step: int) -> torch.Tensor:
        device = self.ranks.device
        try:
            with precision.autocast(self.precision, device):
                pred = predict_batch(self.net, batch, device)
            losses = self.loss(pred.float(), batch["target"].to(device), batch["mask"].to(device))
            loss = distributed.scaled_loss(losses, global_batch, self.ranks.world_size)
            if not distributed.all_finite(loss, self.ranks):  # every rank stops together, no rank waits forever
                cases = [self.train_data.case_ids[c] for c in batch["case"].tolist()]
                shown = f"{cases[:4]}{'...' if len(cases) > 4 else ''} frames {batch['frame'].tolist()[:4]}"
                raise CfdbenchError(
                    f"training diverged: loss is {loss.item()} at epoch {epoch}, step {step + 1}, on the batch of cases "
                    f"{shown}; lower --lr or set grad_clip"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.config.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
        except torch.cuda.OutOfMemoryError:
            raise CfdbenchError(
                f"out of GPU memory at batch size {self.rank_batch} per rank ({self.config.batch_size} in all): "
                "lower it with --batch-size"
            ) from None
        return losses.detach().float().cpu()

    def _epoch_cost(self, epoch_start: float) -> dict[str, float]:
        """Wall seconds of the epoch (training and validation) and, on a GPU, its peak memory."""
        cost = {"epoch_seconds": round(time.perf_counter() - epoch_start, 3)}
        if self.ranks.device.type == "cuda":
            cost["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(self.ranks.device) / 2**20, 1)
        return cost

    def _end_epoch(
        self,
        epoch: int,
        train_loss: float,
        valid: dict[str, float],
        progress: state.Progress,
        out_of_time: bool = False,
        cost: dict[str, float] | None = None,
    ) -> bool:
        """Log, keep the best checkpoint, save the state; True when early stopping or the time budget ends the run."""
        record = {"epoch": epoch, "train_loss": train_loss, "lr": self.scheduler.get_last_lr()[0]}
        record |= {f"valid_{k}": v for k, v in valid.items()} | (cost or {})
        improved = valid["nmse"] < progress.best_nmse
        if improved:
            progress.best_nmse, progress.best_epoch, progress.stale_epochs = valid["nmse"], epoch, 0
        else:
            progress.stale_epochs += 1
        stop = 0 < self.config.early_stopping <= progress.stale_epochs
        if stop:
            record["early_stopped"] = True
        if out_of_time:
            record["time_budget_reached"] = True
            stop = True
        progress.epoch = epoch + 1
        if self.ranks.is_main:
            self.tracker.log_epoch(record)
            progress.history = self.tracker.history
            if improved:
                save_checkpoint(self.model, self.run_dir / "checkpoint.pt", epoch=epoch, valid=valid, **self.extra)
            state.save_state(
                self.run_dir / state.STATE_FILE, self.model, self.optimizer, self.scheduler, self.scaler, progress, self.identity
            )
        return stop
