"""Figures written by the evaluator: error-vs-step curves (one model, or many on one axis), truth /
prediction / error panels, an animated rollout and energy spectra."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cfdbench.io import atomic_path  # noqa: E402
from cfdbench.metrics.channel import PROFILES, SCORE_LABELS  # noqa: E402


def _values(values: list[float | None]) -> np.ndarray:
    """A curve with diverged (None) points as NaN, which matplotlib leaves out."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


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
        mean = _values(curves[who][metric]["mean"])
        std = _values(curves[who][metric]["std"])
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


def plot_models_curves(
    series: dict[str, list[float | None]], steps: list[int], title: str, path: Path | None = None, baseline: str = "identity"
):
    """Every model's mean NMSE per rollout step on one log axis, the baseline dashed; saved to
    ``path`` when given, else the figure is returned (for experiment trackers)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, values in series.items():
        style = {"color": "black", "linestyle": "--"} if label == baseline else {}
        ax.plot(steps, _values(values), marker="o", ms=2, label=label, **style)
    ax.set_yscale("log")
    ax.set_xlabel("rollout step")
    ax.set_ylabel("NMSE (mean over cases)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path) if path else fig


def animate_rollout(example: dict, field_names: tuple[str, ...], steps: list[int], path: Path, title: str) -> Path:
    """A GIF of the first case's rollout: truth, prediction and error of the first field, one frame per step."""
    from matplotlib.animation import PillowWriter

    truth, pred = example["truth"][:, 0], np.nan_to_num(example["prediction"][:, 0])
    lo, hi = float(truth.min()), float(truth.max())
    bound = float(np.abs(pred - truth).max()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    images = []
    for ax, data, cmap, vmin, vmax, name in (
        (axes[0], truth, "viridis", lo, hi, "truth"),
        (axes[1], pred, "viridis", lo, hi, "prediction"),
        (axes[2], pred - truth, "RdBu_r", -bound, bound, "error"),
    ):
        images.append((ax.imshow(data[0], origin="lower", cmap=cmap, vmin=vmin, vmax=vmax), data))
        ax.set_title(f"{field_names[0]} {name}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    label = fig.suptitle(f"{title}, step {steps[0]}", fontsize=9)
    writer = PillowWriter(fps=4)
    try:
        with atomic_path(path) as tmp:
            with writer.saving(fig, str(tmp.with_suffix(".gif")), dpi=70):
                for k, step in enumerate(steps):
                    for image, data in images:
                        image.set_data(data[k])
                    label.set_text(f"{title}, step {step}")
                    writer.grab_frame()
            tmp.with_suffix(".gif").replace(tmp)
    finally:
        plt.close(fig)
    return path


def plot_spectra(example: dict, field_names: tuple[str, ...], steps: list[int], path: Path, title: str) -> Path:
    """Kinetic-energy spectra E(k) of truth and prediction at the first and last rollout step."""
    import torch

    from cfdbench.metrics.spectral import energy_spectrum

    velocity = [field_names.index(c) for c in ("u", "v")]
    mask = torch.as_tensor(example["mask"], dtype=torch.float64)[None, None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, style in ((0, ":"), (len(steps) - 1, "-")):
        for name, colour in (("truth", "black"), ("prediction", "tab:red")):
            frames = np.nan_to_num(example[name][k, velocity])
            spectrum = energy_spectrum(torch.as_tensor(frames, dtype=torch.float64)[None], mask)[0].numpy()
            shells = np.arange(1, spectrum.size)
            ax.loglog(shells, np.maximum(spectrum[1:], 1e-30), style, color=colour, label=f"{name}, step {steps[k]}")
    ax.set_xlabel("|k| (cycles per domain)")
    ax.set_ylabel("E(k)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


CHANNEL_PANELS = tuple((name, SCORE_LABELS[name]) for name in PROFILES)


def plot_channel_profiles(profiles: dict, path: Path, title: str) -> Path:
    """The channel statistics of the first test case's rollout against the wall-normal coordinate:
    mean velocity, rms fluctuations and Reynolds shear stress of the truth and of each predictor."""
    y = profiles["y"]
    fig, axes = plt.subplots(1, len(CHANNEL_PANELS), figsize=(3 * len(CHANNEL_PANELS), 3.4), sharey=True)
    for ax, (name, label) in zip(axes, CHANNEL_PANELS):
        for who, style in (("truth", "-k"), ("model", "-o"), ("identity", "--s")):
            if who in profiles:
                ax.plot(profiles[who][name], y, style, ms=3, label=who)
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("y / half-height")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)
