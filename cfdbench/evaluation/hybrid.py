"""The hybrid surrogate: a dataset's own flow solver with DCDM as its pressure solve, scored by the
rollout evaluator like any model.

DCDM's network is trained on the Poisson system of one training case, preferring a geometry no
test case has (so the test systems are held out). For every test case the solver then runs three
ways in lockstep from rest: exactly (direct or PCG projections, as the data were generated), as
the hybrid from the true state at the rollout's start frame (the rollout), and as the hybrid
restarted from the exact state at every frame for one frame interval (the one-step prediction).
The rollout and one-step frames are scored against the stored frames by the same metric code as
every model, beside the identity. The entry's ``hybrid`` block adds what a solver owes its users:
pressure iterations, the divergence left in the velocity, wall time against the exact solver,
and how closely the exact re-run reproduces the stored frames (the floor of any comparison: the
re-run advances only the test cases, whose shared time step can differ from the generation batch's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from cfdbench.data.generate import DTYPES, DatasetGenerator
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError
from cfdbench.evaluation.rollout import RolloutResult, RolloutTask, score_rollouts
from cfdbench.metrics import MetricAccumulator
from cfdbench.models.dcdm import DCDMSolver
from cfdbench.solvers.flows import get_flow
from cfdbench.solvers.navier_stokes import FlowState, NavierStokesSolver
from cfdbench.solvers.simulate import build_solver, frame_fields, frames_to_si

HYBRID_PROBLEMS = ("cavity", "tube", "dam", "cylinder")  # the 2D flows; the channel's pressure is solved in Fourier space


@dataclass
class HybridRuns:
    """Per test case, SI frames (F, 3, ny, nx) of the hybrid rollout (up to its horizon), the hybrid
    one-step predictions (frame f from the exact state at f - 1; frame 0 is the exact one) and the
    exact re-run (all stored frames); and what the solves cost."""

    rollout: dict[str, np.ndarray] = field(default_factory=dict)
    one_step: dict[str, np.ndarray] = field(default_factory=dict)
    exact: dict[str, np.ndarray] = field(default_factory=dict)
    hybrid_seconds: float = 0.0  # rollout span only
    exact_seconds: float = 0.0  # the same span, exact projections
    iterations: list[int] = field(default_factory=list)  # per projection of the rollout
    final_residuals: list[float] = field(default_factory=list)
    divergence: dict[str, list[float]] = field(default_factory=lambda: {"hybrid": [], "exact": []})  # rms per case and frame
    max_divergence: dict[str, float] = field(default_factory=lambda: {"hybrid": 0.0, "exact": 0.0})


def check_hybrid(problem: str | None, dataset: str) -> None:
    """Refuse data whose pressure DCDM's hybrid does not solve (the channel's is direct in Fourier space)."""
    if problem not in HYBRID_PROBLEMS:
        raise CfdbenchError(f"dcdm's hybrid runs the 2D flows' solver {list(HYBRID_PROBLEMS)}; '{dataset}' holds {problem} data")


# --------------------------------------------------------------------------- simulation


def simulate_hybrid(
    model: DCDMSolver, dataset: StoredDataset, case_ids: list[str], task: RolloutTask, device: str | torch.device = "cpu"
) -> HybridRuns:
    """Exact, hybrid-rollout and hybrid-one-step frames of ``case_ids`` over all of their stored frames,
    in one batch per solver grid."""
    generator = DatasetGenerator.of(dataset)
    n_frames = int(generator.settings["n_frames"])
    if task.stride != 1 or task.input_frames != 1 or task.frames_needed > n_frames:
        raise CfdbenchError(f"the hybrid rollout needs one input frame, stride 1 and at most {n_frames} frames")
    groups: dict[tuple[int, int], list[str]] = {}
    for case_id in case_ids:
        groups.setdefault(generator.cells(generator.cases[case_id]), []).append(case_id)
    runs = HybridRuns()
    model.eval()
    for cells, ids in groups.items():
        _simulate_batch(model, generator, cells, ids, task, torch.device(device), runs)
    return runs


@torch.no_grad()
def _simulate_batch(
    model: DCDMSolver, generator: DatasetGenerator, cells: tuple[int, int], ids: list[str], task: RolloutTask, device, runs: HybridRuns
) -> None:
    s, cases = generator.settings, [generator.cases[i] for i in ids]
    cfl, interval, frame_shape = float(s["cfl"]), float(s["frame_interval"]), generator.frame_shape
    model.check_applicable(generator.problem, cells)
    exact_solver, state = build_solver(cases, *cells, DTYPES[s["dtype"]], device)
    hybrid_solver, _ = build_solver(cases, *cells, DTYPES[s["dtype"]], device)
    operator, network, h = hybrid_solver.pressure_operator, model.network.to(device), model.hparams
    propose = lambda images: network(images.float()).to(images.dtype)  # noqa: E731
    hybrid_solver.replace_pressure_solve(
        lambda b: operator.solve_conjugate_directions(b, propose, h["tolerance"], h["max_iterations"], h["memory"])
    )
    if float(s.get("spinup", 0.0)) > 0:
        state = exact_solver.advance(state, float(s["spinup"]), cfl)
    frames = {who: [frame_fields(exact_solver, state, frame_shape)] for who in ("exact", "rollout", "one_step")}
    rollout = state
    dead = torch.zeros(len(ids), dtype=torch.bool, device=device)  # hybrid rollouts that blew up: NaN from then on
    last_target = task.target_frame_ids[-1]
    for frame in range(1, int(s["n_frames"])):
        restarted = hybrid_solver.advance(state, interval, cfl)
        if task.start_frame < frame <= last_target:
            counted = len(operator.iterations)
            rollout, seconds = _timed(lambda: hybrid_solver.advance(rollout, interval, cfl), device)
            runs.hybrid_seconds += seconds
            runs.iterations += operator.iterations[counted:]
            runs.final_residuals += operator.residuals[counted:]
            state, seconds = _timed(lambda: exact_solver.advance(state, interval, cfl), device)
            runs.exact_seconds += seconds
            dead |= hybrid_solver.diverged(rollout)
            rollout = _replace_cases(rollout, state, dead)  # so a blown-up case cannot set the batch's time step
            _record_divergence(runs, hybrid_solver, rollout, state, ~dead)
        else:
            state = exact_solver.advance(state, interval, cfl)
            rollout = state if frame <= task.start_frame else rollout
        for who, current in (("exact", state), ("rollout", rollout), ("one_step", restarted)):
            frames[who].append(frame_fields(exact_solver, current, frame_shape))
        frames["rollout"][-1] = tuple(torch.where(dead[:, None, None], torch.nan, f) for f in frames["rollout"][-1])
    flow = get_flow(generator.problem)
    for who, resampled in frames.items():
        si = frames_to_si(flow, cases, resampled, interval, frame_shape)
        kept = task.frames_needed if who == "rollout" else len(resampled)  # the rollout stops at its horizon
        for b, case_id in enumerate(ids):
            getattr(runs, who)[case_id] = np.stack([si.u[b], si.v[b], si.p[b]], axis=1)[:kept]


def _timed(advance, device) -> tuple[FlowState, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    state = advance()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return state, time.perf_counter() - started


def _replace_cases(state: FlowState, other: FlowState, chosen: torch.Tensor) -> FlowState:
    """``state`` with the ``chosen`` cases' fields taken from ``other``."""
    pick = lambda a, b: torch.where(chosen.reshape(-1, *[1] * (a.dim() - 1)), b, a)  # noqa: E731
    return FlowState(pick(state.u, other.u), pick(state.v, other.v), pick(state.p, other.p), state.time, state.body_force)


