"""Per-process thread pools for the local engine and ``Tokenizer.encode_batch``, and jobs in
spawned processes (:func:`process_jobs`: the evaluation's transformers, which train faster as
one-thread processes side by side than as one process on every core).

A ``ThreadPoolExecutor`` created before ``os.fork`` survives in the child without its threads,
so the first job submitted there waits forever (``multiprocessing`` with fork,
``datasets.map(num_proc=...)``). Pools are therefore kept per process: the registry is emptied
in the child right after a fork, and a child builds fresh pools on first use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import WorkerLost
from ..io.stale import run_dir

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

_pools: dict[tuple[str, int], ThreadPoolExecutor] = {}
_lock = threading.Lock()


def thread_pool(threads: int, *, purpose: str = "bytepiece") -> ThreadPoolExecutor:
    """The shared pool of ``threads`` worker threads of this process (created on first use).

    Jobs that wait on jobs of another pool (an engine task waiting for its kernel blocks) name a
    different ``purpose``: waiting on one's own pool can deadlock when every thread waits."""
    key = (purpose, threads)
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix=purpose)
    return pool


def _forget_pools_after_fork() -> None:
    # The parent's pools have no threads in the child; drop them (never shut them down: their
    # queues and locks may have been copied mid-operation) and start clean.
    global _lock
    _pools.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


class _RecordingContext:
    """A multiprocessing context that records every process the pool creates, as it creates it.

    Listing ``multiprocessing.active_children()`` after each submit missed a worker that had
    already ended by then (the listing reaps it): on a loaded machine a job that dies at once
    did, and its exit status was lost from the error."""

    def __init__(self, context: Any, record: list[Any]) -> None:
        self._context = context
        self._record = record

    def Process(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - the context's own name
        process = self._context.Process(*args, **kwargs)
        self._record.append(process)
        return process

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class JobProcesses:
    """Jobs given to :func:`process_jobs`: ``submit(fn, *args)`` each, then ``results()``; and
    ``check()`` between other work, which raises the error of a job that has already failed."""

    def __init__(self, processes: int, scratch: str | None) -> None:
        self.processes = processes
        self._scratch = scratch
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._futures: list[Future[Any]] = []
        self._executor: ProcessPoolExecutor | None = None
        self.children: list[Any] = []  # the worker processes, once started

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.processes <= 1:
            self._calls.append((fn, args))
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor  # here: 16 ms of imports the thread pools never need

        if self._executor is None:
            context: Any = _RecordingContext(multiprocessing.get_context("spawn"), self.children)  # a BaseContext
            self._executor = ProcessPoolExecutor(self.processes, mp_context=context,
                                                 initializer=_start_worker, initargs=(self._scratch, os.getpid()))
        with _sigint_blocked():  # a worker starts with a job while there are fewer than ``processes``,
            self._futures.append(self._executor.submit(_warnings_kept, fn, *args))  # and inherits it blocked

    def check(self) -> None:
        self._check_workers()
        for future in self._futures:
            if future.done():
                self._raise(future)

    def results(self, on_result: Callable[[int, int], None] | None = None) -> list[Any]:
        """Every job's result, in the order submitted; the first error raised as soon as its job
        fails, whatever jobs are still running. ``on_result(i, n)``: job ``i`` is done, the
        ``n``-th to be. Here, with one process, the jobs run now."""
        out: dict[int, Any] = {}
        if self.processes <= 1:
            for i, (fn, args) in enumerate(self._calls):
                out[i] = fn(*args)
                if on_result is not None:
                    on_result(i, len(out))
            return list(out.values())
        while len(out) < len(self._futures):
            wait(self._futures, timeout=0.2, return_when=FIRST_EXCEPTION)  # short waits: Ctrl-C at once
            self._check_workers()
            for i, future in enumerate(self._futures):
                if future.done() and i not in out:
                    self._raise(future)
                    out[i], caught = future.result()
                    for warning in caught:  # where this process shows them (a CLI's ``note:`` lines)
                        warnings.warn(warning, stacklevel=2)
                    if on_result is not None:
                        on_result(i, len(out))
        return [out[i] for i in range(len(self._futures))]

    def _check_workers(self) -> None:
        """A worker never ends while there are jobs: one that has is lost. (The pool notices it
        too, but misses a worker that dies while the pool is still starting others, and then
        waits for the rest to finish before it says so.)"""
        if all(f.done() for f in self._futures):
            return
        codes = [c.exitcode for c in self.children if c.exitcode is not None]
        if codes:
            self._lost(codes)

    def _raise(self, future: Future[Any]) -> None:
        from concurrent.futures.process import BrokenProcessPool

        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            for child in self.children:  # the pool stops the others (SIGTERM): the lost one is what remains
                child.join(5)
            self._lost([c.exitcode for c in self.children if c.exitcode not in (None, -signal.SIGTERM)])
        if error is not None:
            raise error

    def _lost(self, codes: list[int | None]) -> NoReturn:
        raise WorkerLost(f"a worker process ended without finishing its job (exit status "
                         f"{', '.join(map(str, codes)) or '?'}: killed, out of memory or crashed); run again with "
                         "fewer processes") from None

    def close(self) -> None:
        """Stop every job (those running too), and wait for their processes to end."""
        if self._executor is None:
            return
        self._executor.shutdown(wait=False, cancel_futures=True)
        for child in self.children:
            child.terminate()
        for child in self.children:
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join()
        self._executor.shutdown(wait=True)


@contextlib.contextmanager
def process_jobs(processes: int) -> Iterator[JobProcesses]:
    """Jobs run ``processes`` at once, each in a spawned process (``fn`` and its arguments
    pickle; spawn, not fork, since a forked torch or numba runtime is unsafe), while this process
    goes on with other work; with one, here, one by one, when their results are asked for. The
    workers never see Ctrl-C (this process handles it) and end when this process does; leaving
    the block, on an error or a Ctrl-C too, stops every job and removes their temporary files (a
    worker's ``tempfile`` directory lies in one this block owns)."""
    if processes <= 1:
        yield JobProcesses(1, None)
        return
    # named for this host and process, and locked: a run killed outright (kill -9, out of
    # memory) leaves it behind, and the next one removes it (those in /tmp used to stay for good)
    path, lock = run_dir(None, "bytepiece-jobs-")
    scratch = str(path)
    jobs = JobProcesses(processes, scratch)
    try:
        yield jobs
    finally:
        try:
            jobs.close()
        finally:
            if lock >= 0:
                os.close(lock)
            shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _warnings_kept(fn: Callable[..., Any], *args: Any) -> tuple[Any, list[Warning | str]]:
    """``fn(*args)`` and the warnings it gave, for the caller to show: a worker's stderr is not
    the caller's way of showing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        result = fn(*args)
    return result, [w.message for w in caught]


def _start_worker(scratch: str | None, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if scratch is not None:
        tempfile.tempdir = scratch
    threading.Thread(target=_end_with, args=(parent,), name="bytepiece-parent-watch", daemon=True).start()


def _end_with(parent: int) -> None:
    """A worker whose parent died (killed, with no chance to stop it) ends too, rather than
    finishing a job nobody will read."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
