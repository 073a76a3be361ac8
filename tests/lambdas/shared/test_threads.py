"""lambdas/shared/threads.py: the kept I/O pool and run_each."""

from __future__ import annotations

import os
import threading

import pytest

from lambdas.shared import threads


def test_run_each_keeps_the_order_and_calls_every_item_once():
    calls = []
    lock = threading.Lock()

    def double(n):
        with lock:
            calls.append(n)
        return 2 * n

    assert threads.run_each(double, list(range(50)), concurrency=8) == [2 * n for n in range(50)]
    assert sorted(calls) == list(range(50))


def test_run_each_never_has_more_calls_in_flight_than_its_concurrency():
    in_flight, most = 0, 0
    lock = threading.Lock()
    all_started = threading.Barrier(4, timeout=10)  # four calls must be able to run at the same time

    def call(n):
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        if n < 4:
            all_started.wait()
        with lock:
            in_flight -= 1
        return n

    assert threads.run_each(call, list(range(40)), concurrency=4) == list(range(40))
    assert most == 4


def test_run_each_reraises_the_first_error_after_every_loop_stopped():
    def call(n):
        if n == 5:
            raise KeyError("boom")
        return n

    with pytest.raises(KeyError, match="boom"):
        threads.run_each(call, list(range(30)), concurrency=3)


def test_the_pool_is_kept_and_a_forked_child_gets_its_own(monkeypatch):
    pool = threads.io_pool()
    assert threads.io_pool() is pool
    monkeypatch.setattr(os, "getpid", lambda: -1)  # what a forked child sees: another pid
    assert threads.io_pool() is not pool


def test_concurrency_below_one_is_refused():
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        threads.run_each(str, [1, 2], concurrency=0)
