"""The solver loop's thread count (cfdbench.solvers.threads), from a synthetic machine load: the cores
other processes leave idle, and never a count the user pinned."""

from __future__ import annotations

import time

import pytest
import torch

from cfdbench.solvers import threads
from cfdbench.solvers.threads import MIN_SAMPLE_SECONDS, ThreadChooser


@pytest.fixture
def two_threads(monkeypatch):
    """Two torch threads on two cores, no OMP_NUM_THREADS, no earlier loop remembered; restored after."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_last_count", None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class Machine:
    """A machine's busy CPU seconds: this process's own, plus ``others`` cores busy all the time."""

    def __init__(self):
        self.others, self.start = 0.0, time.perf_counter()
        self.elsewhere = 0.0  # others' CPU seconds so far

    def busy_seconds(self) -> float:
        return time.process_time() + self.elsewhere

    def frame(self, chooser: ThreadChooser) -> int:
        """One frame of MIN_SAMPLE_SECONDS, the others busy meanwhile; the count it ran on."""
        with chooser.frame():
            ran_on = torch.get_num_threads()
            time.sleep(MIN_SAMPLE_SECONDS)
            self.elsewhere += self.others * MIN_SAMPLE_SECONDS
        return ran_on


def test_runs_on_the_cores_other_processes_leave(two_threads):
    machine = Machine()
    with ThreadChooser("cpu", machine.busy_seconds) as chooser:
        assert chooser.active
        assert [machine.frame(chooser) for _ in range(2)] == [2, 2], "idle: every thread"
        machine.others = 1.0  # another job takes a core: two spinning threads would wait for each other
        assert [machine.frame(chooser) for _ in range(3)] == [2, 1, 1], "one frame later, one thread"
        machine.others = 0.0
        assert [machine.frame(chooser) for _ in range(2)] == [1, 2], "and back when it ends"
        machine.others = 1.0
        machine.frame(chooser)
    assert torch.get_num_threads() == 2, "the process's count is restored on exit"
    following = ThreadChooser("cpu", machine.busy_seconds)  # the next loop (batch of cases) starts where this one ended
    with following:
        assert machine.frame(following) == 1


def test_leaves_a_pinned_or_single_thread_alone(two_threads, monkeypatch):
    assert not ThreadChooser("cuda").active
    assert not ThreadChooser("cpu", lambda: None).active, "no /proc/stat: torch's count as it is"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert not ThreadChooser("cpu").active, "OMP_NUM_THREADS is the user's choice"
    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    chooser = ThreadChooser("cpu")
    assert not chooser.active
    with chooser.frame():
        assert torch.get_num_threads() == 1


def test_reads_the_machine_load_here():
    busy = threads.machine_cpu_seconds()
    assert busy is None or busy > 0  # Linux: /proc/stat
