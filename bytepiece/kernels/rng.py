"""A counter-based generator for kernels: splitmix64, one 64-bit state per document.

Numba's own ``np.random`` state is per thread and cannot be seeded per document, which makes
results depend on scheduling; an explicit state passed in and out of each kernel does not.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit
from .splitmix import GOLDEN, MIX1, MIX2, TO_UNIT

_GOLDEN = np.uint64(GOLDEN)
_MIX1 = np.uint64(MIX1)
_MIX2 = np.uint64(MIX2)
_TO_UNIT = TO_UNIT


@njit(cache=True, nogil=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def next_uniform(state):
    """Return (u in [0, 1), new state)."""
    state = state + _GOLDEN
    # 53 random bits fit an int64, whose conversion to float is one instruction (uint64's is not).
    return float(np.int64(_mix(state) >> np.uint64(11))) * _TO_UNIT, state


@njit(cache=True, nogil=True)
def seed_state(seed, stream):
    """Independent starting state for stream ``stream`` (a document index) under ``seed``."""
    return _mix(np.uint64(seed) + _GOLDEN * (np.uint64(stream) + np.uint64(1)))
