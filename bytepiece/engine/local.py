"""The embedded backend: tasks on this process's threads (no extra dependency).

The numba kernels release the GIL, so threads give real parallelism for the heavy part of every
task; the reading and decoding around it overlaps with other tasks' kernels.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from ..errors import BytePieceError, InputError, TrainingError
from .base import Engine, EngineNotice, R, T
from .interrupts import call_interruptibly
from .pool import thread_pool

#: workers per available CPU beyond which more only cost memory (the kernels keep a CPU busy each)
MAX_WORKERS_PER_CPU = 4


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def capped_workers(workers: int, *, what: str | None = None) -> int:
    """``workers``, or at most ``MAX_WORKERS_PER_CPU`` per available CPU with a notice: every worker
    holds a share of the memory budget, so thousands of them leave each too little to work with
    and make the run fail for want of memory that fewer would not need."""
    cpus = default_workers()
    cap = MAX_WORKERS_PER_CPU * cpus
    if workers <= cap:
        return workers
    warnings.warn(EngineNotice(f"{what or f'{workers} workers'} asked for, but more than {MAX_WORKERS_PER_CPU} per CPU "
                               f"({cpus} available) would only cost memory; using {cap}"), stacklevel=3)
    return cap


class LocalEngine(Engine):
    backend = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = default_workers()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers must be a positive integer, got {workers!r}")
        self.workers = capped_workers(workers)

    @property
    def is_local(self) -> bool:
        return True

    def map(self, fn: Callable[..., R], items: Iterable[T], *args: Any, window: int | None = None,
            error: type[BytePieceError] = TrainingError) -> Iterator[tuple[T, R]]:
        if self.workers == 1:  # on this thread, where signals land: see call_interruptibly
            for item in items:
                yield item, call_interruptibly(fn, item, *args)
            return
        window = max(1, window or 2 * self.workers)
        pool = thread_pool(self.workers)
        pending: deque[tuple[T, Future]] = deque()
        source = iter(items)
        try:
            for item in source:
                pending.append((item, pool.submit(fn, item, *args)))
                if len(pending) >= window:
                    first, future = pending.popleft()
                    yield first, future.result()
            while pending:
                first, future = pending.popleft()
                yield first, future.result()
        finally:
            # An error, Ctrl-C or an abandoned generator: queued tasks never start; running ones
            # finish on their own (threads cannot be interrupted) and their results are dropped.
            for _, future in pending:
                future.cancel()
