"""The end-to-end path behind ``cfdbench run``: data -> training -> rollout evaluation -> entry.

Each stage is also a CLI command of its own (``data generate``, ``train``, ``evaluate``);
this module holds the one implementation they share.
"""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from cfdbench.cards import ChannelCard, data_root, find_card, load_dataset_card, load_model_card, project_root
from cfdbench.data.batches import Ranks
from cfdbench.data.dataset_dir import content_hash, verify_checksums
from cfdbench.data.download import sha256_of
from cfdbench.data.loader import AutoregressiveDataset, Normalization
from cfdbench.data.remote import is_url, open_remote
from cfdbench.data.resolve import dataset_folder, open_dataset
from cfdbench.data.view import StoredDataset
from cfdbench.entries.entry import (
    SCHEMA_VERSION,
    Entry,
    entry_paths,
    environment_info,
    load_entry,
    make_entry_id,
    save_entry,
    speedup_vs_solver,
)
from cfdbench.entries.predictions import ENCODING, PREDICTIONS_SUFFIX, Predictions
from cfdbench.errors import CfdbenchError, DatasetNotFoundError
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
from cfdbench.io import folder_lock, write_json_atomic
from cfdbench.leaderboard.awaiting import awaiting_reason, awaiting_reruns
from cfdbench.leaderboard.code import code_identity, constructor_arguments, load_operator, store_source
from cfdbench.leaderboard.verify import PREDICTIONS_RTOL, VERIFY_RTOL, compare_numbers, compare_tier
from cfdbench.models.base import NeuralOperator, OperatorMeta
from cfdbench.models.registry import (
    build_model,
    builtin_model_names,
    get_model_class,
    load_checkpoint,
    model_label,
    save_checkpoint,
)
from cfdbench.training.distributed import broadcast_object, init_distributed, shutdown
from cfdbench.training.tracking import Tracker
from cfdbench.training.trainer import TrainConfig, TrainResult, check_model, seed_everything, train

