"""What every benchmark script reports the same way: the device it ran on, and its result file."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cfdbench.leaderboard.entry import cpu_model


def describe_device(device: str) -> str:
    """The GPU's name, or the CPU model with its core and torch thread counts."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()} ({os.cpu_count()} logical cores, torch {torch.get_num_threads()} threads)"


def publish(text: str, path: Path) -> None:
    """Print the Markdown result and write it to ``path`` (under ``benchmarks/results/``)."""
    print()
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"written to {path}")
