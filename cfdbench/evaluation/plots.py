"""Figures written by the evaluator: error-vs-step curves and truth / prediction / error panels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cfdbench.io import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    """Atomic PNG write."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_rollout_curves(curves: dict, steps: list[int], path: Path, title: str, metric: str = "nmse") -> Path:
    """Mean ± one standard deviation over cases of ``metric`` per rollout step, for each predictor."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for who, style in (("model", "-o"), ("identity", "--s")):
        if who not in curves:
            continue
        mean = np.asarray(curves[who][metric]["mean"])
        std = np.asarray(curves[who][metric]["std"])
        ax.plot(steps, mean, style, ms=3, label=who)
        ax.fill_between(steps, np.clip(mean - std, mean * 1e-3, None), mean + std, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("rollout step")
    ax.set_ylabel(metric.upper())
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_fields(example: dict, field_names: tuple[str, ...], steps: list[int], path: Path, title: str) -> Path:
    """Rows: each field at the first and last rollout step; columns: truth, prediction, error."""
    truth, pred = example["truth"], example["prediction"]  # (K, C, H, W)
    show = sorted({0, len(steps) - 1})
    rows = [(c, k) for c in range(len(field_names)) for k in show]
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 2.8 * len(rows)), squeeze=False)
    for row, (c, k) in enumerate(rows):
        lo, hi = truth[k, c].min(), truth[k, c].max()
        error = pred[k, c] - truth[k, c]
        bound = np.abs(error).max() or 1.0
        panels = (
            (truth[k, c], "truth", "viridis", lo, hi),
            (pred[k, c], "prediction", "viridis", lo, hi),
            (error, "error", "RdBu_r", -bound, bound),
        )
        for col, (data, name, cmap, vmin, vmax) in enumerate(panels):
            ax = axes[row, col]
            image = ax.imshow(data, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(f"{field_names[c]} {name}, step {steps[k]}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title)
    return _save(fig, path)
