"""Rollout alignment and the identity baseline, with an oracle that knows the true frames."""

import numpy as np
import pytest
import torch

from cfdbench.data.loader import Normalization
from cfdbench.evaluation.rollout import RolloutTask, evaluate_one_step, evaluate_rollout, rollout_task
from cfdbench.metrics import evaluate_all
from cfdbench.models.base import NeuralOperator, OperatorMeta


class Oracle(NeuralOperator):
    """Returns the stored frame that follows its latest input frame by ``stride``: zero error iff aligned."""

    registered_name = "oracle"

    def __init__(self, meta, frames: list[torch.Tensor], stride: int):
        super().__init__(meta)
        self.frames, self.stride = frames, stride
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the evaluator a device

    def locate(self, latest: torch.Tensor) -> tuple[int, int]:
        """(case, frame) of the stored frame equal to ``latest``."""
        return min(
            ((c, t) for c, traj in enumerate(self.frames) for t in range(len(traj))),
            key=lambda ct: float((self.frames[ct[0]][ct[1]] - latest).abs().max()),
        )

    def following(self, case: int, frame: int, steps: int) -> torch.Tensor:
        """The stored frame ``steps`` strides after ``frame`` (the last one past the end)."""
        return self.frames[case][min(frame + steps * self.stride, len(self.frames[case]) - 1)]

    def predict(self, inputs, mask, params):
        return torch.stack([self.following(*self.locate(latest), 1) for latest in self.last_frame(inputs)])


class Copy(NeuralOperator):
    registered_name = "copy"

    def __init__(self, meta):
        super().__init__(meta)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def predict(self, inputs, mask, params):
        return self.last_frame(inputs)


def setup(dataset, stride):
    norm = Normalization.from_dataset(dataset, ("u", "v"))
    frames = []
    for case_id in dataset.split("test"):
        with dataset.open_case(case_id) as case:
            frames.append(norm.fields.normalize(torch.from_numpy(case.read(("u", "v"), slice(None))), channel_dim=1))
    meta = OperatorMeta(("u", "v"), 1, 5, (16, 16))
    return norm, frames, meta


@pytest.mark.parametrize("stride", [1, 2])
def test_oracle_scores_zero_at_every_step(tiny_dataset, stride):
    norm, frames, meta = setup(tiny_dataset, stride)
    task = RolloutTask(input_frames=1, stride=stride, steps=3, start_frame=1)
    result = evaluate_rollout(Oracle(meta, frames, stride), tiny_dataset, norm, task)
    assert np.abs(result.per_case["model"]["mse"]).max() < 1e-10
    assert result.per_case["model"]["mse"].shape == (len(frames), 3)
    one_step = evaluate_one_step(Oracle(meta, frames, stride), tiny_dataset, norm, task)
    assert one_step["model"]["mse"] < 1e-10


def test_identity_baseline_compares_last_input_with_frame_start_plus_k_stride(tiny_dataset):
    norm, _, meta = setup(tiny_dataset, 2)
    task = RolloutTask(input_frames=1, stride=2, steps=2, start_frame=1)
    result = evaluate_rollout(Copy(meta), tiny_dataset, norm, task)
    case_id = tiny_dataset.split("test")[0]
    with tiny_dataset.open_case(case_id) as case:
        frames = torch.from_numpy(case.read(("u", "v"), slice(None))).double()
        mask = torch.from_numpy(np.asarray(case.mask, dtype=np.float64))[None, None]
    for step, frame in enumerate((3, 5)):
        direct = evaluate_all(frames[1][None], frames[frame][None], mask)["nmse"]
        assert result.per_case["identity"]["nmse"][0, step] == pytest.approx(float(direct), rel=1e-5)
    # A model that copies its input scores exactly like the identity baseline.
    np.testing.assert_allclose(result.per_case["model"]["nmse"], result.per_case["identity"]["nmse"], rtol=1e-5)