DEFAULT_DATASET = "cavity-mini"
DEFAULT_MODEL = "fno"
PLANAR_FIELDS, VOLUME_FIELDS = ("u", "v"), ("u", "v", "w")  # the velocity a model predicts, 2D and 3D


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` picks CUDA when available (the rank's own GPU under torchrun), else the CPU;
    anything else is passed to torch."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count()) if local_rank is not None else torch.device("cuda")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CfdbenchError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CfdbenchError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return device


def ensure_dataset(
    name: str,
    fmt: str = "hdf5",
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> StoredDataset:
    """Open a dataset, generating it from its card first when it is not there (or incomplete); a URL
    is opened as it is (its cases are verified as they are fetched)."""
    if is_url(name):
        return open_remote(name)
    path = dataset_folder(name)
    if not (path / "manifest.json").is_file():
        card = find_card(name)
        if isinstance(card, ChannelCard):  # one DNS run; zarr, as `data generate` stores volumes
            from cfdbench.data.generate_channel import generate_channel_dataset

            path = data_root() / card.name
            generate_channel_dataset(card, path, fmt="zarr", device=device)
            return open_dataset(path)
        from cfdbench.data.generate import generate_dataset

        generate_dataset(card, data_root() / card.name, fmt=fmt, device=device, progress=progress)
        path = data_root() / card.name
    return verified_dataset(path)


def verified_dataset(path: Path) -> StoredDataset:
    """The dataset at ``path``, once its case files match their manifest's checksums (cached per file)."""
    verify_checksums(path)
    return open_dataset(path)


def dataset_problem(name: str) -> str | None:
    """The flow a dataset holds (cavity, tube, dam, cylinder, channel), from its stored manifest or
    else its card; None when neither says."""
    if is_url(name):
        return open_remote(name).metadata.problem
    path = dataset_folder(name)
    if (path / "manifest.json").is_file():
        return open_dataset(path).metadata.problem
    return find_card(name).problem


def require_dataset(name: str, verify: bool = True) -> StoredDataset:
    """Open a dataset that must already exist (``verify``: its case files must match the manifest's
    checksums; at a URL, each case is verified as it is fetched); the error says how to get it."""
    if is_url(name):
        return open_remote(name)
    path = dataset_folder(name)
    if not (path / "manifest.json").is_file():
        load_dataset_card(name)  # unknown names list the valid ones
        raise DatasetNotFoundError(
            f"dataset '{name}' is not at {path}; generate it with `cfdbench data generate {name}` "
            f"(or set CFDBENCH_DATA to where it lives)"
        )
    return verified_dataset(path) if verify else open_dataset(path)


# --------------------------------------------------------------------------- configuration


@dataclass
class RunConfig:
    """The resolved configuration of one run, saved beside the checkpoint and in the entry: every
    training setting that runs (``training``) and where each came from (``training_sources``)."""

    model: str
    dataset: str
    model_hparams: dict[str, Any]
    training: dict[str, Any]
    device: str
    rollout_steps: int = 20
    start_frame: int | None = None  # None: where the dataset card starts rollouts
    training_sources: dict[str, str] = field(default_factory=dict)  # setting -> card, default or command line
    name: str | None = None  # the leaderboard's display name (default: from the model spec)


def resolve_run_config(
    model: str,
    dataset: str,
    device: torch.device,
    overrides: dict[str, Any] | None = None,
    rollout_steps: int = 20,
    settings: list[str] | None = None,
    name: str | None = None,
) -> RunConfig:
    """Model-card defaults for this dataset, then command-line overrides (``None`` = keep), then
    ``--set section.key=value`` settings (``model.`` or ``training.``; values parsed as YAML), over the
    trainer's defaults: the run's whole training configuration, each setting with its source."""
    model_class = get_model_class(model)  # unknown names fail here, listing the valid ones
    card = load_model_card(model) if model in builtin_model_names() else None
    hparams, from_card = card.resolve(dataset) if card else ({}, {})
    from_command_line = {k: v for k, v in (overrides or {}).items() if v is not None}
    for section, key, value in parse_settings(settings or []):
        (hparams if section == "model" else from_command_line)[key] = value
    training = asdict(TrainConfig.from_dict({**from_card, **from_command_line}))  # validated before any work
    sources = {key: "command line" if key in from_command_line else "card" if key in from_card else "default" for key in training}
    _check_hparams(model, model_class, hparams)
    if rollout_steps < 1:
        raise CfdbenchError(f"rollout steps must be >= 1, got {rollout_steps}")
    check_display_name(name)
    return RunConfig(model, dataset, hparams, training, str(device), rollout_steps, training_sources=sources, name=name)


def check_display_name(name: str | None) -> None:
    """Refuse a ``--name`` the leaderboard cannot show or file: letters, digits, '.', '_' and '-' only."""
    import re

    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise CfdbenchError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (first a letter or digit), at most 100")


def parse_settings(settings: list[str]) -> list[tuple[str, str, Any]]:
    """``training.lr=3e-4`` -> ("training", "lr", 0.0003); any other form is refused, saying which to use."""
    import yaml

    parsed = []
    for item in settings:
        name, sep, text = item.partition("=")
        section, dot, key = name.partition(".")
        if not sep or not dot or section not in ("model", "training") or not key:
            raise CfdbenchError(f"--set {item!r}: use model.<key>=<value> or training.<key>=<value>")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise CfdbenchError(f"--set {item!r}: the value is not valid YAML ({err.__class__.__name__})") from None
        parsed.append((section, key, _number_if_numeric(value)))
    return parsed


def _number_if_numeric(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` (no decimal point) as a string; a string that is a number becomes one."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_hparams(name: str, model_class: type, hparams: dict[str, Any]) -> None:
    """Refuse constructor settings the model does not take (a typo would otherwise surface mid-run)."""
    import inspect

    signature = inspect.signature(model_class.__init__)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    accepted = set(signature.parameters) - {"self", "meta"}
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise CfdbenchError(f"model '{name}' has no settings {unknown}; valid: {sorted(accepted)}")


def operator_meta(samples: AutoregressiveDataset) -> OperatorMeta:
    """The data's description for a model: sizes from the dataset's typed metadata, the window from the samples."""
    return OperatorMeta.from_dataset(samples.dataset.metadata, samples.fields, samples.input_frames, samples.output_frames)


