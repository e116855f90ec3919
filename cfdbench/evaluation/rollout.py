"""One-step and autoregressive rollout evaluation, with the identity baseline beside every model.

Alignment (CFDBench's off-by-one defect, fixed): the input window holds frames
``start, start + s, ..., start + (k-1) s``; prediction ``j`` (1-based) is compared with frame
``start + (k-1) s + j s``. The input window is never scored. Scores are computed in physical
units inside the fluid mask by :mod:`cfdbench.evaluation.metrics`, for the model and for the
identity baseline (the last input frame, copied forward) alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from cfdbench.data.loader import AutoregressiveDataset, Normalization
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.metrics import METRICS, MetricAccumulator, evaluate_all
from cfdbench.models.base import NeuralOperator, predict_batch

PREDICTORS = ("model", "identity")


@dataclass(frozen=True)
class RolloutTask:
    """Where a rollout starts, its window and stride (frames), and how many steps it runs."""

    input_frames: int = 1
    stride: int = 1
    steps: int = 20
    start_frame: int = 0

    def __post_init__(self) -> None:
        if min(self.input_frames, self.stride, self.steps) < 1 or self.start_frame < 0:
            raise CfdbenchError(f"invalid rollout task {self}: window, stride and steps must be >= 1, start >= 0")

    @property
    def input_frame_ids(self) -> list[int]:
        return [self.start_frame + i * self.stride for i in range(self.input_frames)]

    @property
    def target_frame_ids(self) -> list[int]:
        last = self.input_frame_ids[-1]
        return [last + j * self.stride for j in range(1, self.steps + 1)]

    @property
    def frames_needed(self) -> int:
        return self.target_frame_ids[-1] + 1


@dataclass
class RolloutResult:
    """Per-case, per-step metric values and their summaries, for the model and the identity."""

    task: RolloutTask
    case_ids: list[str]
    per_case: dict[str, dict[str, np.ndarray]]  # predictor -> metric -> (cases, steps)
    example: dict[str, np.ndarray] = field(default_factory=dict)  # truth / prediction of the first case

    def curves(self) -> dict[str, dict[str, dict[str, list[float]]]]:
        """predictor -> metric -> {"mean", "std"} over cases, per step."""
        return {
            who: {m: {"mean": v.mean(0).tolist(), "std": v.std(0).tolist()} for m, v in metrics.items()}
            for who, metrics in self.per_case.items()
        }

    def summary(self) -> dict[str, dict[str, float]]:
        """predictor -> metric -> mean over cases and steps."""
        return {who: {m: float(v.mean()) for m, v in metrics.items()} for who, metrics in self.per_case.items()}


@torch.no_grad()
def rollout(model: NeuralOperator, window: Tensor, mask: Tensor, params: Tensor, times: Tensor) -> Tensor:
    """Feed predictions back once per target time ``times`` (B, steps); returns (B, steps, C, H, W)
    normalised predictions. A non-autoregressive model predicts each time directly."""
    n_fields = model.meta.n_fields
    predictions = []
    for step in range(times.shape[1]):
        frame = model(window, mask, params, times[:, step])
        predictions.append(frame)
        window = torch.cat([window[:, n_fields:], frame], dim=1)
    return torch.stack(predictions, dim=1)


@torch.no_grad()
def evaluate_rollout(
    model: NeuralOperator,
    dataset: StoredDataset,
    normalization: Normalization,
    task: RolloutTask,
    split: str = "test",
    batch_size: int = 8,
) -> RolloutResult:
    """Roll every case of ``split`` out from ``task.start_frame``, batched across cases."""
    model.eval()
    device = model.device
    fields = normalization.field_names
    case_ids = list(dataset.split(split))
    if not case_ids:
        raise CfdbenchError(f"split '{split}' of {dataset.name} has no cases")
    per_case = {who: {m: [] for m in METRICS} for who in PREDICTORS}
    example: dict[str, np.ndarray] = {}
    frame_ids = task.input_frame_ids + task.target_frame_ids
    for first in range(0, len(case_ids), batch_size):
        frames, masks, params, n_frames = _read_cases(dataset, case_ids[first : first + batch_size], fields, frame_ids, task)
        times = torch.tensor(task.target_frame_ids, dtype=torch.float32)[None] / (n_frames[:, None] - 1).clamp(min=1)
        inputs, truth = frames[:, : task.input_frames], frames[:, task.input_frames :]  # physical
        mask = masks.to(device)
        window = normalization.fields.normalize(inputs.to(device)).flatten(1, 2) * mask
        scaled_params = normalization.params.transform(params).to(device)
        predicted = normalization.fields.denormalize(rollout(model, window, mask, scaled_params, times.to(device))).cpu()
        identity = inputs[:, -1:].expand_as(truth)
        for who, pred in (("model", predicted), ("identity", identity)):
            for m, values in _per_step_metrics(pred, truth, masks).items():
                per_case[who][m].append(values)
        if not example:
            example = {"truth": truth[0].numpy(), "prediction": predicted[0].numpy(), "mask": masks[0, 0].numpy()}
    stacked = {who: {m: torch.cat(v).numpy() for m, v in metrics.items()} for who, metrics in per_case.items()}
    return RolloutResult(task, case_ids, stacked, example)


def _per_step_metrics(pred: Tensor, truth: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """(B, K, C, H, W) -> metric -> (B, K)."""
    b, k = truth.shape[:2]
    flat_mask = mask.repeat_interleave(k, dim=0)
    values = evaluate_all(pred.reshape(b * k, *pred.shape[2:]), truth.reshape(b * k, *truth.shape[2:]), flat_mask)
    return {m: v.reshape(b, k) for m, v in values.items()}


def _read_cases(
    dataset: StoredDataset, case_ids: list[str], fields: tuple[str, ...], frame_ids: list[int], task: RolloutTask
) -> tuple[Tensor, Tensor, Tensor]:
    """Physical frames (B, F, C, H, W), masks (B, 1, H, W), raw parameters (B, P) and frame counts (B,) of some cases."""
    frames, masks, params, n_frames = [], [], [], []
    for case_id in case_ids:
        with dataset.open_case(case_id) as case:
            if case.n_frames < task.frames_needed:
                raise CfdbenchError(
                    f"case {case_id} has {case.n_frames} frames; a {task.steps}-step rollout at stride "
                    f"{task.stride} from frame {task.start_frame} needs {task.frames_needed}"
                )
            frames.append(torch.from_numpy(case.read(fields, np.asarray(frame_ids))))
            masks.append(torch.from_numpy(np.asarray(case.mask, dtype=np.float32))[None])
            params.append(list(case.params.values()))
            n_frames.append(case.n_frames)
    return torch.stack(frames), torch.stack(masks), torch.tensor(np.asarray(params)), torch.tensor(n_frames, dtype=torch.float32)


@torch.no_grad()
def evaluate_one_step(
    model: NeuralOperator,
    dataset: StoredDataset,
    normalization: Normalization,
    task: RolloutTask,
    split: str = "test",
    batch_size: int = 32,
) -> dict[str, dict[str, float]]:
    """Mean per-sample metrics of single predictions over every (window -> next frame) pair of a split."""
    model.eval()
    device = model.device
    samples = AutoregressiveDataset(
        dataset, split, task.input_frames, task.stride, normalization.field_names, normalization=normalization
    )
    scores = {who: MetricAccumulator() for who in PREDICTORS}
    for batch in samples.loader(batch_size, shuffle=False):
        mask = batch["mask"]
        pred = predict_batch(model, batch, device).cpu()
        to_physical = normalization.fields.denormalize
        truth = to_physical(batch["target"])
        scores["model"].update(to_physical(pred), truth, mask)
        scores["identity"].update(to_physical(batch["input"][:, -len(normalization.field_names) :]), truth, mask)
    return {who: acc.mean() for who, acc in scores.items()}
