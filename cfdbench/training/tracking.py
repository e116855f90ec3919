"""Experiment logs: ``history.json`` and ``history.csv`` always (nothing depends on an account),
and Weights & Biases when asked, offline by default.

An offline W&B run lives in ``<run_dir>/wandb/`` and is uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from cfdbench.io import write_json_atomic, write_text_atomic


class Tracker:
    """Per-epoch records to JSON and CSV, mirrored to W&B when ``wandb`` is offline or online."""

    def __init__(self, run_dir: Path, config: dict[str, Any], wandb_mode: str = "off", project: str = "cfdbench"):
        self.run_dir = Path(run_dir)
        self.history: list[dict[str, Any]] = []
        self.config, self.wandb_mode, self.project = config, wandb_mode, project
        self.run = None  # the W&B run, started at the first record (the run folder exists by then)

    def _wandb(self):
        if self.wandb_mode == "off":
            return None
        if self.run is None:
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                project=self.project, mode=self.wandb_mode, dir=str(self.run_dir), config=self.config, reinit="finish_previous"
            )
        return self.run

    def log_epoch(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        self.write()
        run = self._wandb()
        if run is not None:
            run.log(record, step=int(record["epoch"]))

    def restore(self, history: list[dict[str, Any]]) -> None:
        """Continue the logs of a resumed run."""
        self.history = list(history)

    def log_media(self, curves: dict[str, list[float | None]] | None = None, images: dict[str, Path] | None = None) -> None:
        """Rollout curves and sample images of the evaluated model (W&B only; files are already on disk)."""
        run = self._wandb()
        if run is None:
            return
        import wandb

        payload: dict[str, Any] = {}
        for name, values in (curves or {}).items():
            table = wandb.Table(columns=["step", name], data=[[i + 1, v] for i, v in enumerate(values)])
            payload[f"rollout/{name}"] = wandb.plot.line(table, "step", name, title=f"rollout {name}")
        for name, path in (images or {}).items():
            if Path(path).is_file():
                payload[f"images/{name}"] = wandb.Image(str(path))
        run.log(payload)

    def write(self) -> None:
        write_json_atomic(self.run_dir / "history.json", self.history)
        columns = list(dict.fromkeys(key for record in self.history for key in record))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.history)
        write_text_atomic(self.run_dir / "history.csv", text.getvalue())

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
