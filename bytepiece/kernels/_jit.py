"""Where every kernel module gets ``njit``: importing it first installs the cache fallback of
:mod:`._cache`, which must be in place before any ``cache=True`` kernel is defined. The package
itself imports no numba, so code that only needs the arrays (a cached model's trie) stays light."""

from typing import Any

from numba import njit as _njit

from ._cache import install

install()

#: Typed as ``Any``: a compiled kernel accepts whatever numba can type at run time, which numba's
#: own annotations (a ``Dispatcher`` with a fixed ``__call__``) do not describe.
njit: Any = _njit

__all__ = ["njit"]
