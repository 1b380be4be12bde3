"""The distributed backend: the same task functions on a Dask cluster (``pip install "bytepiece-tk[dask]"``).

Tasks receive shard descriptions and read their own input, so inputs must be readable by every
worker (a shared file system, or URLs fsspec can open); partial results come back to the caller
as numpy arrays and are reduced there in corpus order, exactly as with the local backend, which
is why the result does not depend on the backend. Dask retries a task whose worker died; when a
task cannot be completed, or every worker has been gone for ``WORKER_WAIT_S``, the run stops with
one error and writes nothing; every request to the cluster (tasks, their results, shared data,
functions run on each worker) is bounded that way, and Dask's own log lines about such trouble
are kept from the user. A cluster starts and stops whole even when Ctrl-C comes meanwhile
(:mod:`.interrupts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import sys
import time
from collections import deque
from concurrent.futures import CancelledError
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import BytePieceError, InputError, TrainingError
from . import quiet
from .base import Engine, R, T
from .interrupts import Abandoned, run_apart
from .local import capped_workers
from .memory import worker_phase_peak

CONNECT_TIMEOUT_S = 30
#: how long a cluster may be without workers (at the start, or after all of them left) before the run stops
WORKER_WAIT_S = 60
#: how often a task that is not done yet is checked for a cluster without workers
POLL_S = 1.0
#: how many times a request to the workers (shared data, a function run on each) is made when it fails
REQUEST_TRIES = 3
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
    break "the same model on any engine". Workers that leave during the check (a closed stream)
    are waited for again, as at the start, up to ``REQUEST_TRIES`` times."""
    from .. import __version__

    reason = ""
    for _ in range(REQUEST_TRIES):
        _wait_for_a_worker(client, where)
        try:
            versions = client.run(worker_version)
            break
        except (OSError, asyncio.TimeoutError) as e:
            reason = _first_line(e)
        except Exception as e:
            raise InputError(f"the workers of the Dask cluster at {where} cannot run bytepiece ({_first_line(e)}); "
                             f'install bytepiece-tk=={__version__} in their environment (with the "dask" '
                             'extra)') from None
    else:
        raise InputError(f"the workers of the Dask cluster at {where} left while they were being checked ({reason}; "
                         f"tried {REQUEST_TRIES} times); start workers and run again")
    other = {worker: version for worker, version in versions.items() if version != __version__}
    if other:
        worker, version = sorted(other.items())[0]
        raise InputError(f"{len(other)} worker(s) of the Dask cluster at {where} run bytepiece {version} (for example "
                         f"{worker}) and this process runs {__version__}; install the same version everywhere")


def _wait_for_a_worker(client: Any, where: str) -> None:
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (TimeoutError, asyncio.TimeoutError):
            raise InputError(f"the Dask cluster at {where} has no workers, and none joined within {WORKER_WAIT_S} s; "
                             "start workers (or scale the cluster up) and run again") from None


