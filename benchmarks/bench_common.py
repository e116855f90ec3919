"""What every benchmark script reports the same way: the device it ran on, and its result file."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from cfdbench.entries.entry import cpu_model


def describe_device(device: str) -> str:
    """The GPU's name, or the CPU model with its core and torch thread counts."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()} ({os.cpu_count()} logical cores, torch {torch.get_num_threads()} threads)"


def result_path(path: Path, quick: bool) -> Path:
    """Where a result goes: ``path`` (under ``benchmarks/results/``, committed), or for a ``--quick``
    smoke run ``benchmarks/results/quick/`` (git-ignored), so a smoke run never replaces a measurement."""
    return path.parent / "quick" / path.name if quick else path


def publish(text: str, path: Path, quick: bool = False) -> None:
    """Print the Markdown result and write it to :func:`result_path`."""
    print()
    print(text)
    path = result_path(path, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"written to {path}")


def blas_info() -> list[str]:
    """Thread-pool lines from threadpoolctl when importable, plus the relevant environment."""
    lines = []
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append("threadpoolctl: not importable (skipped)")
    else:
        for pool in threadpool_info():
            keys = ("user_api", "internal_api", "num_threads", "version", "architecture")
            lines.append("threadpool: " + ", ".join(f"{k}={pool.get(k)}" for k in keys))
    names = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    lines.append("env: " + ", ".join(f"{name}={os.environ.get(name, '(unset)')}" for name in names))
    return lines


def environment_lines(device: str, quick: bool) -> list[str]:
    """The Markdown bullet lines every result file starts with: device, versions, threads, mode, date."""
    return [
        f"- device: {describe_device(device)}",
        f"- torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"Python {platform.python_version()}",
        *(f"- {line}" for line in blas_info()),
        f"- mode: {'--quick' if quick else 'full'}; {time.strftime('%Y-%m-%d %H:%M')}",
    ]