class TimeOracle(NeuralOperator):
    """Non-autoregressive: looks its frame up by the time it is asked for (ignores its inputs)."""

    registered_name = "time-oracle"
    autoregressive = False

    def __init__(self, meta, frames: list[torch.Tensor]):
        super().__init__(meta)
        self.frames = frames
        self.asked: list[float] = []

    def predict_at(self, time, mask, params):
        out = []
        for t in time.tolist():
            self.asked.append(t)
            trajectory = self.frames[0]
            out.append(trajectory[round(t * (len(trajectory) - 1))])
        return torch.stack(out)


@pytest.mark.parametrize("stride", [1, 2])
def test_non_autoregressive_models_are_asked_for_each_target_frame_time(tiny_dataset, stride):
    norm, frames, meta = setup(tiny_dataset, stride)
    frames = frames[:1]
    task = RolloutTask(input_frames=1, stride=stride, steps=3, start_frame=1)
    model = TimeOracle(meta, frames)
    result = evaluate_rollout(model, tiny_dataset, norm, task)
    n = len(frames[0])
    assert sorted(set(np.round(model.asked, 6))) == pytest.approx([f / (n - 1) for f in task.target_frame_ids], abs=1e-6)
    assert np.abs(result.per_case["model"]["mse"][0]).max() < 1e-10  # the first test case is the oracle's


def test_identity_model_scores_exactly_like_the_identity_baseline(tiny_dataset):
    from cfdbench.models.registry import build_model

    norm, _, meta = setup(tiny_dataset, 1)
    task = RolloutTask(input_frames=1, stride=1, steps=3, start_frame=1)
    result = evaluate_rollout(build_model("identity", meta), tiny_dataset, norm, task)
    # The model is scored as published: each prediction within 2^-16 of its frame's largest error.
    np.testing.assert_allclose(result.per_case["model"]["nmse"], result.per_case["identity"]["nmse"], rtol=1e-4)


class BlowsUp(NeuralOperator):
    """Copies its input, then returns NaN from the third step on: a diverging rollout."""

    registered_name = "blows-up"

    def __init__(self, meta):
        super().__init__(meta)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def predict(self, inputs, mask, params):
        self.calls += 1
        frame = self.last_frame(inputs)
        return frame * float("nan") if self.calls >= 3 else frame


def test_a_diverged_rollout_is_scored_as_diverged_never_dropped(tiny_dataset):
    norm, _, meta = setup(tiny_dataset, 1)
    task = RolloutTask(input_frames=1, stride=1, steps=4, start_frame=1)
    result = evaluate_rollout(BlowsUp(meta), tiny_dataset, norm, task)
    test_ids = tiny_dataset.split("test")
    assert result.diverged == {case_id: 3 for case_id in test_ids}
    nmse = result.per_case["model"]["nmse"]
    assert np.isfinite(nmse[:, :2]).all() and np.isinf(nmse[:, 2:]).all()
    assert result.summary()["model"]["nmse"] is None and result.summary()["identity"]["nmse"] is not None
    curve = result.curves()["model"]["nmse"]["mean"]
    assert curve[:2] == pytest.approx(result.curves()["identity"]["nmse"]["mean"][:2], rel=1e-4) and curve[2:] == [None, None]
    assert result.windows()["model"]["nmse"]["1"] is not None and result.windows()["model"]["nmse"]["1-5"] is None
    assert result.valid_time()["model"]["mean_steps"] <= 2
    assert result.confidence()["model"]["nmse"] is None
    assert result.cost()["seconds_per_step"] > 0


class WindowOracle(Oracle):
    """A window model: the ``m`` stored frames that follow its latest input, in one call."""

    registered_name = "window-oracle"
    output_window = True

    def predict(self, inputs, mask, params):
        windows = []
        for latest in self.last_frame(inputs):
            case, frame = self.locate(latest)
            windows.append(torch.cat([self.following(case, frame, j) for j in range(1, self.meta.output_frames + 1)]))
        return torch.stack(windows)


