"""What Dask would print that is not for the user: a run on a cluster reports its trouble as one
error of its own, so Dask's log lines about it, its internal exceptions and what its worker
processes print as they are stopped would only be noise before (or after) that line.

This module is also the preload of the worker processes of a local cluster that bytepiece
starts (``LocalCluster(preload=[...])``), for :func:`dask_teardown`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any


def silenced_logs() -> contextlib.AbstractContextManager[None]:
    """Dask's log lines on stderr silenced for a while (as a local cluster does for its own): a
    worker lost mid-run is reported as the run's error, not as Dask's warnings ("Couldn't gather
    1 keys, rescheduling") before it."""
    from distributed.utils import silence_logging_cmgr

    return silence_logging_cmgr(logging.CRITICAL)


class _DaskInternals(logging.Filter):
    """Drops asyncio's report of Dask's internal ``AllExit``: a wait for a task's result that is
    cut short (``Future.result(timeout=...)``) leaves Dask helper tasks behind, which end with
    this exception once the task fails or the client closes; asyncio prints each as "Task
    exception was never retrieved" with a traceback. Likewise the timed-out connection attempts
    to a worker that has left, which Dask abandons as unread futures ("Future exception was
    never retrieved ... TimeoutError"): the run reports the lost workers itself, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if type(error).__name__ == "AllExit" and type(error).__module__ == "distributed.client":
            return False
        return not (isinstance(error, TimeoutError) and str(record.msg).startswith("Future exception was never"))


def hide_internal_errors() -> None:
    """Installs the filter of :class:`_DaskInternals` (once per process; it drops nothing else)."""
    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _DaskInternals) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(_DaskInternals())


def stop_gc_diagnosis() -> None:
    """The scheduler of a local cluster runs in this process and hooks a Python function into
    every garbage collection (to log their cost, which nobody sees here); a Ctrl-C that lands in
    it is lost, printed as an "ignored" exception. Unhooked, a Ctrl-C always stops the run."""
    try:
        from distributed.gc import disable_gc_diagnosis

        disable_gc_diagnosis(force=True)
    except (ImportError, AssertionError, ValueError):
        pass


def dask_teardown(worker: Any) -> None:
    """Runs in a worker process of a local cluster as it starts to close. The process may be
    stopped mid-work (the run failed or was interrupted while the worker loaded or compiled
    kernels), and the interpreter's exit then reports half-made objects ("Exception ignored in:
    ... ObjectRef.__del__") on the standard error it shares with the user's command. From here
    on it writes nowhere; what matters of a worker's trouble reached the run as its error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
    except OSError:
        pass
