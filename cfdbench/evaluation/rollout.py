"""One-step and autoregressive rollout evaluation, with the identity baseline beside every model.

Where rollouts start is the dataset card's ``evaluation.rollout_start`` unless a task names a
frame (:func:`rollout_task`); one-step scores use the pairs whose window starts there or later, so
a flow recorded from rest is never scored from the rest state, where the identity predicts zeros.

Alignment (CFDBench's off-by-one defect, fixed): the input window holds frames
``start, start + s, ..., start + (k-1) s``; prediction ``j`` (1-based) is compared with frame
``start + (k-1) s + j s``. The input window is never scored. Scores are computed in physical
units inside the fluid mask by :mod:`cfdbench.metrics`, for the model and for the
identity baseline (the last input frame, copied forward) alike.

Volumes (the turbulent channel) are scored by the same pointwise metrics and, because a long
turbulent rollout is judged by its statistics rather than by its decorrelated pointwise error, by
the channel statistics of the predicted trajectory against the true one (``channel``).

A rollout that produces NaN or Inf is scored as diverged from that step on: its metric values
there are ``inf``, and every summary that includes them is ``None``, so a blow-up can never
vanish from a mean. Inference is timed (model calls only), for the entry's cost block.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import Tensor

from cfdbench.cards import dataset_rollout_start
from cfdbench.data.loader import AutoregressiveDataset, Normalization
from cfdbench.data.view import StoredDataset
from cfdbench.entries.predictions import Encoded, Pairs, decode, publish
from cfdbench.errors import CfdbenchError
from cfdbench.metrics import VELOCITY_METRICS, MetricAccumulator, evaluate_all, evaluate_velocity, metric_names
from cfdbench.metrics.aggregate import bootstrap_interval, finite_mean, valid_time, windowed_means
from cfdbench.metrics.channel import ROLLOUT_SCORES, channel_statistics, friction_reynolds, rollout_scores
from cfdbench.metrics.physics import strouhal
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


def rollout_task(
    dataset: StoredDataset, input_frames: int = 1, stride: int = 1, steps: int = 20, start_frame: int | None = None
) -> RolloutTask:
    """The task on ``dataset``: from ``start_frame``, or (None) from where the dataset's card says
    its rollouts start."""
    start = dataset_rollout_start(dataset.name) if start_frame is None else start_frame
    return RolloutTask(input_frames, stride, steps, start)


@dataclass
class RolloutResult:
    """Per-case, per-step metric values and their summaries, for the model and the identity."""

    task: RolloutTask
    case_ids: list[str]
    per_case: dict[str, dict[str, np.ndarray]]  # predictor -> metric -> (cases, steps); inf once diverged
    step_seconds: np.ndarray  # (cases,) physical time between two rollout steps
    inference_seconds: float = 0.0  # model calls only, all cases
    diverged: dict[str, int] = field(default_factory=dict)  # case id -> first diverged step (1-based)
    strouhal: dict | None = None  # cylinder datasets: truth / prediction shedding frequency per case
    example: dict[str, np.ndarray] = field(default_factory=dict)  # truth / prediction of the first case (a plane of volumes)
    channel: dict | None = None  # channel datasets: statistics of the rollouts against the truth
    channel_profiles: dict = field(default_factory=dict)  # channel datasets: y and the first case's profiles per source
    published: Encoded | None = None  # the model's predictions (cases, K, C, ...) as scored: entries.predictions

    def curves(self) -> dict[str, dict[str, dict[str, list[float | None]]]]:
        """predictor -> metric -> {"mean", "std"} over cases, per step (None at a diverged step)."""
        with np.errstate(invalid="ignore"):  # inf - inf at diverged steps: None below
            return {who: {m: _curve(v) for m, v in metrics.items()} for who, metrics in self.per_case.items()}

    def summary(self) -> dict[str, dict[str, float | None]]:
        """predictor -> metric -> mean over cases and steps (None when a case diverged)."""
        return {who: {m: finite_mean(v) for m, v in metrics.items()} for who, metrics in self.per_case.items()}

    def windows(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """predictor -> metric -> window ("1", "1-5", "6-12", "13-K") -> mean."""
        return {who: {m: windowed_means(v) for m, v in metrics.items()} for who, metrics in self.per_case.items()}

    def valid_time(self) -> dict[str, dict]:
        """predictor -> steps (and seconds, each case with its own step) before NMSE first exceeds
        :data:`~cfdbench.metrics.aggregate.VALID_TIME_NMSE`."""
        return {who: valid_time(metrics["nmse"], self.step_seconds) for who, metrics in self.per_case.items()}

    def confidence(self) -> dict[str, dict[str, list[float] | None]]:
        """predictor -> metric -> 95 % bootstrap interval over test cases of the rollout mean."""
        return {
            who: {m: bootstrap_interval(v.mean(axis=1)) for m, v in metrics.items()} for who, metrics in self.per_case.items()
        }

    def cost(self) -> dict[str, float]:
        n_cases = len(self.case_ids)
        return {
            "seconds_per_step": self.inference_seconds / (n_cases * self.task.steps),
            "seconds_per_rollout": self.inference_seconds / n_cases,
        }


def _curve(values: np.ndarray) -> dict[str, list[float | None]]:
    """Mean and standard deviation over cases (axis 0) per step; None where not finite."""
    summaries = {"mean": values.mean(axis=0), "std": values.std(axis=0)}
    return {stat: [float(v) if np.isfinite(v) else None for v in summary] for stat, summary in summaries.items()}


@torch.no_grad()
def rollout(model: NeuralOperator, window: Tensor, fluid_fraction: Tensor, params: Tensor, times: Tensor) -> Tensor:
    """Feed predictions back until every target time ``times`` (B, steps) has a frame; returns
    (B, steps, C, H, W) normalised predictions. A window model predicts m frames per call (the
    last of a call's frames past the horizon are dropped); a non-autoregressive model predicts each
    time directly."""
    n_fields, steps = model.meta.n_fields, times.shape[1]
    predictions: list[Tensor] = []
    while len(predictions) < steps:
        frames = model(window, fluid_fraction, params, times[:, len(predictions)])  # (B, m*C, ...)
        predictions.extend(frames.unflatten(1, (-1, n_fields)).unbind(1))
        window = torch.cat([window, frames], dim=1)[:, -window.shape[1] :]
    return torch.stack(predictions[:steps], dim=1)


# (case ids, physical input windows (B, k, C, ...), their cases) -> (physical rollout (B, K, C, ...), seconds spent)
RolloutPredictor = Callable[[list[str], Tensor, "CaseBatch"], tuple[Tensor, float]]


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
    predict = lambda ids, inputs, cases: _predict(model, normalization, task, inputs, cases)  # noqa: E731
    return score_rollouts(predict, dataset, normalization.field_names, task, split, batch_size)


def score_rollouts(
    predict: RolloutPredictor | None,
    dataset: StoredDataset,
    fields: tuple[str, ...],
    task: RolloutTask,
    split: str,
    batch_size: int = 8,
    replay: Encoded | None = None,
) -> RolloutResult:
    """Score the rollouts of any predictor of physical frames (a model, a hybrid solver) on every
    case of ``split``, beside the identity, with the one metric code. The predictions are scored as
    published (:mod:`cfdbench.entries.predictions`); ``replay`` scores published ones instead of
    calling ``predict``."""
    case_ids = list(dataset.split(split))
    if not case_ids:
        raise CfdbenchError(f"split '{split}' of {dataset.name} has no cases")
    n_dims = dataset.n_spatial_dims
    velocity = [fields.index(c) for c in ("u", "v")] if {"u", "v"} <= set(fields) and n_dims == 2 else None
    names = list(metric_names(n_dims)) + (list(VELOCITY_METRICS) if velocity else [])
    per_case = {who: {m: [] for m in names} for who in PREDICTORS}
    probes: dict[str, list] = {"truth": [], "model": [], "identity": []}
    channel = ChannelScores(task.steps, fields) if _is_channel(dataset, fields) else None
    example: dict[str, np.ndarray] = {}
    step_seconds, diverged, inference, scales, published = [], {}, 0.0, [], []
    frame_ids = task.input_frame_ids + task.target_frame_ids
    for first in range(0, len(case_ids), batch_size):
        ids = case_ids[first : first + batch_size]
        cases = read_cases(dataset, ids, fields, frame_ids, task)
        inputs, truth = cases.frames[:, : task.input_frames], cases.frames[:, task.input_frames :]  # physical
        if replay is None:
            predicted, seconds = predict(ids, inputs, cases)
            predicted, encoded = publish(predicted, truth, channel_dim=2)
        else:
            encoded, seconds = replay[first : first + len(ids)], 0.0
            predicted = decode(encoded, truth, channel_dim=2)
        published.append(encoded)
        inference += seconds
        first_bad = _first_diverged_step(predicted)
        diverged |= {case_id: int(step) + 1 for case_id, step in zip(ids, first_bad) if step < task.steps}
        identity = inputs[:, -1:].expand_as(truth)
        for who, pred in (("model", predicted), ("identity", identity)):
            for m, values in _per_step_metrics(pred, truth, cases, velocity).items():
                per_case[who][m].append(_mark_diverged(values, first_bad if who == "model" else None))
        step_seconds.append(cases.dt * task.stride)
        if cases.probe_cells is not None:
            scales += cases.scales
            for who, frames in (("truth", truth), ("model", predicted), ("identity", identity)):
                probes[who].append(cases.probe(frames, fields))
        if channel is not None:
            channel.add(truth, {"model": predicted, "identity": identity}, cases.channel_geometry)
        if not example:
            example = _example(truth[0], predicted[0], cases.masks[0, 0])
    stacked = {who: {m: torch.cat(v).numpy() for m, v in metrics.items()} for who, metrics in per_case.items()}
    seconds = torch.cat(step_seconds).numpy()
    shedding = _strouhal_summary(probes, scales, seconds) if probes["truth"] else None
    statistics, profiles = (channel.summary(), channel.example_profiles) if channel else (None, {})
    result = RolloutResult(task, case_ids, stacked, seconds, inference, diverged, shedding, example, statistics, profiles)
    result.published = Encoded.concatenate(published)
    return result


def _example(truth: Tensor, prediction: Tensor, mask: Tensor) -> dict[str, np.ndarray]:
    """The first case's frames for the figures: (K, C, H, W), a volume's x-y plane at mid-depth."""
    if mask.dim() == 3:
        middle = mask.shape[0] // 2
        truth, prediction, mask = truth[:, :, middle], prediction[:, :, middle], mask[middle]
    return {"truth": truth.numpy(), "prediction": prediction.numpy(), "mask": mask.numpy()}


def _is_channel(dataset: StoredDataset, fields: tuple[str, ...]) -> bool:
    return dataset.metadata.problem == "channel" and {"u", "v", "w"} <= set(fields)


class ChannelScores:
    """Per-case channel statistics of rollouts (:func:`~cfdbench.metrics.channel.rollout_scores`)
    over the whole horizon and over its second half, where a drifting surrogate shows; summarised as
    means over cases, None for a predictor whose rollout of some case diverged."""

    def __init__(self, steps: int, fields: tuple[str, ...]) -> None:
        self.velocity = [fields.index(c) for c in ("u", "v", "w")]
        self.windows = {"all": (1, steps), "late": (steps // 2 + 1, steps)}
        self.scores: dict[str, dict[str, list[dict[str, float]]]] = {w: {who: [] for who in PREDICTORS} for w in self.windows}
        self.re_tau: dict[str, list[float]] = {"truth": [], **{who: [] for who in PREDICTORS}}
        self.example_profiles: dict = {}

    def add(self, truth: Tensor, predictions: dict[str, Tensor], geometry: list[dict]) -> None:
        """Score a batch of physical rollouts (B, K, C, nz, ny, nx), the truth and each predictor's."""
        true = truth[:, :, self.velocity].double().numpy()
        for b, where in enumerate(geometry):
            self.re_tau["truth"].append(friction_reynolds(true[b], where["y"], where["nu"]))
        for who, frames in predictions.items():
            predicted = frames[:, :, self.velocity].double().numpy()
            for b, where in enumerate(geometry):
                finite = bool(np.isfinite(predicted[b]).all())
                for window, (first, last) in self.windows.items():
                    span = slice(first - 1, last)
                    scores = rollout_scores(predicted[b, span], true[b, span], **where) if finite else None
                    self.scores[window][who].append(scores or dict.fromkeys(ROLLOUT_SCORES, np.inf))
                self.re_tau[who].append(friction_reynolds(predicted[b], where["y"], where["nu"]) if finite else np.inf)
        if not self.example_profiles:  # the first test case, for the profile figure (a diverged predictor left out)
            first = {"truth": true[0]} | {who: f[0, :, self.velocity].double().numpy() for who, f in predictions.items()}
            self.example_profiles = {"y": geometry[0]["y"]}
            self.example_profiles |= {who: channel_statistics(v) for who, v in first.items() if np.isfinite(v).all()}

    def summary(self) -> dict:
        """Windows, mean scores per window and predictor, and the mean Re_τ of each source."""
        means = {
            who: {
                window: {name: finite_mean([case[name] for case in self.scores[window][who]]) for name in ROLLOUT_SCORES}
                for window in self.windows
            }
            for who in PREDICTORS
        }
        re_tau = {who: finite_mean(values) for who, values in self.re_tau.items()}
        return {"windows": {name: list(span) for name, span in self.windows.items()}, **means, "re_tau": re_tau}


def _predict(
    model: NeuralOperator, normalization: Normalization, task: RolloutTask, inputs: Tensor, cases: "CaseBatch"
) -> tuple[Tensor, float]:
    """The model's physical rollout (B, K, C, H, W) from physical input windows, and the seconds
    its calls took."""
    device = model.device
    times = torch.tensor(task.target_frame_ids, dtype=torch.float32)[None] / (cases.n_frames[:, None] - 1).clamp(min=1)
    window = normalization.fields.normalize(inputs.to(device), channel_dim=2).flatten(1, 2) * cases.masks.to(device)
    scaled_params = normalization.params.transform(cases.params).to(device)
    started = time.perf_counter()
    normalized = rollout(model, window, cases.fluid_fractions.to(device), scaled_params, times.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started  # the model's calls only
    return normalization.fields.denormalize(normalized, channel_dim=2).cpu(), seconds


def _first_diverged_step(predicted: Tensor) -> np.ndarray:
    """Per case, the 0-based step of the first frame holding NaN or Inf (K when none does)."""
    bad = ~torch.isfinite(predicted).flatten(2).all(dim=2)  # (B, K)
    return torch.where(bad.any(dim=1), bad.int().argmax(dim=1), torch.tensor(predicted.shape[1])).numpy()


def _mark_diverged(values: Tensor, first_bad: np.ndarray | None) -> Tensor:
    """Metric values (B, K) set to inf from each case's first diverged step on."""
    if first_bad is None:
        return values
    steps = torch.arange(values.shape[1])[None]
    return torch.where(steps >= torch.as_tensor(first_bad)[:, None], torch.tensor(float("inf"), dtype=values.dtype), values)


def _per_step_metrics(pred: Tensor, truth: Tensor, cases: "CaseBatch", velocity: list[int] | None) -> dict[str, Tensor]:
    """(B, K, C, H, W) -> metric -> (B, K); non-finite predictions are zeroed here and marked by the caller."""
    b, k = truth.shape[:2]
    pred = torch.nan_to_num(pred, nan=0.0, posinf=0.0, neginf=0.0).reshape(b * k, *pred.shape[2:])
    truth = truth.reshape(b * k, *truth.shape[2:])
    flat_mask = cases.masks.repeat_interleave(k, dim=0)
    values = evaluate_all(pred, truth, flat_mask)
    if velocity is not None:
        dx, dy = cases.dx.repeat_interleave(k), cases.dy.repeat_interleave(k)
        values |= evaluate_velocity(pred[:, velocity], truth[:, velocity], flat_mask, dx, dy)
    return {m: v.reshape(b, k) for m, v in values.items()}


@dataclass
class CaseBatch:
    """Physical frames (B, F, C, H, W), fluid cells and fluid fractions (B, 1, H, W), raw parameters
    (B, P), frame counts, frame interval and grid spacing (B,) of some cases, and a probe reader for
    cylinder data."""

    frames: Tensor
    masks: Tensor
    fluid_fractions: Tensor
    params: Tensor
    n_frames: Tensor
    dt: Tensor
    dx: Tensor
    dy: Tensor
    probe_cells: list[tuple[int, int]] | None = None
    scales: list[tuple[float, float]] = field(default_factory=list)  # (d, U) per case, cylinder data
    channel_geometry: list[dict] = field(default_factory=list)  # y, nu, length_x, length_z per case, channel data

    def probe(self, frames: Tensor, fields: tuple[str, ...]) -> np.ndarray:
        """v at each case's probe cell over the rollout steps: (B, K)."""
        v = frames[:, :, fields.index("v")]
        return np.stack([v[b, :, i, j].double().numpy() for b, (i, j) in enumerate(self.probe_cells)])


def read_cases(
    dataset: StoredDataset, case_ids: list[str], fields: tuple[str, ...], frame_ids: list[int], task: RolloutTask
) -> CaseBatch:
    """Physical frames ``frame_ids`` of some cases, with what the metrics need of each; a case too
    short for ``task`` is refused with the frames it has and needs."""
    frames, masks, fractions, params, n_frames, dt, dx, dy, probes, scales, geometry = ([] for _ in range(11))
    cylinder = dataset.metadata.problem == "cylinder" and "v" in fields
    channel = _is_channel(dataset, fields)
    for case_id in case_ids:
        with dataset.open_case(case_id) as case:
            if case.n_frames < task.frames_needed:
                raise CfdbenchError(
                    f"case {case_id} has {case.n_frames} frames; a {task.steps}-step rollout at stride "
                    f"{task.stride} from frame {task.start_frame} needs {task.frames_needed}"
                )
            frames.append(torch.from_numpy(case.read(fields, np.asarray(frame_ids))))
            masks.append(torch.from_numpy(np.asarray(case.mask, dtype=np.float32))[None])
            fractions.append(torch.from_numpy(case.fluid_fraction)[None])
            params.append(list(case.params.values()))
            n_frames.append(case.n_frames)
            dt.append(case.dt)
            dx.append(float(case.x[1] - case.x[0]) if len(case.x) > 1 else 1.0)
            dy.append(float(case.y[1] - case.y[0]) if len(case.y) > 1 else 1.0)
            if cylinder:
                probes.append(_wake_probe(case.x, case.y, case.params))
                scales.append((2 * case.params["radius"], case.params["vel_in"]))
            if channel:  # units: half-height 1, u_tau 1
                p = case.params
                geometry.append({"y": case.y, "nu": 1 / p["re_tau"], "length_x": p["length_x"], "length_z": p["length_z"]})
    as_tensor = partial(torch.tensor, dtype=torch.float64)
    return CaseBatch(
        torch.stack(frames),
        torch.stack(masks),
        torch.stack(fractions),
        torch.tensor(np.asarray(params)),
        torch.tensor(n_frames, dtype=torch.float32),
        as_tensor(dt),
        as_tensor(dx),
        as_tensor(dy),
        probes if cylinder else None,
        scales,
        geometry,
    )


def _wake_probe(x: np.ndarray, y: np.ndarray, params: dict[str, float]) -> tuple[int, int]:
    """(row, column) of the cell nearest to two diameters behind the disc's centre (the origin) on
    its axis, where the transverse velocity oscillates at the shedding frequency."""
    d = 2 * params["radius"]
    return int(np.abs(y).argmin()), int(np.abs(x - 2 * d).argmin())


def _strouhal_summary(probes: dict[str, list], scales: list[tuple[float, float]], step_seconds: np.ndarray) -> dict:
    """Shedding frequency as St = f d / U from the wake probe, for the truth, the model and the
    identity, over the cases whose true signal holds at least two periods; a prediction with no
    measurable oscillation there counts as St = 0 (relative error 1), a diverged one as None."""
    signals = {who: np.concatenate(values) for who, values in probes.items()}  # (cases, K)
    numbers = {
        who: np.array([strouhal(sig, dt, d, u) for sig, dt, (d, u) in zip(signals[who], step_seconds, scales)]) for who in signals
    }
    measurable = np.isfinite(numbers["truth"])
    summary: dict = {"probe": "v two diameters behind the disc centre", "measurable_cases": int(measurable.sum())}
    if not measurable.any():
        return summary | {"truth": None, "model": None, "relative_error": {"model": None, "identity": None}}
    truth = numbers["truth"][measurable]
    diverged = {who: not np.all(np.isfinite(signals[who][measurable])) for who in PREDICTORS}
    predicted = {who: np.nan_to_num(numbers[who][measurable], nan=0.0) for who in PREDICTORS}
    errors = {who: None if diverged[who] else float((np.abs(predicted[who] - truth) / truth).mean()) for who in PREDICTORS}
    return summary | {
        "truth": float(truth.mean()),
        "model": None if diverged["model"] else float(predicted["model"].mean()),
        "relative_error": errors,
    }


class OneStepScores(dict):
    """predictor -> metric -> mean over the pairs (None: a prediction diverged), and ``published``: the
    model's predictions as scored."""

    def __init__(self, scores: dict[str, dict[str, float | None]], published: Pairs) -> None:
        super().__init__(scores)
        self.published = published


@torch.no_grad()
def evaluate_one_step(
    model: NeuralOperator | None,
    dataset: StoredDataset,
    normalization: Normalization,
    task: RolloutTask,
    split: str = "test",
    batch_size: int = 32,
    num_workers: int = 0,
    replay: Pairs | None = None,
) -> OneStepScores:
    """Mean per-sample metrics of single predictions over every (window -> next frame) pair of a split
    whose window starts at ``task.start_frame`` or later (read by ``num_workers`` processes); None
    where a prediction held NaN or Inf (scored as diverged, never dropped). The predictions are scored as
    published (:mod:`cfdbench.entries.predictions`); ``replay`` scores published ones instead of the model's."""
    device = model.eval().device if replay is None else torch.device("cpu")
    samples = AutoregressiveDataset(
        dataset, split, task.input_frames, task.stride, normalization.field_names, normalization=normalization
    )
    scores = {who: MetricAccumulator(dataset.n_spatial_dims) for who in PREDICTORS}
    published, pairs = [], []
    first_target = task.target_frame_ids[0]  # of the window starting at task.start_frame
    if int(samples.n_frames.max()) <= first_target:
        raise CfdbenchError(f"no {split} case of {dataset.name} has a frame after a window starting at frame {task.start_frame}")
    for batch in samples.loader(batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda", lend=True):
        kept = batch["frame"] >= first_target
        if not kept.any():
            continue
        batch = {key: value[kept] for key, value in batch.items()}
        mask = batch["mask"]
        to_physical = partial(normalization.fields.denormalize, channel_dim=1)  # (B, C, ...)
        truth = to_physical(batch["target"])
        if replay is None:
            pred = predict_batch(model, batch, device).cpu()[:, : len(normalization.field_names)]  # a window model's first frame
            predicted, encoded = publish(to_physical(pred), truth, channel_dim=1)
        else:
            encoded = replay.batch(sum(len(p) for p in published), batch["case"].numpy(), batch["frame"].numpy())
            predicted = decode(encoded, truth, channel_dim=1)
        published.append(encoded)
        pairs.append((batch["case"].numpy(), batch["frame"].numpy()))
        scores["model"].update(predicted, truth, mask)
        scores["identity"].update(to_physical(batch["input"][:, -len(normalization.field_names) :]), truth, mask)
    if replay is not None and sum(len(p) for p in published) != len(replay.case):
        raise CfdbenchError("the predictions file holds more one-step pairs than the split has: it belongs to other data")
    means = {who: {m: v if np.isfinite(v) else None for m, v in acc.mean().items()} for who, acc in scores.items()}
    cases, frames = (np.concatenate(column) for column in zip(*pairs))
    return OneStepScores(means, Pairs(Encoded.concatenate(published), cases, frames))