@pytest.mark.parametrize("output_frames", [2, 3])
def test_window_models_roll_out_window_by_window_aligned(tiny_dataset, output_frames):
    """Windows of m frames, fed back by their last k frames; steps past the horizon dropped (3 steps, m = 2)."""
    norm, frames, meta = setup(tiny_dataset, 1)
    meta = OperatorMeta(meta.fields, 2, meta.n_params, meta.grid_shape, output_frames=output_frames)
    task = RolloutTask(input_frames=2, stride=1, steps=3, start_frame=1)
    model = WindowOracle(meta, frames, 1)
    result = evaluate_rollout(model, tiny_dataset, norm, task)
    assert result.per_case["model"]["mse"].shape == (len(frames), 3)
    assert np.abs(result.per_case["model"]["mse"]).max() < 1e-10
    assert evaluate_one_step(model, tiny_dataset, norm, task)["model"]["mse"] < 1e-10  # its first frame is scored


# --------------------------------------------------------------------------- where rollouts start


def test_from_rest_the_identity_scores_nmse_one_and_one_step_pairs_start_where_rollouts_do(tiny_dataset):
    """Frame 0 of a cavity is the fluid at rest: the identity predicts zeros there (NMSE exactly 1
    at every step). One-step scores from frame 1 are the mean over the pairs 1 -> 2, 2 -> 3, ...."""
    norm, _, meta = setup(tiny_dataset, 1)
    from_rest = evaluate_rollout(Copy(meta), tiny_dataset, norm, RolloutTask(steps=3, start_frame=0))
    np.testing.assert_allclose(from_rest.per_case["identity"]["nmse"], 1.0, rtol=1e-9)
    expected = []
    for case_id in tiny_dataset.split("test"):
        with tiny_dataset.open_case(case_id) as case:
            frames = torch.from_numpy(case.read(("u", "v"), slice(None))).double()
            mask = torch.from_numpy(np.asarray(case.mask, dtype=np.float64))[None, None].expand(len(frames) - 2, 1, -1, -1)
        expected.append(evaluate_all(frames[1:-1], frames[2:], mask)["nmse"])
    one_step = evaluate_one_step(Copy(meta), tiny_dataset, norm, RolloutTask(steps=1, start_frame=1))
    assert one_step["identity"]["nmse"] == pytest.approx(float(torch.cat(expected).mean()), rel=1e-6)


def test_rollouts_start_where_the_dataset_card_says(tiny_dataset, tmp_path, monkeypatch):
    from conftest import write_card

    assert rollout_task(tiny_dataset, steps=3).start_frame == 0  # no card of that name
    folder = tmp_path / "datasets" / tiny_dataset.name
    folder.mkdir(parents=True)
    write_card(folder, evaluation={"rollout_start": 2, "why": "frames 0 and 1: spin-up"})
    monkeypatch.setenv("CFDBENCH_HOME", str(tmp_path))
    task = rollout_task(tiny_dataset, steps=3)
    assert (task.start_frame, task.input_frame_ids, task.target_frame_ids) == (2, [2], [3, 4, 5])
    assert rollout_task(tiny_dataset, steps=3, start_frame=0).start_frame == 0  # a start named by the caller wins


@pytest.mark.parametrize(
    "evaluation, error",
    [
        ({"rollout_start": 8, "why": "x"}, r"rollout_start must be a frame index in \[0, 8\), got 8"),
        ({"rollout_start": -1, "why": "x"}, r"rollout_start must be a frame index in \[0, 8\), got -1"),
        ({"rollout_start": 1.5, "why": "x"}, r"got 1.5"),
        ({"rollout_start": 2}, "needs evaluation.why"),
        ({"start": 2}, "malformed dataset card"),
    ],
)
def test_a_card_rollout_start_is_a_frame_with_a_reason(tmp_path, evaluation, error):
    from conftest import write_card

    from cfdbench.cards import load_dataset_card
    from cfdbench.errors import CfdbenchError

    with pytest.raises(CfdbenchError, match=error):
        load_dataset_card(write_card(tmp_path, evaluation=evaluation))


@pytest.mark.parametrize("name", ["cavity", "cavity-mini"])
def test_cavity_rollouts_start_once_the_lid_has_set_the_flow_in_motion(name):
    from cfdbench.cards import load_dataset_card

    evaluation = load_dataset_card(name).evaluation
    assert evaluation.rollout_start == 1 and "rest" in evaluation.why
