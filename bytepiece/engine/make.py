"""``make_engine``: the engine a ``cluster`` option names (the one place that knows every backend)."""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from ..errors import InputError
from .base import Engine

ClusterSpec = Any  # None | "local" | "local:N" | "tcp://host:port" | distributed.Client


def make_engine(cluster: ClusterSpec = None, *, workers: int | None = None) -> Engine:
    """The engine for a ``cluster`` option value.

    - ``None`` or ``"threads"``: local threads (``workers`` of them; default all cores);
    - ``"local:N"``: a Dask ``LocalCluster`` of N worker processes, started now and shut down by
      :meth:`Engine.close`;
    - a scheduler address (``"tcp://host:8786"``, ``"host:8786"``): connect to a running Dask
      cluster (inputs must be readable by every worker);
    - a ``distributed.Client``: use it as it is (not closed afterwards).
    """
    if isinstance(cluster, Engine):
        return cluster
    kind = cluster_kind(cluster, check_address=False)  # an address is checked as it is connected to
    if kind == "threads":
        from .local import LocalEngine

        return LocalEngine(workers)
    from .dask import DaskEngine

    if kind == "local":
        return DaskEngine.local_cluster(_local_processes(cluster, workers))
    if kind == "address":
        return DaskEngine.connect(cluster.strip())
    return DaskEngine.from_client(cluster)


#: cluster strings that mean local threads, as ``None`` does
_THREADS = ("", "threads", "local-threads")

ClusterKind = Literal["threads", "local", "address", "client"]


def cluster_kind(cluster: ClusterSpec, *, check_address: bool = True) -> ClusterKind:
    """What :func:`make_engine` makes of ``cluster``, found without starting or connecting to
    anything, so that a command line can be refused before any work: ``"threads"``, ``"local"``
    (``local:N``), ``"address"`` or ``"client"`` (anything else, checked when it is used).
    A ``local:N`` without a positive N is an :class:`InputError`, and so is a string that is no
    scheduler address when ``distributed`` is installed to tell (without it, using the address
    fails with the install hint instead)."""
    if cluster is None:
        return "threads"
    if not isinstance(cluster, str):
        return "client"
    spec = cluster.strip()
    if spec.lower() in _THREADS:
        return "threads"
    if spec.lower() == "local" or spec.lower().startswith("local:"):
        _local_processes(spec, None)
        return "local"
    if check_address and importlib.util.find_spec("distributed") is not None:
        from . import dask

        problem = dask.address_problem(spec)
        if problem is not None:
            raise InputError(dask.not_an_address(spec, problem))
    return "address"


def uses_workers(cluster: ClusterSpec) -> bool:
    """Whether ``workers`` counts with this ``cluster``: local threads, and ``"local"`` without
    a count (that many worker processes); a cluster of its own has its own workers."""
    if cluster is None or cluster_kind(cluster, check_address=False) == "threads":
        return True
    return isinstance(cluster, str) and cluster.strip().lower() == "local"


def check_workers_apply(cluster: ClusterSpec, workers: int | None, *, name: str = "workers",
                        cli: str = "--workers") -> None:
    """Refuse a local worker count (``name``, the command line's ``cli``) beside a cluster that
    brings its own workers, where it would be ignored."""
    if workers is None or uses_workers(cluster):
        return
    count = " (local:N starts N of them)" if isinstance(cluster, str) and cluster.strip().lower().startswith("local:") \
        else ""
    shown = f"cluster={cluster!r} (CLI: --cluster {cluster})" if isinstance(cluster, str) else "a cluster"
    raise InputError(f"{name} (CLI: {cli}) does not apply with {shown}: the cluster's own workers do the work{count}; "
                     f"drop {name} (CLI: {cli}), or drop cluster (CLI: --cluster) to run on local threads")


def _local_processes(spec: str, workers: int | None) -> int:
    count = spec.strip().partition(":")[2] or str(workers or 2)
    if not (count.isascii() and count.isdigit()) or int(count) < 1:
        raise InputError(f"cluster local:N needs a positive number of worker processes, got {spec!r}")
    return int(count)