def _distributed():
    try:
        import distributed
    except ImportError:
        raise InputError('the Dask backend needs the dask extra: pip install "bytepiece-tk[dask]"') from None
    return distributed


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def address_problem(address: str) -> str | None:
    """What makes ``address`` no scheduler address (``None`` when it is one), found without
    connecting: a Client made from a malformed address is left half-built, and its clean-up at
    exit waits a minute for a connection that never existed."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    location = ""
    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme == "inproc":
            return None
        _, port = parse_host_port(location)
    except ValueError as e:
        reason = _first_line(e)
        if reason.startswith("invalid literal for int()"):
            return f"the port {location.rpartition(':')[2]!r} is not a number"
        return reason
    if not 0 < int(port) < 1 << 16:
        return f"the port {port} is not between 1 and 65535"
    return None


def not_an_address(address: str, problem: str) -> str:
    return f"cluster {address!r} is not a Dask scheduler address ({problem}); give tcp://HOST:PORT or local:N"


class DaskEngine(Engine):
    backend = "dask"

    def __init__(self, client: Any, *, owns: bool, cluster: Any = None, address: str | None = None) -> None:
        self.client = client
        self._owns = owns
        self._cluster = cluster
        self._closed = False
        self._logs = contextlib.ExitStack()
        if owns:
            self._logs.enter_context(quiet.silenced_logs())
        quiet.hide_internal_errors()
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
        n_workers = capped_workers(n_workers, what=f"local:{n_workers} worker processes")
        engine, interrupted = run_apart(lambda: cls._start_local(distributed, n_workers), name="bytepiece-dask-start",
                                        spawns=True)
        if interrupted:
            engine.close()
            raise KeyboardInterrupt
        return engine

    @classmethod
    def _start_local(cls, distributed: Any, n_workers: int) -> DaskEngine:
        try:
            # The scheduler serves HTTP even without a dashboard, by default on 8787: a random port on
            # the loopback leaves 8787 to the user's own cluster and warns no one that it is taken.
            # Its log lines are not for the user: what goes wrong reaches the run as an error of its own,
            # and what a shutdown leaves in flight (a heartbeat) would print a traceback. Nor is what
            # a worker process prints as it is stopped mid-work (see quiet.dask_teardown).
            cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.CRITICAL,
                                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                               preload=[quiet.__name__])
        except Exception as e:
            hint = f"; if this runs from a script: {MAIN_GUARD_HINT}" if getattr(sys.modules.get("__main__"),
                                                                                 "__file__", None) else ""
            raise InputError(f"could not start a local Dask cluster of {n_workers} worker processes "
                             f"({_first_line(e)}){hint}") from None
        quiet.stop_gc_diagnosis()
        try:
            return cls(distributed.Client(cluster), owns=True, cluster=cluster, address=f"local:{n_workers}")
        except BaseException:
            cluster.close()
            raise

    @classmethod
    def connect(cls, address: str) -> DaskEngine:
        distributed = _distributed()
        problem = address_problem(address)
        error: BytePieceError | None = None
        if problem is None:
            try:
                # A peer that accepts the connection and then says nothing keeps Client() waiting
                # past its timeout, so the wait has a deadline of its own, and an interrupt ends it.
                engine, interrupted = run_apart(lambda: cls(distributed.Client(
                    address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False), owns=True, address=address),
                    name="bytepiece-dask-connect", deadline=CONNECT_TIMEOUT_S + 5, grace=1.0)
            except ValueError as e:
                problem = _first_line(e)
            except Abandoned:
                error = InputError(f"{address} accepted the connection but did not answer as a Dask scheduler within "
                                   f"{CONNECT_TIMEOUT_S} s; check that the address is the scheduler's (port 8786 by "
                                   "default)")
            except (OSError, TimeoutError) as e:
                error = InputError(f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s "
                                   f"({_first_line(e)}); check the address and that the scheduler is running")
            except Exception as e:  # noqa: BLE001 - whatever a peer that is not Dask makes of the handshake
                error = InputError(f"{address} does not answer as a Dask scheduler ({type(e).__name__}: "
                                   f"{_first_line(e)[:200]}); check that the address is the scheduler's (port 8786 "
                                   "by default)")
        if problem is not None or error is not None:
            # A Client that failed to connect lives on in reference cycles; collected at exit, after
            # its event loop stopped, its clean-up waits a minute for it. Collected now, it is quick.
            # (Raised out here, not in the handler, so that no traceback keeps it as context.)
            gc.collect()
        if problem is not None:
            raise InputError(not_an_address(address, problem))
        if error is not None:
            raise error
        if interrupted:
            engine.close()
            raise KeyboardInterrupt
        try:
            check_workers(engine.client, address)
        except BaseException:
            engine.close()
            raise
        return engine

    @classmethod
    def from_client(cls, client: Any) -> DaskEngine:
        distributed = _distributed()
        if not isinstance(client, distributed.Client):
            raise InputError(f"cluster must be None, 'local:N', a scheduler address or a distributed.Client, got {client!r}")
        check_workers(client, getattr(client.scheduler, "address", None) or "the client's scheduler")
        return cls(client, owns=False)

    def run_on_workers(self, fn: Callable[..., Any], *args: Any,
                       error: type[BytePieceError] = TrainingError) -> dict[str, Any]:
        return dict(self._request(f"run {getattr(fn, '__name__', 'a function')} on its workers",
                                  lambda: self.client.run(fn, *args), error))

    def map(self, fn: Callable[..., R], items: Iterable[T], *args: Any, window: int | None = None,
            error: type[BytePieceError] = TrainingError) -> Iterator[tuple[T, R]]:
        distributed = _distributed()
        window = max(1, window or 2 * self.workers)
        pending: deque[tuple[Any, Any]] = deque()
        try:
            for item in items:
                pending.append((item, self._submit(fn, item, *args)))
                if len(pending) >= window:
                    yield self._result(*pending.popleft(), distributed, error)
            while pending:
                yield self._result(*pending.popleft(), distributed, error)
        finally:
            if pending:
                with contextlib.suppress(OSError, asyncio.TimeoutError):  # the run ends either way
                    self.client.cancel([f for _, f in pending])

    def _submit(self, fn: Callable[..., Any], item: Any, *args: Any) -> Any:
        """Items travel inside the task (a batch of pieces is about 13 MB): unlike scattered data,
        the scheduler can give them to a retry after their worker died. Dask warns about every
        such task, so its threshold is lifted for ours."""
        import dask

        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "4GiB"}):
            return self.client.submit(fn, item, *args, pure=False, retries=2)

    def _result(self, item: Any, future: Any, distributed: Any, error: type[BytePieceError]) -> tuple[Any, Any]:
        what = getattr(item, "source", item)
        try:
            return item, self._wait(future, error)
        except distributed.KilledWorker as e:
            raise error(f"a Dask worker died while processing {what!r} and the retries failed too ({e}); "
                        "nothing was written") from None
        except CancelledError as e:
            if self._worker_count() == 0:
                raise error(f"all workers of the Dask cluster at {self.address} left during the run, and with them "
                            "the data this run had given them; nothing was written; start workers and run "
                            "again") from None
            raise error(f"the Dask cluster at {self.address} cancelled the task for {what!r} ({_first_line(e)}); "
                        "nothing was written; run again") from None
        finally:
            future.release()

    def _wait(self, future: Any, error: type[BytePieceError]) -> Any:
        """The future's result. A cluster whose workers all left keeps tasks waiting for good:
        after ``WORKER_WAIT_S`` without a worker the run stops instead. A finished task's result
        may take long to come over, or never come (its worker died with it, and Dask computes it
        again): the wait for it grows, and the run stops as above when no worker is left."""
        timeout, alone_since = POLL_S, None
        while True:
            try:
                return future.result(timeout=timeout)
            except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
                if future.status in ("error", "cancelled"):  # the task's own TimeoutError, or none
                    return future.result()
            timeout = min(2 * timeout, WORKER_WAIT_S) if future.status == "finished" else POLL_S
            alone_since = self._alone(alone_since, error)

    def _alone(self, since: float | None, error: type[BytePieceError]) -> float | None:
        """When the cluster was first seen without workers in the span that includes now
        (``since`` as the previous call gave it), ``None`` when it has workers; ``error`` once
        that span reaches ``WORKER_WAIT_S``."""
        if self._worker_count() != 0:
            return None
        now = time.monotonic()
        if since is not None and now - since >= WORKER_WAIT_S:
            raise error(f"all workers of the Dask cluster at {self.address} left during the run, and none came "
                        f"back within {WORKER_WAIT_S} s; nothing was written; start workers and run again")
        return now if since is None else since

    def _await_workers(self, error: type[BytePieceError]) -> None:
        alone_since = self._alone(None, error)
        while alone_since is not None:
            time.sleep(POLL_S)
            alone_since = self._alone(alone_since, error)

    def _request(self, what: str, call: Callable[[], R], error: type[BytePieceError]) -> R:
        """``call()``, a request to every worker, made once the cluster has one (the run stops
        as a task's would when none comes back). Dask fails such a request when a worker leaves
        during it (a closed stream, a connection that times out): it is made again, up to
        ``REQUEST_TRIES`` times."""
        reason = ""
        for _ in range(REQUEST_TRIES):
            self._await_workers(error)
            try:
                return call()
            except (OSError, asyncio.TimeoutError, CancelledError) as e:
                reason = _first_line(e)
        raise error(f"the Dask cluster at {self.address} could not {what} ({reason}; tried {REQUEST_TRIES} times); "
                    "nothing was written; check the workers and run again")

    def _worker_count(self) -> int:
        """Workers of the cluster now (0 when the scheduler cannot say)."""
        try:
            return len(self.client.nthreads())
        except (OSError, TimeoutError, asyncio.TimeoutError):  # a lost scheduler connection is an OSError too
            return 0

    def share(self, value: Any, *, error: type[BytePieceError] = TrainingError) -> Any:
        # The scatter's own wait for a worker is as long as ours (its default is 30 s, then a raw TimeoutError).
        return self._request("send data to its workers", lambda: self.client.scatter(
            value, broadcast=True, hash=False, timeout=WORKER_WAIT_S), error)

    def phase_peaks(self) -> dict[str, int]:
        try:
            return {str(k): int(v) for k, v in self.client.run(worker_phase_peak).items()}
        except Exception:  # a worker that just died: no figure rather than a failed run
            return {}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "workers": self.workers, "processes": self.n_processes,
                "scheduler": self.address}

    def close(self) -> None:
        """Stop what this engine started; a Ctrl-C meanwhile lets the shutdown finish, then is
        raised."""
        if not self._owns or self._closed:
            return
        self._closed = True
        try:
            _, interrupted = run_apart(self._shut_down, name="bytepiece-dask-close")
        finally:
            self._logs.close()
        if interrupted:
            raise KeyboardInterrupt

    def _shut_down(self) -> None:
        try:
            with contextlib.suppress(OSError, asyncio.TimeoutError):  # a connection lost by now changes no result
                self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
