"""How many CPU threads a solver's time loop uses: the cores other processes leave idle.

Torch's OpenMP threads spin at every barrier of every parallel operation. On a machine whose cores
are shared with other work, a thread that the scheduler has set aside keeps the others spinning for
the rest of its time slice, at every one of the step's hundreds of operations. Measured on the
2-core machine (``cfdbench data generate dam-tiny``): 31.5 s on two threads and 40.7 s on one when
the machine is idle, but 144 s on two threads against 39 s on one beside a single busy process (and
112.7 s idle, 64.7 s beside it, with ``OMP_WAIT_POLICY=PASSIVE``, which therefore does not help).

A generated case's bytes do not depend on the thread count (the transforms run single-threaded and
the rest is element-wise; ``tests/test_flows.py`` generates on one thread and compares), so the
count may change between frames. :class:`ThreadChooser` reads, after each frame, how much CPU the
machine spent (``/proc/stat``) beyond this process's own (``time.process_time``): that is the load
of other processes, and the next frames run on the cores it leaves (at least one, at most torch's
count). Timing both counts against each other was tried first: its trial frames on the wrong count
cost more than they saved on short runs. Where ``/proc/stat`` is absent, or ``OMP_NUM_THREADS`` is
set (the user's choice), or the process is on one thread, the count is left alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

MIN_SAMPLE_SECONDS = 0.2  # /proc/stat counts in ticks of 10 ms: decide on at least this much wall time
_last_count: int | None = None  # the count this process's previous loop ended on: the next starts there


def machine_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``); None where unreadable."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


class ThreadChooser:
    """Runs each frame of a CPU solver loop on the cores other processes leave idle (at least one,
    at most the process's torch thread count), measured over the frames before; restores the count
    on exit."""

    def __init__(self, device: torch.device | str, machine_cpu: Callable[[], float | None] = machine_cpu_seconds):
        self.threads = torch.get_num_threads()
        self.machine_cpu = machine_cpu
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.active = (
            torch.device(device).type == "cpu"
            and self.threads > 1
            and "OMP_NUM_THREADS" not in os.environ
            and not torch.compiler.is_compiling()
            and machine_cpu() is not None
        )
        self.current = _last_count if _last_count is not None and _last_count <= self.threads else self.threads
        self._mark = self._sample() if self.active else None

    def _sample(self) -> tuple[float, float, float]:
        """(wall, machine busy CPU, this process's CPU) seconds, now."""
        return time.perf_counter(), self.machine_cpu() or 0.0, time.process_time()

    def __enter__(self) -> ThreadChooser:
        return self

    def __exit__(self, *exc) -> None:
        global _last_count
        if self.active:
            torch.set_num_threads(self.threads)
            _last_count = self.current

    @contextmanager
    def frame(self) -> Iterator[None]:
        """Run one frame of the loop on the count the load measured so far leaves."""
        if not self.active:
            yield
            return
        if torch.get_num_threads() != self.current:
            torch.set_num_threads(self.current)
        yield
        self._update()

    def _update(self) -> None:
        wall, busy, own = self._sample()
        last_wall, last_busy, last_own = self._mark
        if wall - last_wall < MIN_SAMPLE_SECONDS:
            return
        others = max(0.0, (busy - last_busy) - (own - last_own)) / (wall - last_wall)
        self.current = max(1, min(self.threads, self.cores - round(others)))
        self._mark = (wall, busy, own)
