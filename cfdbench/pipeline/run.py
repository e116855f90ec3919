"""The main job behind ``cfdbench run``: data -> training -> rollout evaluation -> entry."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from cfdbench.cards import project_root
from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.data.view import StoredDataset
from cfdbench.entries.entry import (
    Entry,
)
from cfdbench.evaluation.rollout import (
    rollout_task,
)
from cfdbench.evaluation.spectral_refine import RefineSettings
from cfdbench.io import write_json_atomic
from cfdbench.models.base import NeuralOperator
from cfdbench.models.registry import (
    build_model,
    get_model_class,
    save_checkpoint,
)
from cfdbench.pipeline.config import DEFAULT_DATASET, DEFAULT_MODEL, PLANAR_FIELDS, RunConfig, new_run_dir, prepare_run
from cfdbench.pipeline.datasets import GenerationProgress, ensure_dataset
from cfdbench.pipeline.evaluate import Evaluation, build_entry, evaluate_hybrid, evaluate_stage, write_entry
from cfdbench.pipeline.train import operator_meta, train_stage
from cfdbench.training.tracking import Tracker
from cfdbench.training.trainer import TrainConfig, TrainResult, seed_everything


def hybrid_stage(config: RunConfig, data: StoredDataset, run_dir: Path) -> tuple[NeuralOperator, Evaluation, TrainResult, dict]:
    """A hybrid solver's run (DCDM): train its network on a training case's pressure system, re-run
    the test cases with it, and score them like a model; returns (model, evaluation, training, the
    entry's ``hybrid`` block)."""
    from cfdbench.training.hybrid import train_hybrid

    seed = TrainConfig.from_dict(config.training).seed
    seed_everything(seed)
    samples = AutoregressiveDataset(data, "train", fields=PLANAR_FIELDS)
    model = build_model(config.model, operator_meta(samples), **config.model_hparams)
    losses, seconds = train_hybrid(model, data, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", asdict(config))
    checkpoint = save_checkpoint(model, run_dir / "checkpoint.pt", train_config=config.training, losses=losses)
    task = rollout_task(data, 1, 1, config.rollout_steps, config.start_frame)
    evaluation, hybrid = evaluate_hybrid(model, data, task, torch.device(config.device), run_dir)
    training = TrainResult(checkpoint, [{"loss": loss} for loss in losses], seconds, 0, len(losses), 0, float("nan"))
    return model, evaluation, training, hybrid


def run(
    model: str = DEFAULT_MODEL,
    dataset: str = DEFAULT_DATASET,
    device: str = "auto",
    overrides: dict[str, Any] | None = None,
    rollout_steps: int = 20,
    runs_root: Path | None = None,
    publish: bool = False,
    show_progress: bool = True,
    generation_progress: GenerationProgress | None = None,
    settings: list[str] | None = None,
    refine: RefineSettings | None = None,
    name: str | None = None,
) -> tuple[Path, Entry]:
    """Generate (if needed), train, evaluate (with SFNO's spectral refinement when ``refine``) and
    write an entry (shown as ``name``); returns (run folder, entry)."""
    config = prepare_run(model, dataset, device, overrides, rollout_steps, settings, name, refine is not None)
    return run_prepared(config, runs_root, publish, show_progress, generation_progress, refine)


def run_prepared(
    config: RunConfig,
    runs_root: Path | None = None,
    publish: bool = False,
    show_progress: bool = True,
    generation_progress: GenerationProgress | None = None,
    refine: RefineSettings | None = None,
) -> tuple[Path, Entry]:
    """:func:`run` once :func:`prepare_run` has checked the configuration."""
    model, dataset, rollout_steps = config.model, config.dataset, config.rollout_steps
    data = ensure_dataset(dataset, device=config.device, progress=generation_progress)
    run_dir = new_run_dir(model, data.name, runs_root)
    if get_model_class(model).hybrid_solver:
        trained, evaluation, result, hybrid = hybrid_stage(config, data, run_dir)
        entry = replace(build_entry(trained, data, evaluation, config, result), hybrid=hybrid)
        entry = write_entry(entry, type(trained), evaluation, run_dir)
        if publish:
            publish_entry(run_dir / "entry.json", entry)
        return run_dir, entry
    train_config = TrainConfig.from_dict(config.training)
    tracker = Tracker(run_dir, asdict(config), train_config.wandb)
    try:
        trained, result, normalization = train_stage(config, data, run_dir, show_progress, tracker=tracker)
        task = rollout_task(data, train_config.input_frames, train_config.stride, rollout_steps, config.start_frame)
        evaluation = evaluate_stage(
            trained, normalization, data, task, run_dir, refine=refine, num_workers=train_config.num_workers
        )
        curves = {f"{who}_nmse": evaluation.curves[who]["nmse"]["mean"] for who in ("model", "identity")}
        figures = {name: run_dir / file for name, file in evaluation.artifacts.items() if file.endswith(".png")}
        tracker.log_media(curves, figures)
    finally:
        tracker.finish()
    entry = write_entry(build_entry(trained, data, evaluation, config, result), type(trained), evaluation, run_dir)
    if publish:
        publish_entry(run_dir / "entry.json", entry)
    return run_dir, entry


def publish_entry(entry_path: Path, entry: Entry) -> Path:
    """Submit an entry to the repository's ``leaderboard/entries/<dataset>/`` (``leaderboard submit``)."""
    from cfdbench.leaderboard.submit import submit_run

    return submit_run(entry_path, project_root() / "leaderboard" / "entries")