def new_run_dir(model: str, dataset: str, root: Path | None = None) -> Path:
    """A fresh run folder path; training creates it once the model has passed its checks."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return (root or Path("runs")) / f"{stamp}-{model_label(model)}-{dataset}"


# --------------------------------------------------------------------------- stages


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
            result = train(model, train_data, valid_data, train_config, run_dir, ranks.device, show_progress, resume, ranks, tracker)
        finally:
            if own_tracker:
                tracker.finish()
    if not ranks.is_main:
        return model, result, train_data.normalization
    best, extra = load_checkpoint(result.checkpoint, map_location=ranks.device)
    return best, result, Normalization.from_dict(extra["normalization"])


def resume_config(run_dir: Path, device: str = "auto", epochs: int | None = None, num_workers: int | None = None) -> RunConfig:
    """The saved configuration of a run to resume, on ``device``; only its epoch count may change,
    and not under a cosine or one-cycle schedule (which was sized for the original count), and its reader
    processes (``num_workers``: the batches are the same for any count)."""
    import json

    path = Path(run_dir) / "config.json"
    try:
        config = RunConfig(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise CfdbenchError(f"cannot resume {run_dir}: no readable config.json ({err.__class__.__name__})") from None
    config = replace(config, device=str(resolve_device(device)))
    saved = TrainConfig.from_dict(config.training)
    if epochs is not None and epochs != saved.epochs:
        if saved.scheduler in ("cosine", "onecycle"):
            raise CfdbenchError(
                f"cannot resume {run_dir} with --epochs {epochs}: its {saved.scheduler} schedule spans {saved.epochs}"
            )
        config.training["epochs"] = epochs
    if num_workers is not None:
        config.training["num_workers"] = num_workers
        TrainConfig.from_dict(config.training)
    return config


def check_resume_flags(
    run_dir: Path,
    config: RunConfig,
    model: str | None,
    dataset: str | None,
    overrides: dict[str, Any],
    settings: list[str],
    new_run_dir: Path | None = None,
) -> None:
    """Refuse, in one line, flags given with ``--resume`` that contradict the run being resumed: a
    resumed run keeps its saved model, data and settings (flags that repeat them are accepted)."""
    conflicts = []
    if model is not None and model != config.model:
        conflicts.append(f"--model {model} (it trains {config.model})")
    if dataset is not None and not _same_dataset(dataset, config.dataset):
        conflicts.append(f"--dataset {dataset} (it trains on {config.dataset})")
    if new_run_dir is not None and Path(new_run_dir).resolve() != Path(run_dir).resolve():
        conflicts.append(f"--run-dir {new_run_dir} (it lives in {run_dir})")
    for key, value in overrides.items():
        if value is not None and config.training.get(key) != value:
            conflicts.append(f"--{key.replace('_', '-')} {value} (it has {config.training.get(key)})")
    for section, key, value in parse_settings(settings):
        saved = (config.model_hparams if section == "model" else config.training).get(key)
        if saved != value:
            conflicts.append(f"--set {section}.{key}={value} (it has {saved})")
    if conflicts:
        raise CfdbenchError(
            f"cannot resume {run_dir} with {'; '.join(conflicts)}: a resumed run keeps its settings "
            "(only --epochs may change); start a new run for others"
        )


def _same_dataset(a: str, b: str) -> bool:
    """Whether two dataset arguments name the same data: equal, or local paths to one folder."""
    if a == b or is_url(a) or is_url(b):
        return a == b
    return dataset_folder(a).resolve() == dataset_folder(b).resolve()


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


def check_model_for_dataset(model: str, dataset: str, refine: bool = False) -> None:
    """Refuse, before any data are generated, a model that cannot run on the dataset's flow: SFNO's
    refinement on data without a residual, a hybrid solver on a flow whose pressure it does not solve."""
    model_class = get_model_class(model)
    if refine:
        check_refinable(model_class, dataset_problem(dataset), dataset)
    if model_class.hybrid_solver:
        from cfdbench.evaluation.hybrid import check_hybrid

        check_hybrid(dataset_problem(dataset), dataset)


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


def run(
    model: str = DEFAULT_MODEL,
    dataset: str = DEFAULT_DATASET,
    device: str = "auto",
    overrides: dict[str, Any] | None = None,
    rollout_steps: int = 20,
    runs_root: Path | None = None,
    publish: bool = False,
    show_progress: bool = True,
    generation_progress: Callable[[int, int], None] | None = None,
    settings: list[str] | None = None,
    refine: RefineSettings | None = None,
    name: str | None = None,
) -> tuple[Path, Entry]:
    """Generate (if needed), train, evaluate (with SFNO's spectral refinement when ``refine``) and
    write an entry (shown as ``name``); returns (run folder, entry)."""
    config = prepare_run(model, dataset, device, overrides, rollout_steps, settings, name, refine is not None)
    return run_prepared(config, runs_root, publish, show_progress, generation_progress, refine)


def prepare_run(
    model: str = DEFAULT_MODEL,
    dataset: str = DEFAULT_DATASET,
    device: str = "auto",
    overrides: dict[str, Any] | None = None,
    rollout_steps: int = 20,
    settings: list[str] | None = None,
    name: str | None = None,
    refine: bool = False,
) -> RunConfig:
    """Every check of a run that needs no data, before any work: the resolved configuration (bad
    settings refused), and a model that cannot run on the dataset's flow refused."""
    config = resolve_run_config(model, dataset, resolve_device(device), overrides, rollout_steps, settings, name)
    check_model_for_dataset(model, dataset, refine)
    return config


def run_prepared(
    config: RunConfig,
    runs_root: Path | None = None,
    publish: bool = False,
    show_progress: bool = True,
    generation_progress: Callable[[int, int], None] | None = None,
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
        evaluation = evaluate_stage(trained, normalization, data, task, run_dir, refine=refine, num_workers=train_config.num_workers)
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


# --------------------------------------------------------------------------- verification tiers B and C
#
# An entry's scores recomputed by the evaluation's own code, from the predictions published beside
# it (B) or by re-running a checkpoint (C), each a list of the problems found (empty: verified). Here,
# beside the evaluation they repeat; tier A, which needs only the repository, is leaderboard.verify.


# tier B


def verify_predictions(entry_path: Path, dataset: str | Path | None = None, rtol: float = PREDICTIONS_RTOL) -> list[str]:
    """Tier B: recompute every score of the entry at ``entry_path`` from the predictions published beside
    it on ``dataset`` (default: the entry's dataset by name in the data folder); the differences."""
    entry = load_entry(entry_path)
    if entry.predictions is None:
        raise CfdbenchError(f"{entry_path}: publishes no predictions, so tier B cannot recompute its scores: re-run it")
    file = Path(entry_path).parent / entry.predictions["file"]
    if not file.is_file():
        raise CfdbenchError(f"{entry_path}: its predictions file {file.name} is not beside it")
    if sha256_of(file) != entry.predictions["sha256"]:
        raise CfdbenchError(f"{file}: does not match its entry (SHA-256 {entry.predictions['sha256'][:12]}... in {entry_path})")
    predictions = Predictions.load(file)
    data = require_dataset(str(dataset or entry.dataset["name"]))
    if content_hash(data.path) != entry.dataset["content_hash"]:
        raise CfdbenchError(
            f"{entry_path}: the local {entry.dataset['name']} has content hash {content_hash(data.path)[:12]}..., the "
            f"entry's is {entry.dataset['content_hash'][:12]}...: tier B needs the same data"
        )
    task = {key: entry.task[key] for key in ("input_frames", "stride", "start_frame")} | {"steps": entry.task["rollout_steps"]}
    if predictions.case_ids != entry.dataset["case_ids"] or predictions.task != task:
        raise CfdbenchError(f"{file}: holds the predictions of another task or split than its entry's")
    return compare_tier(entry, rescore_predictions(predictions, data, entry.dataset["split"]), "B", rtol)


def verify_all_predictions(entries_root: Path, dataset_root: Path | None = None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Tier B over every entry under ``entries_root``: ({entry path: problems} of those with predictions,
    {entry path: reason} of those awaiting a re-run); an entry with neither is a problem."""
    awaiting = awaiting_reruns(entries_root)
    checked, waiting = {}, {}
    for path in entry_paths(entries_root):
        entry = load_entry(path)
        if entry.predictions is not None:
            dataset = Path(dataset_root) / entry.dataset["name"] if dataset_root else None
            checked[str(path)] = verify_predictions(path, dataset)
            continue
        reason = awaiting_reason(path, entries_root, awaiting)
        if reason is None:
            checked[str(path)] = [f"{path}: publishes no predictions and is not listed as awaiting a re-run"]
        else:
            waiting[str(path)] = reason
    return checked, waiting


# tier C


def verify_checkpoint(
    entry_path: Path, checkpoint: Path, device: str = "auto", rtol: float = VERIFY_RTOL, dataset: str | Path | None = None
) -> list[str]:
    """Tier C: re-run the evaluation an entry describes from ``checkpoint`` on ``dataset`` (default: the
    entry's dataset by name in the data folder), the operator rebuilt from the entry's stored code; the
    differences (empty: verified)."""
    entry = load_entry(entry_path)
    data, task = entry.dataset, entry.task
    model_class = load_operator(entry.code, entry.model.get("source", entry.model["name"]), entry_path) if entry.code else None
    refine = RefineSettings(**entry.refinement["settings"]) if entry.refinement else None
    _, rerun = evaluate_checkpoint(
        checkpoint, str(dataset or data["name"]), data["split"], task["rollout_steps"], task["start_frame"], device,
        refine=refine, model_class=model_class, plots=False,
    )  # fmt: skip
    if rerun.dataset["content_hash"] != data["content_hash"]:
        raise CfdbenchError(
            f"{entry_path}: the local {data['name']} has content hash {rerun.dataset['content_hash'][:12]}..., the entry's "
            f"is {data['content_hash'][:12]}...: verify needs the same data"
        )
    if rerun.task != task or rerun.dataset["case_ids"] != data["case_ids"]:
        raise CfdbenchError(f"{entry_path}: the checkpoint's task or split differs from the entry's ({rerun.task})")
    problems = compare_tier(entry, rerun, "C", rtol)  # every score the pages show; timings (cost) depend on the machine
    return problems + compare_numbers(entry.model["parameter_count"], rerun.model["parameter_count"], "$.model", rtol)
