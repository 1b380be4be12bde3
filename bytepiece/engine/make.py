"""``make_engine``: the engine a ``cluster`` option names (the one place that knows every backend)."""

from __future__ import annotations

from typing import Any

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
    if cluster is None or (isinstance(cluster, str) and cluster.strip().lower() in ("", "threads", "local-threads")):
        from .local import LocalEngine

        return LocalEngine(workers)
    from .dask import DaskEngine

    if isinstance(cluster, str):
        spec = cluster.strip()
        if spec.lower().startswith("local:") or spec.lower() == "local":
            count = spec.partition(":")[2] or str(workers or 2)
            if not count.isdigit() or int(count) < 1:
                raise InputError(f"--cluster local:N needs a positive number of worker processes, got {cluster!r}")
            return DaskEngine.local_cluster(int(count))
        return DaskEngine.connect(spec)
    return DaskEngine.from_client(cluster)
