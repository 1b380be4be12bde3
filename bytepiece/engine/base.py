"""The engine interface: an ordered map over shards whose results the caller reduces in order.

Every corpus pass has the same shape: a *task function* turns one shard description (file +
byte range) into a partial result made of numpy arrays (sorted packed keys and counts, piece
tables, token arrays), and the caller folds the partial results in corpus order, so the outcome
never depends on how many workers ran or where. Task functions are plain module-level functions
so that every backend can run them: the local backend calls them on threads (the numba kernels
release the GIL), the Dask backend ships them to worker processes. Large read-only inputs that
every task needs (the n-gram table of the second training pass, a tokenizer) go through
:meth:`Engine.share` once per worker instead of once per task.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import BytePieceError, TrainingError

T = TypeVar("T")
R = TypeVar("R")


class EngineNotice(UserWarning):
    """Something the engine did differently from what was asked, or an interrupt it absorbed
    (shown as a note by the command line)."""


class Engine:
    """Base class of the backends; use :func:`make_engine`."""

    backend: str = "base"
    workers: int = 1

    @property
    def is_local(self) -> bool:
        """Whether tasks run in this process, so that they may use its thread pools and report
        progress as they go."""
        return False

    def map(self, fn: Callable[..., R], items: Iterable[T], *args: Any, window: int | None = None,
            error: type[BytePieceError] = TrainingError) -> Iterator[tuple[T, R]]:
        """``(item, fn(item, *args))`` for every item, in item order, with at most ``window``
        tasks submitted ahead of the one being yielded (bounding the memory of finished but
        not yet reduced results). When the engine itself fails (its workers are gone), the run
        stops with ``error``, the class the caller reports its failures with."""
        raise NotImplementedError

    def run_on_workers(self, fn: Callable[..., Any], *args: Any,
                       error: type[BytePieceError] = TrainingError) -> dict[str, Any]:
        """``fn(*args)`` once in every worker process (set-up that is per process, such as
        compiling the kernels), by worker; nothing where tasks run in this process. ``error``
        as for :meth:`map`."""
        return {}

    def share(self, value: Any, *, error: type[BytePieceError] = TrainingError) -> Any:
        """A handle for ``value`` to pass to task functions in place of the value itself.
        ``error`` as for :meth:`map`."""
        return value

    def phase_peaks(self) -> dict[str, int]:
        """Peak RSS of every worker process since the previous call (bytes), where measurable."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "workers": self.workers}

    def close(self) -> None:
        """Release what the engine started (a LocalCluster it created, ...)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        """Close; a Ctrl-C during the close lets it finish. After a block that failed, its own
        error goes on; after one that completed, the work is done and stands: the interrupt
        becomes an :class:`EngineNotice` instead of discarding that work."""
        try:
            self.close()
        except KeyboardInterrupt:
            if exc_type is None:
                warnings.warn(EngineNotice(f"interrupted after the work was complete, while the {self.backend} engine "
                                           "was shutting down; the result stands"), stacklevel=2)
