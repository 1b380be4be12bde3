"""Checking and converting the options of the encode methods (alpha, seed, threads, batches).

Each check has a fast path for the common plain-Python value, because ``encode`` of a short
text costs a few microseconds and runs millions of times.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from typing import Any, Union

import numpy as np

from .errors import InputError

Seed = Union[int, np.random.Generator, None]
#: the kernels' seed of deterministic calls (Viterbi draws nothing)
NO_SEED = np.uint64(0)

_INF = math.inf
_UINT64_MAX = (1 << 64) - 1
_SEED_PERSON = b"bytepiece.seed"


def alpha_value(alpha: Any) -> float:
    """``alpha`` as a float: any finite real number (numpy scalars included); negative means
    deterministic."""
    if type(alpha) is float and -_INF < alpha < _INF:
        return alpha
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, (bool, np.bool_)):
        value = float(alpha)
        if math.isfinite(value):
            return value
        raise InputError(
            f"alpha must be finite, got {alpha!r}; use a negative alpha for deterministic (Viterbi) encoding, "
            "or a large finite one to sample close to it"
        )
    raise InputError(
        f"alpha must be a real number (negative: deterministic; >= 0: sample with weights p**alpha), "
        f"got {alpha!r} of type {type(alpha).__name__}"
    )


def kernel_seed(seed: Seed) -> np.uint64:
    """The kernels' 64-bit seed for ``seed`` (a numpy uint64, so numba always sees one type and
    the kernels also run as plain Python).

    Integers of any size and sign are hashed (blake2b of their two's complement bytes), so
    nearby or wide seeds give unrelated streams and distinct seeds distinct ones (up to 64-bit
    collisions); a ``numpy.random.Generator`` contributes 64 random bits (and advances);
    ``None`` takes them from the OS."""
    if type(seed) is int:
        return _hash_int(seed)
    if seed is None:
        return np.uint64(int.from_bytes(os.urandom(8), "little"))
    if isinstance(seed, np.random.Generator):
        return seed.integers(0, _UINT64_MAX, endpoint=True, dtype=np.uint64)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        return _hash_int(int(seed))
    raise InputError(f"seed must be an int, a numpy.random.Generator or None, got {seed!r} of type {type(seed).__name__}")


def _hash_int(value: int) -> np.uint64:
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    digest = hashlib.blake2b(data, digest_size=8, person=_SEED_PERSON).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def resolve_threads(num_threads: int | None) -> int:
    if num_threads is None:
        return os.cpu_count() or 1
    if isinstance(num_threads, (int, np.integer)) and not isinstance(num_threads, bool) and num_threads >= 1:
        return int(num_threads)
    raise InputError(f"num_threads must be a positive integer or None (all cores), got {num_threads!r}")
