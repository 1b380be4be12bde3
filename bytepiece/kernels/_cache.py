"""Where compiled kernels are cached, and what happens when nowhere is writable.

numba's ``cache=True`` looks for a cache directory when a kernel is *defined* (at import):
``$NUMBA_CACHE_DIR``, the package's ``__pycache__``, then the user cache directory
(``$XDG_CACHE_HOME`` or ``~/.cache``). In a container with a read-only image and a read-only
home none is writable and numba raises ``RuntimeError: cannot cache function ...: no locator
available`` at import, so every command would fail. :func:`install` appends a last-resort
locator, for bytepiece's own kernels only, that keeps their cache in a private temporary
directory for this process (removed at exit): the kernels compile once per process instead of
once per installation, and one ``RuntimeWarning`` says how to get the persistent cache back.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import warnings

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_lock = threading.Lock()
_state: dict[str, object] = {}

NOTICE = ("no writable cache directory for compiled kernels (package directory, $NUMBA_CACHE_DIR, "
          "$XDG_CACHE_HOME or ~/.cache): compiling without a persistent cache, so every process compiles "
          "again; set NUMBA_CACHE_DIR to a writable directory to keep compiled kernels")


def _process_dir() -> str:
    """This process's private cache directory (a forked child gets its own)."""
    with _lock:
        if _state.get("pid") != os.getpid():
            path = tempfile.mkdtemp(prefix="bytepiece-kernels-")  # mode 0700: nobody can plant code
            _state.update(pid=os.getpid(), dir=path)
            atexit.register(_remove, path, os.getpid())
            if not _state.get("warned"):
                _state["warned"] = True
                warnings.warn(NOTICE, RuntimeWarning, stacklevel=2)
        return str(_state["dir"])


def _remove(path: str, pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)


def install() -> None:
    """Append the fallback locator to numba's list (once; a no-op when numba is absent or its
    caching internals changed, in which case numba's own behaviour stays)."""
    if _state.get("installed"):
        return
    _state["installed"] = True
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - numba always comes with bytepiece
        return
    base = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    locator = getattr(caching, "_CacheLocator", None) or getattr(caching, "CacheLocator", None)
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # renamed in numba 0.6x
    classes = getattr(impl, "_locator_classes", None)
    if base is None or locator is None or not isinstance(classes, list):
        return  # pragma: no cover - a numba without these internals

    class ProcessCacheLocator(base, locator):  # type: ignore[misc, valid-type]
        """Last resort for bytepiece's kernels: a private per-process directory."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno

        def get_cache_path(self):
            return _process_dir()

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.abspath(py_file).startswith(_PACKAGE + os.sep):
                return None  # other libraries keep numba's behaviour
            return super().from_function(py_func, py_file)

    classes.append(ProcessCacheLocator)
