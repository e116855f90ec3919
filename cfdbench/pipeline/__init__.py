"""Orchestration: one function per command, from a name on the command line to data, a trained
model, scores and an entry.

The applications below (training, evaluation, leaderboard) do not know one another; this package
strings them together, and ``cli`` only parses arguments, calls one function here and prints.

- :mod:`~cfdbench.pipeline.devices`: which torch device a command runs on;
- :mod:`~cfdbench.pipeline.datasets`: a dataset's name, folder or URL to verified data (generated
  when missing), ``data generate`` on one process, as shards or on ranks, and the dataset listing;
- :mod:`~cfdbench.pipeline.config`: a run's resolved and checked configuration (and a resumed one's);
- :mod:`~cfdbench.pipeline.train`: the training stage (``cfdbench train``, on ranks under torchrun);
- :mod:`~cfdbench.pipeline.evaluate`: the evaluation stage and the entry (``cfdbench evaluate``);
- :mod:`~cfdbench.pipeline.run`: the main job (``cfdbench run``);
- :mod:`~cfdbench.pipeline.verify`: verification tiers B and C (``cfdbench leaderboard verify``);
- :mod:`~cfdbench.pipeline.catalogue`: the model zoo as ``cfdbench models`` lists it.
"""

from cfdbench.pipeline.config import (
    DEFAULT_DATASET,
    DEFAULT_MODEL,
    PLANAR_FIELDS,
    VOLUME_FIELDS,
    RunConfig,
    check_resume_flags,
    prepare_run,
    resolve_run_config,
    resume_config,
)
from cfdbench.pipeline.datasets import dataset_problem, ensure_dataset, require_dataset, verified_dataset
from cfdbench.pipeline.devices import resolve_device
from cfdbench.pipeline.evaluate import Evaluation, evaluate_checkpoint, rescore_predictions
from cfdbench.pipeline.run import run, run_prepared
from cfdbench.pipeline.train import operator_meta, train_on_ranks, train_stage
from cfdbench.pipeline.verify import verify_all_predictions, verify_checkpoint, verify_predictions

__all__ = [
    "DEFAULT_DATASET",
    "DEFAULT_MODEL",
    "PLANAR_FIELDS",
    "VOLUME_FIELDS",
    "Evaluation",
    "RunConfig",
    "check_resume_flags",
    "dataset_problem",
    "ensure_dataset",
    "evaluate_checkpoint",
    "operator_meta",
    "prepare_run",
    "require_dataset",
    "rescore_predictions",
    "resolve_device",
    "resolve_run_config",
    "resume_config",
    "run",
    "run_prepared",
    "train_on_ranks",
    "train_stage",
    "verified_dataset",
    "verify_all_predictions",
    "verify_checkpoint",
    "verify_predictions",
]
