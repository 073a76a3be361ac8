"""lambdas/shared/processes.py: forked workers reporting through pipes, failures, the worker count rule."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from lambdas.shared.processes import WorkerFailed, run_in_processes, worker_count


class Refused(Exception):
    """A picklable exception raised in a worker."""


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel")
        self.callback = lambda: None  # lambdas do not pickle


def _no_children_left() -> bool:
    return multiprocessing.active_children() == []


def test_each_share_runs_in_its_own_child_and_results_come_back_in_order():
    parent = os.getpid()
    results = run_in_processes(3, lambda index: (index, os.getpid(), os.getppid()))
    assert [index for index, _, _ in results] == [0, 1, 2]
    pids = {pid for _, pid, _ in results}
    assert len(pids) == 3 and parent not in pids
    assert {ppid for _, _, ppid in results} == {parent}
    assert _no_children_left()


def test_a_child_inherits_the_parents_memory_without_pickling():
    shares = [[lambda: "a"], [lambda: "b"]]  # lambdas: not picklable, only inheritable
    assert run_in_processes(2, lambda index: shares[index][0]()) == ["a", "b"]


def test_a_worker_that_raises_fails_the_call_with_its_exception_and_the_others_are_stopped(tmp_path):
    survivor = tmp_path / "finished"

    def work(index: int) -> int:
        if index == 0:
            raise Refused("table said no")
        time.sleep(30)  # stopped long before: the call must not wait for it
        survivor.write_text("should not happen")
        return index

    with pytest.raises(Refused, match="table said no") as raised:
        run_in_processes(2, work)
    assert any("worker process 1 of 2" in note for note in raised.value.__notes__)
    assert _no_children_left() and not survivor.exists()


def test_a_worker_that_dies_without_a_result_fails_the_call():
    def work(index: int) -> int:
        if index == 1:
            os._exit(3)
        return index

    with pytest.raises(WorkerFailed, match=r"worker process 2 of 2 .* ended without a result \(exit code 3\)"):
        run_in_processes(2, work)
    assert _no_children_left()


def test_an_exception_that_cannot_be_sent_back_fails_the_call_with_its_text():
    def work(index: int) -> int:
        raise Unpicklable()

    with pytest.raises(WorkerFailed, match="Unpicklable: cannot travel"):
        run_in_processes(1, work)
    assert _no_children_left()


@pytest.mark.parametrize(
    ("maximum", "memory_mb", "cpus", "expected"),
    [
        (6, 1769, 2, 1),  # one vCPU: stay in the process
        (6, 2048, 2, 1),  # 1.16 vCPU: a second process would mostly wait
        (6, 3008, 2, 2),
        (6, 3538, 2, 2),
        (6, 10240, 8, 6),  # Lambda's maximum: 6 vCPUs
        (6, 10240, 2, 2),  # never more than the CPUs the process may run on
        (4, 10240, 8, 4),  # nor than the configured maximum
        (6, None, 2, 2),  # memory unknown (outside Lambda): the CPUs
        (6, 128, 2, 1),
        (1, 10240, 8, 1),
    ],
)
def test_worker_count_is_the_functions_vcpus_within_the_cpus_and_the_maximum(maximum, memory_mb, cpus, expected):
    assert worker_count(maximum=maximum, memory_mb=memory_mb, cpus=cpus) == expected
