"""numba kernels: plain functions over numpy arrays, compiled lazily on first call and cached."""

from ._cache import install as _install_cache_fallback

# Before any kernel module defines a cache=True function (see _cache: read-only installs).
_install_cache_fallback()
