"""Spectral refinement on the test split: each case's first window, refined on its Navier–Stokes
residual (:mod:`cfdbench.evaluation.spectral_refine`), scored against the truth before and after.

The entry's ``refinement`` block holds the mean over test cases of the window's NMSE against the
truth and of the residual's H^-1 norm (the quantity optimised), before and after, beside the
residual of the true frames on the same grid: a residual far above the truth's means the prediction
violates the equations; one near it cannot be lowered much by any correct trajectory.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from functools import partial

import numpy as np
import torch

from cfdbench.data.loader import Normalization
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.rollout import RolloutTask, read_cases
from cfdbench.evaluation.spectral_refine import Geometry, RefineSettings, refine_window
from cfdbench.losses.navier_stokes_residual import RESIDUAL_PROBLEMS
from cfdbench.metrics import evaluate_all
from cfdbench.models.base import NeuralOperator


def check_refinable(model_class: type, problem: str | None, dataset: str) -> None:
    """Refuse a refinement that cannot run, before any work: the model needs a spectral output
    operator (SFNO), the data a known PDE residual."""
    if not hasattr(model_class, "window_from_latent"):
        raise CfdbenchError(f"spectral refinement needs SFNO's spectral output operator; {model_class.registered_name} has none")
    if problem not in RESIDUAL_PROBLEMS:
        raise CfdbenchError(
            f"spectral refinement needs the PDE residual of the data; {dataset} ({problem}) has none in cfdbench "
            f"(known: {', '.join(RESIDUAL_PROBLEMS)}; the dam break's free surface is not single-phase Navier–Stokes)"
        )


def refine_test_cases(
    model: NeuralOperator,
    dataset: StoredDataset,
    normalization: Normalization,
    task: RolloutTask,
    split: str = "test",
    settings: RefineSettings | None = None,
) -> tuple[dict, float]:
    """Refine the first predicted window of every case of ``split`` (the rollout's first call):
    (the entry's ``refinement`` block, the seconds it took)."""
    settings = settings or RefineSettings()
    problem = dataset.metadata.problem
    check_refinable(type(model), problem, dataset.name)
    model.eval()
    fields = normalization.field_names
    velocity = [fields.index(c) for c in ("u", "v")]
    window = RolloutTask(task.input_frames, task.stride, model.meta.output_frames, task.start_frame)
    frame_ids = window.input_frame_ids + window.target_frame_ids
    to_physical = partial(normalization.fields.denormalize, channel_dim=2)
    scores: dict[str, list[float]] = {"nmse_before": [], "nmse_after": [], "before": [], "after": [], "truth": []}
    started = time.perf_counter()
    device = model.device
    for case_id in dataset.split(split):
        cases = read_cases(dataset, [case_id], fields, frame_ids, window)
        with dataset.open_case(case_id) as case:
            nu = case.params["viscosity"] / case.params["density"]
        geometry = Geometry(
            *(torch.tensor([value], dtype=torch.float64, device=device) for value in (
                float(cases.dt[0]) * task.stride, float(cases.dx[0]), float(cases.dy[0]), nu,
                float(cases.dy[0]) * cases.frames.shape[-2], float(cases.dx[0]) * cases.frames.shape[-1],
            ))
        )  # fmt: skip
        physical = cases.frames.double().to(device)
        mask = cases.masks.double().to(device)
        inputs = normalization.fields.normalize(physical[:, : task.input_frames], channel_dim=2).flatten(1, 2) * mask
        params = normalization.params.transform(cases.params).to(device)
        trained, refined, history = refine_window(
            model, inputs.float(), cases.fluid_fractions.to(device), params, lambda x: to_physical(x.double()), velocity, geometry, settings
        )
        truth = physical[:, task.input_frames - 1 :]  # the last input frame, then the window's true frames
        for name, prediction in (("nmse_before", trained), ("nmse_after", refined)):
            values = evaluate_all(prediction[0].cpu(), truth[0, 1:].cpu(), mask.cpu().expand(len(truth[0]) - 1, -1, -1, -1))
            scores[name].append(float(values["nmse"].mean()))
        scores["before"].append(history[0])
        scores["after"].append(history[-1])
        scores["truth"].append(float(geometry.residual(truth[:, :, velocity], mask).sum()))
    mean = {name: float(np.mean(values)) for name, values in scores.items()}
    summary = {
        "settings": asdict(settings),
        "window_frames": model.meta.output_frames,
        "cases": len(scores["truth"]),
        "nmse": {"before": mean["nmse_before"], "after": mean["nmse_after"]},
        "residual_h_minus_1": {"before": mean["before"], "after": mean["after"], "truth": mean["truth"]},
    }
    return summary, time.perf_counter() - started
