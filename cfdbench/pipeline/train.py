"""The training stage of a run, on one process or on every rank under torchrun, and ``cfdbench train``
(a new run or a resumed one)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from cfdbench.data.batches import Ranks
from cfdbench.data.loader import AutoregressiveDataset, Normalization
from cfdbench.data.view import StoredDataset
from cfdbench.io import folder_lock, write_json_atomic
from cfdbench.models.base import NeuralOperator, OperatorMeta
from cfdbench.models.registry import (
    build_model,
    load_checkpoint,
)
from cfdbench.pipeline.config import (
    DEFAULT_DATASET,
    DEFAULT_MODEL,
    PLANAR_FIELDS,
    VOLUME_FIELDS,
    RunConfig,
    check_resume_flags,
    new_run_dir,
    resolve_run_config,
    resume_config,
)
from cfdbench.pipeline.datasets import require_dataset
from cfdbench.pipeline.devices import resolve_device
from cfdbench.training.distributed import broadcast_object, init_distributed, shutdown
from cfdbench.training.tracking import Tracker
from cfdbench.training.trainer import TrainConfig, TrainResult, check_model, seed_everything, train


def operator_meta(samples: AutoregressiveDataset) -> OperatorMeta:
    """The data's description for a model: sizes from the dataset's typed metadata, the window from the samples."""
    return OperatorMeta.from_dataset(samples.dataset.metadata, samples.fields, samples.input_frames, samples.output_frames)


def train_stage(
    config: RunConfig,
    dataset: StoredDataset,
    run_dir: Path,
    show_progress: bool = True,
    resume: bool = False,
    ranks: Ranks | None = None,
    tracker: Tracker | None = None,
) -> tuple[NeuralOperator, TrainResult, Normalization]:
    """Build the model from the resolved config and train it; returns the best checkpoint's model
    (on rank 0; other ranks of a distributed run get their final in-memory model). A ``tracker``
    passed in stays open for the caller (to log the evaluation); otherwise one is opened and closed."""
    ranks = ranks or Ranks(device=torch.device(config.device))
    train_config = TrainConfig.from_dict(config.training)
    seed_everything(train_config.seed)
    fields = VOLUME_FIELDS if dataset.n_spatial_dims == 3 else PLANAR_FIELDS
    window = {name: getattr(train_config, name) for name in ("input_frames", "output_frames", "stride")}
    train_data = AutoregressiveDataset(dataset, "train", fields=fields, **window)
    valid_data = AutoregressiveDataset(dataset, "valid", fields=fields, normalization=train_data.normalization, **window)
    model = build_model(config.model, operator_meta(train_data), **config.model_hparams)
    check_model(model.to(ranks.device), train_data, ranks.device)  # before the run folder exists
    # One trainer per run folder: a second `train --resume` on it is refused, naming the first.
    with folder_lock(run_dir, "training", "training") if ranks.is_main else nullcontext():
        if ranks.is_main:
            write_json_atomic(run_dir / "config.json", asdict(config))
        own_tracker = tracker is None
        tracker = tracker or Tracker(run_dir, asdict(config), train_config.wandb if ranks.is_main else "off")
        try:
            result = train(
                model, train_data, valid_data, train_config, run_dir, ranks.device, show_progress, resume, ranks, tracker
            )
        finally:
            if own_tracker:
                tracker.finish()
    if not ranks.is_main:
        return model, result, train_data.normalization
    best, extra = load_checkpoint(result.checkpoint, map_location=ranks.device)
    return best, result, Normalization.from_dict(extra["normalization"])


def train_on_ranks(config: RunConfig, run_dir: Path | None, resume: bool = False) -> tuple[TrainResult | None, Path]:
    """``cfdbench train`` on one process or, under torchrun, on every rank (DDP); returns rank 0's
    result (None on the other ranks) and the run folder all ranks share."""
    ranks = init_distributed(torch.device(config.device))
    clean = False
    try:
        data = require_dataset(config.dataset)
        folder = broadcast_object(run_dir or new_run_dir(config.model, data.name), ranks)
        _, result, _ = train_stage(replace(config, device=str(ranks.device)), data, Path(folder), ranks.is_main, resume, ranks)
        clean = True
        return (result if ranks.is_main else None), Path(folder)
    finally:
        shutdown(ranks, clean)


def train_run(
    model: str | None,
    dataset: str | None,
    device: str = "auto",
    overrides: dict[str, Any] | None = None,
    settings: list[str] | None = None,
    epochs: int | None = None,
    num_workers: int | None = None,
    run_dir: Path | None = None,
    resume: Path | None = None,
) -> tuple[RunConfig, TrainResult | None, Path]:
    """``cfdbench train``: a new run of ``model`` on ``dataset`` (defaults: the main job's), its card's
    settings under the command line's ``overrides`` (None: keep) and ``--set`` ``settings``; or, with
    ``resume``, the run in that folder continued exactly where it stopped (flags that contradict its
    saved settings are refused; only ``epochs`` and the reader processes may change). Returns the
    configuration, rank 0's result (None on the other ranks) and the run folder."""
    overrides = dict(overrides or {})
    if resume is not None:
        config = resume_config(resume, device, epochs, num_workers)
        check_resume_flags(resume, config, model, dataset, overrides, settings or [], run_dir)
        result, folder = train_on_ranks(config, resume, resume=True)
        return config, result, folder
    overrides |= {"epochs": epochs, "num_workers": num_workers}
    config = resolve_run_config(
        model or DEFAULT_MODEL, dataset or DEFAULT_DATASET, resolve_device(device), overrides, settings=settings
    )
    result, folder = train_on_ranks(config, run_dir)
    return config, result, folder
