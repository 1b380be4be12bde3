"""The one place that decides which tokens of a history a language model looks at.

An n-gram model predicts from the last ``order - 1`` tokens; a model with a finite window
(``context_size``) from the last ``context_size``. The byte-level recursion merges histories that
agree on those tokens, the harness hands them to the model, and adapters cut their inputs to
them; every one of them goes through :func:`last_tokens`, so a history shorter than the window
is kept whole (slicing ``h[len(h) - n:]`` with a negative start would keep only its end).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import numpy as np

__all__ = ["context_size", "last_tokens"]

S = TypeVar("S")  # a list, tuple or 1-D array of token ids


def last_tokens(history: S, n: int | None) -> S:
    """The last ``n`` tokens of ``history`` (all of them when it has fewer; none for ``n == 0``;
    all for ``n is None``, a model that looks at the whole history). Same type as ``history``."""
    if n is None:
        return history
    if n < 0:
        raise ValueError(f"a context size is >= 0, got {n}")
    h = cast(Any, history)
    return cast(S, h[max(len(h) - n, 0) :] if n else h[:0])


def context_size(lm: Any) -> int | None:
    """How many trailing tokens ``lm`` predicts from: its ``context_size`` when that is a
    non-negative integer, else None (the whole history)."""
    size = getattr(lm, "context_size", None)
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 0:
        return int(size)
    return None
