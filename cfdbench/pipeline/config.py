"""A run's resolved configuration: the model card's settings for the dataset, then the command
line's, every setting checked before any work; and the saved configuration of a run to resume.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from cfdbench.cards import load_model_card
from cfdbench.data.remote import is_url
from cfdbench.data.resolve import dataset_folder
from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.refinement import check_refinable
from cfdbench.models.registry import (
    builtin_model_names,
    get_model_class,
    model_label,
)
from cfdbench.pipeline.datasets import dataset_problem
from cfdbench.pipeline.devices import resolve_device
from cfdbench.training.trainer import TrainConfig

DEFAULT_DATASET = "cavity-mini"


DEFAULT_MODEL = "fno"


PLANAR_FIELDS, VOLUME_FIELDS = ("u", "v"), ("u", "v", "w")  # the velocity a model predicts, 2D and 3D


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


def new_run_dir(model: str, dataset: str, root: Path | None = None) -> Path:
    """A fresh run folder path; training creates it once the model has passed its checks."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return (root or Path("runs")) / f"{stamp}-{model_label(model)}-{dataset}"


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


def check_model_for_dataset(model: str, dataset: str, refine: bool = False) -> None:
    """Refuse, before any data are generated, a model that cannot run on the dataset's flow: SFNO's
    refinement on data without a residual, a hybrid solver on a flow whose pressure it does not solve."""
    model_class = get_model_class(model)
    if refine:
        check_refinable(model_class, dataset_problem(dataset), dataset)
    if model_class.hybrid_solver:
        from cfdbench.evaluation.hybrid import check_hybrid

        check_hybrid(dataset_problem(dataset), dataset)


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
