"""Which CPUs the benchmark's processes run on (``bench.hotpath --pin``).

The issue's targets are *per worker*: a worker's events/s against the ceiling's and the peer's,
each on one core. Unpinned on a 2-core machine, the worker shares its cores with the broker, the
load generator and (in trainer mode) the trainer and the challengers, and its events/s then says
as much about them as about the worker. Pinned, the process measured (the ceiling's loop, River's
loop, the peer, the one worker) runs alone on :data:`MEASURED`, and everything else (the broker,
this driver, the trainer and the challengers) on the other cores. Two workers run on every core,
as unpinned.

Affinity is per thread on Linux: :func:`pin` sets it on every thread a process has, and threads
started later inherit it from the thread that starts them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

#: The core the measured process has to itself.
MEASURED = frozenset({0})

_pinned = False
_broker_pid: int | None = None


def all_cores() -> frozenset[int]:
    return frozenset(range(os.cpu_count() or 1))


def others() -> frozenset[int]:
    """Every core but :data:`MEASURED` (all of them on a single-core machine)."""
    return (all_cores() - MEASURED) or all_cores()


def pin(pid: int | None, cores: frozenset[int]) -> None:
    """Run every thread of process ``pid`` on ``cores`` (threads it starts later inherit it)."""
    if pid is None:
        return
    try:
        tids = [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return  # gone already
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, cores)


def enable(broker_pid: int | None) -> None:
    """From now on, the broker and this driver run on :func:`others`; see :func:`measured`."""
    global _pinned, _broker_pid  # noqa: PLW0603 - one layout per benchmark run
    _pinned, _broker_pid = True, broker_pid
    pin(broker_pid, others())
    pin(os.getpid(), others())


def measured() -> frozenset[int] | None:
    """Where the measured process runs: :data:`MEASURED` when pinned, else None (anywhere)."""
    return MEASURED if _pinned else None


def rest() -> frozenset[int] | None:
    """Where the processes beside it (trainer, challengers) run: the other cores when pinned."""
    return others() if _pinned else None


def pinner(cores: frozenset[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that starts the child on ``cores``."""
    if cores is None:
        return None
    return lambda: os.sched_setaffinity(0, cores)


@contextlib.contextmanager
def running_on(cores: frozenset[int] | None) -> Iterator[None]:
    """This process (every thread) on ``cores`` meanwhile (an in-process loop measured), then back."""
    if cores is None:
        yield
        return
    before = frozenset(os.sched_getaffinity(0))
    pin(os.getpid(), cores)
    try:
        yield
    finally:
        pin(os.getpid(), before)


@contextlib.contextmanager
def shared() -> Iterator[None]:
    """Everything on every core meanwhile (two workers), children started meanwhile too."""
    if not _pinned:
        yield
        return
    pin(_broker_pid, all_cores())
    pin(os.getpid(), all_cores())
    try:
        yield
    finally:
        pin(_broker_pid, others())
        pin(os.getpid(), others())
