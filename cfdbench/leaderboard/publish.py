"""Publishing the leaderboard to Weights & Biases: one run holding a table of every entry's scores,
and per dataset and rollout task a chart of all models' NMSE per step (as an image and as a W&B
line plot).

Offline by default (``WANDB_MODE=offline``): the run is written under ``runs/wandb/`` and can be
synced later with ``wandb sync``, so publishing needs no account; ``online=True`` syncs at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from cfdbench.cards import project_root
from cfdbench.entries.entry import load_entries
from cfdbench.leaderboard.render import agreed_identity, dataset_tables, hash_groups
from cfdbench.plots import plot_models_curves

SUMMARY_METRICS = ("nmse", "mse", "mae", "vrmse", "divergence")


def entry_rows(entries: list[dict]) -> tuple[list[str], list[list]]:
    """Columns and rows of the summary table: one row per entry (rollout scores, valid time, cost)."""
    columns = ["dataset", "split", "model", "entry_id", "rollout_steps", "parameters"]
    columns += [f"rollout_{m}" for m in SUMMARY_METRICS] + ["identity_rollout_nmse", "valid_steps", "seconds_per_step"]
    rows = []
    for e in entries:
        scores = e["metrics"]["rollout"]
        rows.append(
            [e["dataset"]["name"], e["dataset"]["split"], e["model"]["name"], e["entry_id"], e["task"]["rollout_steps"]]
            + [e["model"]["parameter_count"]]
            + [scores["model"].get(m) for m in SUMMARY_METRICS]
            + [scores["identity"]["nmse"], e["valid_time"]["model"]["mean_steps"], e["cost"]["seconds_per_step"]]
        )
    return columns, rows


def publish_wandb(
    entries_dir: Path, project: str = "cfdbench-leaderboard", online: bool = False, runs_root: Path | None = None
) -> Path:
    """Log every entry under ``entries_dir`` as one W&B run (its files under ``runs_root``, default
    ``runs/``); returns the run's local folder."""
    import matplotlib.pyplot as plt
    import wandb

    entries = load_entries(entries_dir)
    root = Path(runs_root or project_root() / "runs")
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(project=project, mode="online" if online else "offline", dir=str(root), job_type="leaderboard")
    try:
        columns, rows = entry_rows(entries)
        logged = {"entries": wandb.Table(columns=columns, data=rows)}
        for dataset, split, tables in dataset_tables(entries):
            for table in (group for t in tables if t.block == "rollout" for group in hash_groups(t)):
                steps = table.entries[0]["curves"]["steps"]
                series = {e["entry_id"]: e["curves"]["model"]["nmse"]["mean"] for e in table.entries}
                series["identity"] = table.entries[0]["curves"]["identity"]["nmse"]["mean"]
                key = f"{dataset}/{split}/rollout{len(steps)}/{table.entries[0]['dataset']['content_hash'][:8]}"
                figure = plot_models_curves(series, steps, f"{dataset}: NMSE per rollout step")
                logged[f"{key}/nmse_image"] = wandb.Image(figure)
                plt.close(figure)
                finite = {k: [v if v is not None else float("nan") for v in vals] for k, vals in series.items()}
                logged[f"{key}/nmse"] = wandb.plot.line_series(
                    xs=steps, ys=list(finite.values()), keys=list(finite), title=f"{dataset} NMSE", xname="step"
                )
                agreed_identity(list(table.entries), table)  # the same check the page makes
        run.log(logged)
        return Path(run.dir).parent
    finally:
        run.finish()
