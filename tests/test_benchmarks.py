"""Every benchmark script runs in its ``--quick`` mode, so none can rot (slow set: CI runs it).

Quick results go to ``benchmarks/results/quick/`` (git-ignored), never over a committed measurement.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("bench_*.py") if p.name != "bench_common.py")


def test_every_benchmark_is_listed():
    assert {"bench_solver.py", "bench_loader.py", "bench_flows.py"} <= set(SCRIPTS)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_in_quick_mode(script, tmp_path):
    env = {**os.environ, "CFDBENCH_DATA": str(tmp_path / "data"), "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick"], env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "written to" in result.stdout
