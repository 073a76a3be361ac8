"""Threads for I/O-bound work that repeats every invocation (the stream export's PUTs and its Glue call).

A new ``ThreadPoolExecutor`` per batch starts its threads again every time, and one ``Future`` per object costs a
``Condition`` and a few locks: profiled (py-spy, GIL samples) on 100-record batches it was about a sixth of the
export's CPU. :func:`io_pool` is one executor per process, made on first use and kept for the container's
life (its idle threads wait on a queue: nothing runs while Lambda freezes the container), and :func:`run_each`
runs a function over many items with a fixed number of loops on it instead of one task per item.

Per process: a forked child (lambdas.shared.processes) gets a pool of its own; it never uses its parent's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_THREADS = 64  # the cap of run_each's concurrency (the clients' pools hold 32 connections anyway)

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_lock = threading.Lock()


def io_pool() -> ThreadPoolExecutor:
    """The process's shared executor for I/O-bound tasks (threads are started as needed, then reused)."""
    global _pool, _pool_pid
    pid = os.getpid()
    if _pool is None or _pool_pid != pid:
        with _lock:
            if _pool is None or _pool_pid != pid:
                _pool, _pool_pid = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="io"), pid
    return _pool


def run_each(function: Callable[[T], R], items: Sequence[T], *, concurrency: int) -> list[R]:
    """``[function(item) for item in items]`` with at most ``concurrency`` calls at a time, results in order.

    ``min(concurrency, len(items))`` loops run on :func:`io_pool`, each taking the next item until none is left
    (loops beyond the pool's MAX_THREADS wait for a thread: the concurrency is capped there, nothing deadlocks).
    ``function`` should not raise (return the error instead); if it does, the first exception is re-raised here
    after every loop stopped, and items no loop reached get no call.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if len(items) <= 1 or concurrency == 1:
        return [function(item) for item in items]
    results: list[R | None] = [None] * len(items)
    indexes = iter(range(len(items)))
    taking = threading.Lock()
    failed = threading.Event()

    def loop() -> None:
        while not failed.is_set():
            with taking:
                index = next(indexes, None)
            if index is None:
                return
            try:
                results[index] = function(items[index])
            except BaseException:
                failed.set()
                raise

    loops = [io_pool().submit(loop) for _ in range(min(concurrency, len(items)))]
    errors = [loop.exception() for loop in loops]  # waits for every loop
    for error in errors:
        if error is not None:
            raise error
    return results  # type: ignore[return-value]
