"""numba kernels: plain functions over numpy arrays, compiled lazily on first call and cached.

Kernel modules take ``njit`` from :mod:`._jit` (which sets up caching first); importing this
package alone does not import numba.
"""
