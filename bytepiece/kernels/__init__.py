"""numba kernels: plain functions over numpy arrays, compiled lazily on first call and cached."""
