"""Which inputs skip the kernels: small ones, which plain numpy or Python handles in a few ms.

A kernel's first call in a fresh install compiles it, 0.2-4 s of CPU each, where README's
training job does a few ms of work with it. So each step that a small corpus reaches has a
numpy or Python *stand-in* that gives exactly the kernel's result (a test compares the two on
random inputs), and takes inputs up to a size limit of its own. The training warm-up of a large
corpus runs its sample through the kernels alone (:func:`kernels_only`), so that no phase time
of a large run counts compiling, and from then on the process uses the kernels for every input
(:func:`prefer_kernels`): once loaded they are faster on any size, and they release the GIL,
which the stand-ins mostly do not (a 4.5 MB corpus in 1 MB shards trained 2.7x slower on them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_kernels_only = False


def small(size: int, limit: int) -> bool:
    """Whether an input of ``size`` goes to the stand-in whose limit is ``limit``."""
    return size <= limit and not _kernels_only


def prefer_kernels() -> None:
    """Send every input to the kernels from now on: this process has loaded them all."""
    global _kernels_only
    _kernels_only = True


@contextmanager
def kernels_only() -> Iterator[None]:
    """Every input goes to the kernels in this block (process-wide: the warm-up runs alone)."""
    global _kernels_only
    before, _kernels_only = _kernels_only, True
    try:
        yield
    finally:
        _kernels_only = before