def _record_divergence(runs: HybridRuns, solver: NavierStokesSolver, hybrid: FlowState, exact: FlowState, alive) -> None:
    """RMS and max of ∇·u over the fluid cells (units U/L) of the live hybrid cases and the exact ones."""
    fluid = solver.pressure_operator.fluid
    for who, state in (("hybrid", hybrid), ("exact", exact)):
        divergence = (solver.grid.divergence(state.u, state.v) * fluid).double()[alive]
        if divergence.numel() == 0:
            continue
        rms = (divergence.square().sum(dim=(1, 2)) / fluid[alive].sum(dim=(1, 2))).sqrt()
        runs.divergence[who] += rms.cpu().tolist()
        runs.max_divergence[who] = max(runs.max_divergence[who], float(divergence.abs().max()))


# --------------------------------------------------------------------------- scoring


def score_hybrid(
    runs: HybridRuns, dataset: StoredDataset, fields: tuple[str, ...], task: RolloutTask, split: str = "test"
) -> tuple[RolloutResult, dict[str, float], float]:
    """(rollout result of the hybrid beside the identity, its one-step scores over every frame pair
    of the split, NMSE of the exact re-run against the stored frames over the rollout's targets)."""
    index = [("u", "v", "p").index(name) for name in fields]
    n_cases = len(runs.rollout)

    def predict(ids, inputs, cases):
        frames = torch.stack([torch.from_numpy(runs.rollout[i][task.target_frame_ids][:, index]) for i in ids])
        return frames, runs.hybrid_seconds * len(ids) / n_cases

    result = score_rollouts(predict, dataset, fields, task, split)
    one_step, reproduction = MetricAccumulator(2), MetricAccumulator(2)
    for case_id in result.case_ids:
        with dataset.open_case(case_id) as case:
            frame_ids = np.arange(1, case.n_frames)
            truth = torch.from_numpy(case.read(fields, frame_ids))
            mask = torch.from_numpy(np.asarray(case.mask, dtype=np.float32))[None, None].expand(
                len(frame_ids), 1, *truth.shape[2:]
            )
        one_step.update(torch.from_numpy(runs.one_step[case_id][frame_ids][:, index]), truth, mask)
        targets = np.asarray(task.target_frame_ids) - 1
        reproduction.update(torch.from_numpy(runs.exact[case_id][targets + 1][:, index]), truth[targets], mask[targets])
    scores = {m: v if np.isfinite(v) else None for m, v in one_step.mean().items()}
    return result, scores, reproduction.mean()["nmse"]


def hybrid_summary(model: DCDMSolver, runs: HybridRuns, reproduction_nmse: float) -> dict:
    """The entry's ``hybrid`` block: settings, training system, iterations, divergence, speed."""
    h = model.hparams
    iterations = np.asarray(runs.iterations)
    return {
        "pressure_solver": "DCDM (learned conjugate directions)",
        "tolerance": h["tolerance"],
        "max_iterations": h["max_iterations"],
        "memory": h["memory"],
        "trained_on": h["trained_on"],
        "projections": int(iterations.size),
        "iterations_mean": float(iterations.mean()),
        "iterations_max": int(iterations.max()),
        "unconverged_fraction": float((np.asarray(runs.final_residuals) > h["tolerance"]).mean()),
        "divergence_rms": {who: float(np.mean(values)) if values else None for who, values in runs.divergence.items()},
        "divergence_max": dict(runs.max_divergence),
        "seconds_per_rollout": {
            "hybrid": runs.hybrid_seconds / len(runs.rollout),
            "exact": runs.exact_seconds / len(runs.rollout),
        },
        "exact_rerun_nmse": float(reproduction_nmse),
    }
