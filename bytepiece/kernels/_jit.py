"""Where every kernel module gets ``njit``: importing it first installs the cache fallback of
:mod:`._cache`, which must be in place before any ``cache=True`` kernel is defined. The package
itself imports no numba, so code that only needs the arrays (a cached model's trie) stays light."""

from numba import njit

from ._cache import install

install()

__all__ = ["njit"]
