"""The evaluation stage: one-step and rollout scores beside the identity, their predictions,
figures, and the leaderboard entry that records them (also from a saved checkpoint).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from cfdbench.cards import load_model_card
from cfdbench.data.dataset_dir import content_hash
from cfdbench.data.loader import AutoregressiveDataset, Normalization
from cfdbench.data.view import StoredDataset
from cfdbench.entries.entry import (
    SCHEMA_VERSION,
    Entry,
    environment_info,
    make_entry_id,
    save_entry,
    speedup_vs_solver,
)
from cfdbench.entries.predictions import ENCODING, PREDICTIONS_SUFFIX, Predictions
from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.refinement import check_refinable, refine_test_cases
from cfdbench.evaluation.rollout import (
    RolloutResult,
    RolloutTask,
    evaluate_one_step,
    evaluate_rollout,
    rollout_task,
    score_rollouts,
)
from cfdbench.evaluation.spectral_refine import RefineSettings
from cfdbench.io import write_json_atomic
from cfdbench.leaderboard.code import code_identity, constructor_arguments, store_source
from cfdbench.models.base import NeuralOperator
from cfdbench.models.registry import (
    build_model,
    builtin_model_names,
    load_checkpoint,
    model_label,
)
from cfdbench.pipeline.config import PLANAR_FIELDS, RunConfig, check_display_name
from cfdbench.pipeline.datasets import require_dataset
from cfdbench.pipeline.devices import resolve_device
from cfdbench.training.trainer import TrainResult


@dataclass
class Evaluation:
    task: RolloutTask
    one_step: dict[str, dict[str, float]]
    rollout: RolloutResult
    curves: dict
    artifacts: dict[str, str]
    refinement: dict | None = None  # SFNO's spectral refinement, before and after
    refinement_seconds: float = 0.0
    predictions: Predictions | None = None  # the model's predictions the scores were computed from

    def scores(self) -> dict[str, Any]:
        """Every score of the entry that its predictions determine (verification tier B recomputes these)."""
        return {
            "metrics": {"one_step": self.one_step, "rollout": self.rollout.summary()},
            "curves": self.curves,
            "rollout_windows": self.rollout.windows(),
            "valid_time": self.rollout.valid_time(),
            "confidence": self.rollout.confidence(),
            "diverged": self.rollout.diverged,
            "strouhal": self.rollout.strouhal,
            "channel_statistics": self.rollout.channel,
        }

    @property
    def n_cases(self) -> int:
        return len(self.rollout.case_ids)


def evaluate_stage(
    model: NeuralOperator,
    normalization: Normalization,
    dataset: StoredDataset,
    task: RolloutTask,
    run_dir: Path,
    split: str = "test",
    refine: RefineSettings | None = None,
    num_workers: int = 0,
    plots: bool = True,
) -> Evaluation:
    """One-step and rollout scores (model and identity) with the predictions they were computed from,
    the curves JSON and (``plots``) figures in ``run_dir``; with ``refine``, also SFNO's spectral
    refinement of each case's first window. ``num_workers`` processes read the one-step batches."""
    one_step = evaluate_one_step(model, dataset, normalization, task, split, num_workers=num_workers)
    result = evaluate_rollout(model, dataset, normalization, task, split)
    curves, artifacts = write_rollout_artifacts(
        result, model.registered_name, dataset.name, normalization.field_names, run_dir, split, plots
    )
    refinement, seconds = refine_test_cases(model, dataset, normalization, task, split, refine) if refine else (None, 0.0)
    predictions = Predictions(one_step.published, result.published, result.case_ids, normalization.to_dict(), asdict(task))
    return Evaluation(task, dict(one_step), result, curves, artifacts, refinement, seconds, predictions)


def rescore_predictions(predictions: Predictions, dataset: StoredDataset, split: str) -> dict[str, Any]:
    """The scores that published ``predictions`` give on ``dataset``'s ``split``, computed by the same code
    as every evaluation (:meth:`Evaluation.scores`): verification tier B."""
    normalization = Normalization.from_dict(predictions.normalization)
    task = RolloutTask(**predictions.task)
    if list(dataset.split(split)) != predictions.case_ids:
        raise CfdbenchError(f"the predictions are of other cases than the {split} split of {dataset.name}: of other data")
    one_step = evaluate_one_step(None, dataset, normalization, task, split, replay=predictions.one_step)
    result = score_rollouts(None, dataset, normalization.field_names, task, split, replay=predictions.rollout)
    curves = {"steps": list(range(1, task.steps + 1)), **result.curves()}
    return Evaluation(task, dict(one_step), result, curves, {}).scores()


