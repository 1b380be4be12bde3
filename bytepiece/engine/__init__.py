"""The parallel engine: every corpus pass (training, corpus encoding) and ``encode_batch`` run on it."""

from .pool import thread_pool

__all__ = ["thread_pool"]
