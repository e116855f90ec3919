"""From per-case, per-step values to the numbers of an entry: step windows, valid time, confidence.

Values are arrays (cases, steps). A step at which a case's rollout diverged holds ``inf``; any
summary that includes it is ``None`` ("diverged"), never a number computed without it.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95
# Valid time counts the steps before NMSE first exceeds this (a relative L2 error of about 0.32).
# Not 1: a flow that starts from rest makes the identity's NMSE exactly 1 at every step, and a flow
# relaxing to a steady state keeps the identity below 1 for ever, so no model could beat it there.
VALID_TIME_NMSE = 0.1


def step_windows(steps: int) -> dict[str, tuple[int, int]]:
    """The Well's rollout windows over 1-based steps, as (first, last), cut to the horizon:
    step 1, steps 1-5, 6-12 and 13-K."""
    windows = {"1": (1, 1), "1-5": (1, 5), "6-12": (6, 12), f"13-{steps}": (13, steps)}
    return {name: (first, min(last, steps)) for name, (first, last) in windows.items() if first <= steps}


def finite_mean(values: np.ndarray) -> float | None:
    """The mean, or None when a value is not finite (a diverged step)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if np.all(np.isfinite(values)) else None


def windowed_means(values: np.ndarray) -> dict[str, float | None]:
    """Mean over cases and the steps of each window."""
    return {name: finite_mean(values[:, first - 1 : last]) for name, (first, last) in step_windows(values.shape[1]).items()}


def valid_steps(nmse: np.ndarray, threshold: float = VALID_TIME_NMSE) -> np.ndarray:
    """Per case, the number of steps before NMSE first exceeds ``threshold`` (a diverged step exceeds
    it); K when it never does within the horizon (censored)."""
    exceeded = ~(np.asarray(nmse) <= threshold)  # NaN and inf count as exceeded
    first = np.where(exceeded.any(axis=1), exceeded.argmax(axis=1), nmse.shape[1])
    return first.astype(int)


def valid_time(
    nmse: np.ndarray, seconds_per_step: np.ndarray | float, threshold: float = VALID_TIME_NMSE
) -> dict[str, float | int]:
    """Summary of :func:`valid_steps` over cases: mean and median steps, the mean in seconds (each
    case with its own step length), and how many cases never exceeded the threshold (their valid
    time is at least the horizon)."""
    steps = valid_steps(nmse, threshold)
    return {
        "threshold_nmse": threshold,
        "mean_steps": float(steps.mean()),
        "median_steps": float(np.median(steps)),
        "mean_seconds": float(np.mean(steps * np.broadcast_to(seconds_per_step, steps.shape))),
        "censored_cases": int((steps == nmse.shape[1]).sum()),
    }


def bootstrap_interval(per_case: np.ndarray, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES) -> list[float] | None:
    """Percentile bootstrap interval (95 %) of the mean over cases, resampling cases with replacement;
    None when a case is not finite."""
    per_case = np.asarray(per_case, dtype=np.float64)
    if not np.all(np.isfinite(per_case)):
        return None
    rng = np.random.default_rng(seed)
    means = per_case[rng.integers(0, per_case.size, size=(samples, per_case.size))].mean(axis=1)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]
