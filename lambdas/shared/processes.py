"""Run work in forked worker processes that report back through pipes: what works on AWS Lambda.

Lambda has no ``/dev/shm``, so ``multiprocessing.Pool``, ``Queue``, ``Lock`` and ``Manager`` fail there; a
``multiprocessing.Process`` with a ``Pipe`` works (a pipe is a pair of file descriptors, no shared memory). One
Python process is bound by the GIL, so CPU-bound work uses the function's vCPUs only through processes.

:func:`run_in_processes` forks ``count`` children (the ``fork`` start method: a child inherits the parent's
memory copy-on-write, so its input needs no pickling); child ``i`` runs ``work(i)`` and sends the (picklable)
result back through its own pipe, once. The parent waits for every child and returns the results in order.

Failure: a child that raises sends its exception back (when it pickles; otherwise :class:`WorkerFailed` with
its text), a child that dies without a result (killed, out of memory, ``os._exit``) is :class:`WorkerFailed`
with its exit code. Either way the parent terminates the other children, reaps them, and raises — the
caller's failure semantics do not change (the exception is the child's own, with a note saying which
worker raised it). Children are never left behind: every one is joined before this function returns or raises.

:func:`worker_count` is the rule for how many processes pay: one per vCPU the function has, where Lambda
gives about one vCPU per 1,769 MB of configured memory (up to 6 at 10,240 MB), never more than the CPUs
this process may run on, nor than a configured maximum.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

T = TypeVar("T")

LAMBDA_MB_PER_VCPU = 1769  # AWS Lambda: "at 1,769 MB, a function has the equivalent of one vCPU"


class WorkerFailed(RuntimeError):
    """A worker process died without a result, or raised an exception that could not be sent back."""


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; os.cpu_count() where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(*, maximum: int, memory_mb: int | None, cpus: int) -> int:
    """Worker processes worth running: ``round(memory_mb / 1769)`` vCPUs (the function's share; unknown memory,
    as outside Lambda: not a limit), at most ``cpus`` and ``maximum``, at least 1 (1 = stay in this process)."""
    by_memory = max(1, round(memory_mb / LAMBDA_MB_PER_VCPU)) if memory_mb else cpus
    return max(1, min(maximum, cpus, by_memory))


def run_in_processes(count: int, work: Callable[[int], T]) -> list[T]:
    """``[work(0), …, work(count - 1)]``, each computed in its own forked child (module doc)."""
    context = multiprocessing.get_context("fork")
    children: list[tuple[Any, Connection]] = []
    gc.freeze()  # the children inherit the heap: keep their collector from touching (and copying) its pages
    try:
        for index in range(count):
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(
                target=_child, args=(work, index, count, sender), name=f"worker-{index + 1}-of-{count}", daemon=True
            )
            child.start()
            sender.close()  # only the child holds the sending end: its death is EOF on the receiver
            children.append((child, receiver))
    except BaseException:
        _stop(children, terminate=True)
        raise
    finally:
        gc.unfreeze()
    try:
        results = _collect(children)
    except BaseException:
        _stop(children, terminate=True)
        raise
    _stop(children, terminate=False)
    return results


def _child(work: Callable[[int], Any], index: int, count: int, sender: Connection) -> None:
    try:
        result = work(index)
    except BaseException as exc:  # everything goes back to the parent, which raises it
        where = f"raised in worker process {index + 1} of {count} (pid {os.getpid()})"
        try:
            sender.send(("raised", (pickle.dumps(exc), where)))
        except Exception:  # an exception that does not pickle: its text
            text = "".join(traceback.format_exception(exc)).strip()
            sender.send(("failed", f"{where}: {text}"))
        sender.close()
        sys.exit(1)
    sender.send(("done", result))
    sender.close()


def _collect(children: list[tuple[Any, Connection]]) -> list[Any]:
    results: list[Any] = [None] * len(children)
    waiting = {receiver: index for index, (_, receiver) in enumerate(children)}
    while waiting:
        for receiver in wait(list(waiting)):
            index = waiting.pop(receiver)
            child = children[index][0]
            try:
                status, payload = receiver.recv()
            except EOFError:
                child.join()
                raise WorkerFailed(
                    f"worker process {index + 1} of {len(children)} (pid {child.pid}) ended without a result "
                    f"(exit code {child.exitcode})"
                ) from None
            finally:
                receiver.close()
            if status == "raised":
                pickled, where = payload
                exc = pickle.loads(pickled)  # noqa: S301  # nosec B301  # our own child, through our own pipe
                exc.add_note(where)  # added here: not every exception pickles its notes (botocore's ClientError)
                raise exc
            if status == "failed":
                raise WorkerFailed(payload)
            results[index] = payload
    return results


def _stop(children: list[tuple[Any, Connection]], *, terminate: bool) -> None:
    """Reap every child; after a failure, terminate those still running first (their work is abandoned)."""
    for child, receiver in children:
        if terminate and child.is_alive():
            child.terminate()
        child.join()
        receiver.close()
