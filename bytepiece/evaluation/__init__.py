"""The evaluation harness (DESIGN section 7): compression, LM bits per byte, the continuation
experiment with and without token healing, and the sampling profile.

:func:`run_evaluation` (in :mod:`.runner`) runs everything for a set of tokenizers and returns a
JSON-ready dict; :mod:`.report` turns it into rich tables, markdown and a plot. The modules are
imported lazily so that ``import bytepiece`` never pays for them.
"""

from __future__ import annotations

__all__ = ["EvalConfig", "run_evaluation"]


def __getattr__(name: str):
    if name in ("EvalConfig", "run_evaluation"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'bytepiece.evaluation' has no attribute {name!r}")
