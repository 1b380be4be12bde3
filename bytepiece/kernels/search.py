"""Binary searches over sorted integer arrays, shared by the kernels."""

from __future__ import annotations

from ._jit import njit


@njit(cache=True, nogil=True)
def lower_bound(a, lo, hi, x):
    """First index in ``a[lo:hi]`` (sorted) whose value is not below ``x``; ``hi`` if none."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, inline="always")
def find_sorted(a, lo, hi, x):
    """Index of ``x`` in ``a[lo:hi]`` (sorted, distinct values) or -1."""
    while lo < hi:
        mid = (lo + hi) >> 1
        y = a[mid]
        if y < x:
            lo = mid + 1
        elif y > x:
            hi = mid
        else:
            return mid
    return -1
