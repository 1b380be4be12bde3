"""The distributed backend: the same task functions on a Dask cluster (``pip install "bytepiece-tk[dask]"``).

Tasks receive shard descriptions and read their own input, so inputs must be readable by every
worker (a shared file system, or URLs fsspec can open); partial results come back to the caller
as numpy arrays and are reduced there in corpus order, exactly as with the local backend, which
is why the result does not depend on the backend. Dask retries a task whose worker died; when a
task cannot be completed the run stops with one error and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import InputError, TrainingError
from .base import Engine, R, T
from .memory import worker_phase_peak

CONNECT_TIMEOUT_S = 30
WORKER_WAIT_S = 60
MAIN_GUARD_HINT = ('worker processes import the main module again, so a Python script must start the work '
                   'under `if __name__ == "__main__":`')


def _importing_main_in_a_child() -> bool:
    """True while a spawned process is still being prepared, which is when it runs the main
    script's module-level code: a script without a main guard reaches ``local:N`` again in every
    worker it starts. (The flag is the one multiprocessing itself checks for the same mistake.)"""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def worker_version() -> str:
    """Runs on each worker: the bytepiece it imports (sent by reference, so a worker without
    bytepiece fails to load this very function, which is the point)."""
    from .. import __version__

    return __version__


def check_workers(client: Any, where: str) -> None:
    """The cluster must have a worker (an adaptive one gets ``WORKER_WAIT_S`` to start one; tasks
    would otherwise wait forever), and every worker must import the same bytepiece as this
    process: tasks are bytepiece functions, and a different version could count differently and
    break "the same model on any engine"."""
    from .. import __version__

    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (TimeoutError, asyncio.TimeoutError):
            raise InputError(f"the Dask cluster at {where} has no workers, and none joined within {WORKER_WAIT_S} s; "
                             "start workers (or scale the cluster up) and run again") from None
    try:
        versions = client.run(worker_version)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"the workers of the Dask cluster at {where} cannot run bytepiece ({reason}); install "
                         f'bytepiece-tk=={__version__} in their environment (with the "dask" extra)') from None
    other = {worker: version for worker, version in versions.items() if version != __version__}
    if other:
        worker, version = sorted(other.items())[0]
        raise InputError(f"{len(other)} worker(s) of the Dask cluster at {where} run bytepiece {version} (for example "
                         f"{worker}) and this process runs {__version__}; install the same version everywhere")


def _distributed():
    try:
        import distributed
    except ImportError:
        raise InputError('the Dask backend needs the dask extra: pip install "bytepiece-tk[dask]"') from None
    return distributed


class DaskEngine(Engine):
    backend = "dask"

    def __init__(self, client: Any, *, owns: bool, cluster: Any = None, address: str | None = None) -> None:
        self.client = client
        self._owns = owns
        self._cluster = cluster
        self.address = address or getattr(client.scheduler, "address", None)
        nthreads = client.nthreads()
        self.n_processes = len(nthreads)
        self.workers = max(1, sum(nthreads.values()))

    @classmethod
    def local_cluster(cls, n_workers: int) -> DaskEngine:
        if _importing_main_in_a_child():
            # One line from each worker instead of a traceback; the caller reports the cause.
            raise SystemExit(f"bytepiece: a local Dask cluster cannot start inside its own worker: {MAIN_GUARD_HINT}")
        distributed = _distributed()
        try:
            # The scheduler serves HTTP even without a dashboard, by default on 8787: a random port on
            # the loopback leaves 8787 to the user's own cluster and warns no one that it is taken.
            cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR,
                                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        except Exception as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            hint = f"; if this runs from a script: {MAIN_GUARD_HINT}" if getattr(sys.modules.get("__main__"),
                                                                                 "__file__", None) else ""
            raise InputError(f"could not start a local Dask cluster of {n_workers} worker processes ({reason}){hint}") from None
        try:
            client = distributed.Client(cluster)
        except BaseException:
            cluster.close()
            raise
        return cls(client, owns=True, cluster=cluster, address=f"local:{n_workers}")

    @classmethod
    def connect(cls, address: str) -> DaskEngine:
        distributed = _distributed()
        try:
            client = distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
        except ValueError as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"cluster {address!r} is not a Dask scheduler address ({reason}); give tcp://HOST:PORT, "
                             "local:N or threads") from None
        except (OSError, TimeoutError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s ({reason}); "
                             "check the address and that the scheduler is running") from None
        try:
            check_workers(client, address)
        except BaseException:
            client.close()
            raise
        return cls(client, owns=True, address=address)

    @classmethod
    def from_client(cls, client: Any) -> DaskEngine:
        distributed = _distributed()
        if not isinstance(client, distributed.Client):
            raise InputError(f"cluster must be None, 'local:N', a scheduler address or a distributed.Client, got {client!r}")
        check_workers(client, getattr(client.scheduler, "address", None) or "the client's scheduler")
        return cls(client, owns=False)

    def map(self, fn: Callable[..., R], items: Iterable[T], *args: Any, window: int | None = None) -> Iterator[tuple[T, R]]:
        distributed = _distributed()
        window = max(1, window or 2 * self.workers)
        pending: deque[tuple[Any, Any]] = deque()
        try:
            for item in items:
                pending.append((item, self._submit(fn, item, *args)))
                if len(pending) >= window:
                    yield self._result(*pending.popleft(), distributed)
            while pending:
                yield self._result(*pending.popleft(), distributed)
        finally:
            if pending:
                self.client.cancel([f for _, f in pending])

    def _submit(self, fn: Callable[..., Any], item: Any, *args: Any) -> Any:
        """Items travel inside the task (a batch of pieces is about 13 MB): unlike scattered data,
        the scheduler can give them to a retry after their worker died. Dask warns about every
        such task, so its threshold is lifted for ours."""
        import dask

        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "4GiB"}):
            return self.client.submit(fn, item, *args, pure=False, retries=2)

    @staticmethod
    def _result(item: Any, future: Any, distributed: Any) -> tuple[Any, Any]:
        try:
            return item, future.result()
        except distributed.KilledWorker as e:
            raise TrainingError(f"a Dask worker died while processing {getattr(item, 'source', item)!r} and the "
                                f"retries failed too ({e}); nothing was written") from None
        finally:
            future.release()

    def share(self, value: Any) -> Any:
        return self.client.scatter(value, broadcast=True, hash=False)

    def phase_peaks(self) -> dict[str, int]:
        try:
            return {str(k): int(v) for k, v in self.client.run(worker_phase_peak).items()}
        except Exception:  # a worker that just died: no figure rather than a failed run
            return {}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "workers": self.workers, "processes": self.n_processes,
                "scheduler": self.address}

    def close(self) -> None:
        if self._owns:
            try:
                self.client.close()
            finally:
                if self._cluster is not None:
                    self._cluster.close()
