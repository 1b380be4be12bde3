"""The parallel engine: every corpus pass (training, corpus encoding) and ``encode_batch`` run on it.

:func:`make_engine` picks a backend from a ``cluster`` option: local threads (the default, no
extra dependency) or a Dask cluster; both run the same task functions and the caller reduces
their results in corpus order. :mod:`.memory` holds the memory budget and RSS measurements,
:mod:`.spill` the sorted runs that are kept under that budget by spilling to disk,
:mod:`.interrupts` what keeps a cluster whole through Ctrl-C, and kernels' results whole.
"""

from .base import Engine, EngineNotice
from .make import make_engine
from .interrupts import held_interrupts, kernel_safe_signals, stands_once_committed
from .memory import RssMonitor, default_budget
from .pool import thread_pool

__all__ = ["Engine", "EngineNotice", "RssMonitor", "default_budget", "held_interrupts", "kernel_safe_signals",
           "make_engine", "stands_once_committed", "thread_pool"]