def write_rollout_artifacts(
    result: RolloutResult,
    model: str,
    dataset: str,
    fields: tuple[str, ...],
    run_dir: Path,
    split: str = "test",
    plots: bool = True,
) -> tuple[dict, dict[str, str]]:
    """(curves, artifact files) of a scored rollout: the curves JSON and, with ``plots``, NMSE curves,
    fields, animation, spectra or channel profiles, written to ``run_dir``."""
    task = result.task
    curves = {"steps": list(range(1, task.steps + 1)), **result.curves()}
    write_json_atomic(
        run_dir / "rollout_curves.json", {"task": asdict(task), "split": split, "case_ids": result.case_ids, **curves}
    )
    if not plots:
        return curves, {"curves_json": "rollout_curves.json"}
    from cfdbench.plots import animate_rollout, plot_channel_profiles, plot_fields, plot_rollout_curves, plot_spectra

    title = f"{model_label(model)} on {dataset} ({split}, {len(result.case_ids)} cases)"
    plot_rollout_curves(curves, curves["steps"], run_dir / "rollout_nmse.png", title)
    plot_fields(result.example, fields, curves["steps"], run_dir / "fields.png", title)
    animate_rollout(result.example, fields, curves["steps"], run_dir / "rollout.gif", title)
    artifacts = {
        "curves_json": "rollout_curves.json",
        "curve_plot": "rollout_nmse.png",
        "fields_plot": "fields.png",
        "rollout_gif": "rollout.gif",
    }
    if result.channel_profiles:
        artifacts["channel_plot"] = plot_channel_profiles(result.channel_profiles, run_dir / "channel_profiles.png", title).name
    elif {"u", "v"} <= set(fields):
        artifacts["spectra_plot"] = plot_spectra(result.example, fields, curves["steps"], run_dir / "spectra.png", title).name
    return curves, artifacts


def build_entry(
    model: NeuralOperator,
    dataset: StoredDataset,
    evaluation: Evaluation,
    config: RunConfig,
    training: TrainResult | None,
    split: str = "test",
) -> Entry:
    """A leaderboard entry: everything needed to know what was measured, on what, and how (the
    operator's code identity, its constructor arguments and the whole training recipe included)."""
    hardware, software, commit = environment_info()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    spec = model.registered_name
    card = load_model_card(spec) if spec in builtin_model_names() else None
    name = config.name or model_label(spec)
    return Entry(
        schema_version=SCHEMA_VERSION,
        entry_id=make_entry_id(name, dataset.name, now),
        date=now.isoformat().replace("+00:00", "Z"),
        model={
            "name": name,
            "card": f"models/{spec}.yaml" if card else None,
            **({} if card else {"source": spec}),
            "config": constructor_arguments(model),
            "parameter_count": model.parameter_count(),
            "reference_parameter_count": card.reference_parameter_count if card else None,
        },
        code=code_identity(type(model), spec),
        dataset={
            "name": dataset.name,
            "version": str(dataset.metadata.version or "unknown"),
            "content_hash": content_hash(dataset.path),
            "split": split,
            "n_cases": evaluation.n_cases,
            "case_ids": list(evaluation.rollout.case_ids),
        },
        task={
            "input_frames": evaluation.task.input_frames,
            "stride": evaluation.task.stride,
            "rollout_steps": evaluation.task.steps,
            "start_frame": evaluation.task.start_frame,
            "fields": list(model.meta.fields),
        },
        **evaluation.scores(),
        cost=_cost(model, dataset, evaluation),
        refinement=evaluation.refinement,
        training=_training_block(config, training),
        hardware=hardware,
        software=software,
        seed=int(config.training.get("seed", 0)),
        git_commit=commit,
        artifacts=evaluation.artifacts,
    )


def _training_block(config: RunConfig, training: TrainResult | None) -> dict[str, Any] | None:
    """The entry's recipe: every training setting that ran (and where each came from, when known), with
    the time, epochs and steps of the training this run did; None for a model that was never trained."""
    if training is None and not config.training:
        return None
    block: dict[str, Any] = {"config": config.training}
    if config.training_sources:
        block["config_sources"] = config.training_sources
    if training is not None:
        block |= {"seconds": round(training.seconds, 2), "epochs": training.epochs, "steps": training.steps}
        block["device"] = config.device
    return block


def write_entry(entry: Entry, model_class: type[NeuralOperator], evaluation: Evaluation, run_dir: Path) -> Entry:
    """Save ``run_dir/entry.json`` with what it needs beside it: the predictions its scores were computed
    from (``<entry_id>.predictions.npz``) and a plug-in's source (``code/<sha256>.py``); returns the entry
    as saved."""
    store_source(entry["code"], model_class, run_dir)
    if evaluation.predictions is not None:
        name = f"{entry['entry_id']}{PREDICTIONS_SUFFIX}"
        digest = evaluation.predictions.save(run_dir / name)
        entry = replace(entry, predictions={"file": name, "sha256": digest, "encoding": ENCODING})
    save_entry(entry, run_dir / "entry.json")
    return entry


