"""Ids every vocabulary shares, and the integer type that stores them.

Ids 0, 1, 2 are reserved for ``<pad>``, ``<bos>`` and ``<eos>``; pieces take ids from 3 in the
model file's order; special tokens come after the pieces. Token files, batches of ids and the
corpus encoder all store ids in :func:`token_dtype`.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

#: ids 0, 1, 2 are reserved; pieces take ids from 3 on.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_PIECE_ID = len(SPECIAL_TOKENS)


def token_dtype(vocab_size: int) -> np.dtype:
    """``<u2`` when every id fits in 16 bits (vocab_size <= 65536), else ``<u4``."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise InputError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if vocab_size > 1 << 32:
        raise InputError(f"vocab_size {vocab_size} does not fit in uint32 token ids")
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")
