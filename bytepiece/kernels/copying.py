"""Array copies and fills for the kernels, written as loops.

A slice assignment between arrays (``dst[:n] = src[:n]``) makes numba compile its shape check,
whose error message formats the shapes as text: 1.5-2 s of CPU on the first compile of a
process, more than most kernels take. ``np.full``, ``np.zeros`` and ``.copy()`` are each one
more implementation to compile (about 0.05 s each per dtype). These loops are inlined into the
caller, compile in milliseconds and run as fast.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit


@njit(cache=True, nogil=True, inline="always")
def grown_copy(src, n, size):
    """A new array of ``size`` elements of ``src``'s dtype whose first ``n`` are ``src[:n]`` (the
    rest uninitialized)."""
    out = np.empty(size, src.dtype)
    for i in range(n):
        out[i] = src[i]
    return out


@njit(cache=True, nogil=True, inline="always")
def fill(a, lo, hi, value):
    """``a[lo:hi] = value``."""
    for i in range(lo, hi):
        a[i] = value
