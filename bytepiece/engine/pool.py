"""Per-process thread pools for the local engine and ``Tokenizer.encode_batch``.

A ``ThreadPoolExecutor`` created before ``os.fork`` survives in the child without its threads,
so the first job submitted there waits forever (``multiprocessing`` with fork,
``datasets.map(num_proc=...)``). Pools are therefore kept per process: the registry is emptied
in the child right after a fork, and a child builds fresh pools on first use.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

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