def evaluate_checkpoint(
    checkpoint: Path,
    dataset: str,
    split: str = "test",
    steps: int = 20,
    start_frame: int | None = None,
    device: str = "auto",
    run_dir: Path | None = None,
    refine: RefineSettings | None = None,
    num_workers: int = 0,
    name: str | None = None,
    model_class: type[NeuralOperator] | None = None,
    plots: bool = True,
) -> tuple[Evaluation, Entry]:
    """Score a checkpoint on a stored dataset: (evaluation, entry), the model built as ``model_class``
    when given (an entry's stored plug-in source). With ``run_dir``, the entry is written there with
    its predictions and code (:func:`write_entry`), and the plots (``plots``); without, the plots go
    to a temporary folder that is removed (as for ``cfdbench leaderboard verify``)."""
    import tempfile

    check_display_name(name)
    torch_device = resolve_device(device)
    data = require_dataset(dataset)
    model, extra = load_checkpoint(checkpoint, map_location=torch_device, model_class=model_class)
    check_checkpoint_fits(model, data, checkpoint)
    if refine:
        check_refinable(type(model), data.metadata.problem, data.name)
    training = extra.get("train_config", {})
    task = rollout_task(data, model.meta.input_frames, int(training.get("stride", 1)), steps, start_frame)
    config = RunConfig(
        model.registered_name, data.name, model.hparams, training, str(torch_device), steps, task.start_frame, name=name
    )
    if model.hybrid_solver:
        with tempfile.TemporaryDirectory(prefix="cfdbench-evaluate-") as scratch:
            folder = Path(run_dir or scratch)
            folder.mkdir(parents=True, exist_ok=True)
            evaluation, hybrid = evaluate_hybrid(model, data, task, torch_device, folder, split)
        entry = replace(build_entry(model, data, evaluation, config, None, split), hybrid=hybrid)
    else:
        normalization = Normalization.from_dict(extra["normalization"])
        with tempfile.TemporaryDirectory(prefix="cfdbench-evaluate-") as scratch:
            folder = Path(run_dir or scratch)
            folder.mkdir(parents=True, exist_ok=True)
            evaluation = evaluate_stage(model, normalization, data, task, folder, split, refine, num_workers, plots)
        entry = build_entry(model, data, evaluation, config, None, split)
    return evaluation, write_entry(entry, type(model), evaluation, Path(run_dir)) if run_dir else entry


def _cost(model: NeuralOperator, dataset: StoredDataset, evaluation: Evaluation) -> dict[str, Any]:
    """Parameters, the model's inference time per case (cases batched), and the speed-up over the
    generator's recorded time per case for the same physical time (:mod:`cfdbench.evaluation.cost`)."""
    from cfdbench.evaluation.cost import solver_block

    cost = {"parameter_count": model.parameter_count(), **evaluation.rollout.cost(), "device": str(model.device)}
    if evaluation.refinement:
        cost["refinement_seconds"] = evaluation.refinement_seconds
    task = evaluation.task
    solver = solver_block(dataset.name, model.device.type, task.steps * task.stride)
    cost["solver"] = solver
    if solver is not None:
        cost["speedup_vs_solver"] = speedup_vs_solver(cost)
    return cost


def check_checkpoint_fits(model: NeuralOperator, data: StoredDataset, checkpoint: Path) -> None:
    """Refuse, in one line, a checkpoint trained on data of another shape: other parameters, fields
    or frame grid than the dataset it is evaluated on."""
    if model.hybrid_solver:
        return  # a hybrid re-runs the dataset's own solver; check_applicable says what it supports
    with data.open_case(data.split("train")[0]) as case:  # one case's metadata (a remote dataset fetches just it)
        names, grid = tuple(case.params), tuple(case.shape)
    for what, ours, other in (
        ("case parameters", model.meta.parameter_names or model.meta.n_params, names or len(names)),
        ("frame grid", tuple(model.meta.grid_shape), grid),
    ):
        if ours != other:
            raise CfdbenchError(
                f"{checkpoint} was trained on data with {what} {ours}, but {data.name} has {other}: "
                "evaluate it on the dataset it was trained for (or one of the same shape)"
            )


def evaluate_hybrid(
    model: NeuralOperator, data: StoredDataset, task: RolloutTask, device: torch.device, run_dir: Path, split: str = "test"
) -> tuple[Evaluation, dict]:
    """Re-run ``split`` with a trained hybrid solver and score it beside the identity: (evaluation,
    the entry's ``hybrid`` block); figures and curves in ``run_dir``."""
    from cfdbench.evaluation.hybrid import hybrid_summary, score_hybrid, simulate_hybrid

    runs = simulate_hybrid(model, data, list(data.split(split)), task, device)
    result, one_step, reproduction = score_hybrid(runs, data, PLANAR_FIELDS, task, split)
    normalization = AutoregressiveDataset(data, "train", fields=PLANAR_FIELDS).normalization  # what the identity's one-step uses
    identity = evaluate_one_step(build_model("identity", model.meta), data, normalization, task, split)["identity"]
    curves, artifacts = write_rollout_artifacts(result, model.registered_name, data.name, PLANAR_FIELDS, run_dir, split)
    return Evaluation(task, {"model": one_step, "identity": identity}, result, curves, artifacts), hybrid_summary(
        model, runs, reproduction
    )
