"""The stable point of an open chunk: the last token boundary no continuation can move.

One forward Viterbi pass over the chunk gives the back-pointer of every byte position (it depends
only on the bytes before that position). The tokens of any continuation end, before the last
prompt byte, on the back-pointer path of either the chunk's end or of a position q from which the
rest of the chunk is a proper prefix of a longer piece. All those paths meet the chunk's own path
and follow it from there, so the stable point is the lowest of their meeting points.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

from .byterange import narrow


@njit(cache=True, nogil=True)
def stable_point(sb, so, rank_id, max_len, scores, data, own_ends):  # noqa: C901 - the stable-prefix search: one backward scan is the algorithm
    """Stable point of ``data`` or -1 when the back-pointers do not reproduce ``own_ends`` (the
    token ends of the tokenizer's own encoding, as a boolean mask of length n + 1): the caller
    then falls back to encoding the prefixes."""
    n = data.shape[0]
    if n == 0:
        return 0
    best = np.full(n + 1, -np.inf)
    back = np.full(n + 1, -1, np.int64)
    best[0] = 0.0
    nr = rank_id.shape[0]
    for s in range(n):
        if best[s] == -np.inf:
            continue
        lo = 0
        hi = nr
        for d in range(min(max_len, n - s)):
            lo, hi = narrow(sb, so, lo, hi, d, data[s + d])
            if lo >= hi:
                break
            if so[lo + 1] - so[lo] == d + 1:
                v = best[s] + scores[rank_id[lo]]
                if v > best[s + d + 1]:  # strict: the earliest start (the longest piece) wins a tie
                    best[s + d + 1] = v
                    back[s + d + 1] = s
    # the chunk's own path must be the tokenizer's
    e = n
    count = 0
    while e > 0:
        if not own_ends[e]:
            return -1
        e = back[e]
        count += 1
        if e < 0:
            return -1
    total = 0
    for i in range(1, n + 1):
        if own_ends[i]:
            total += 1
    if total != count:
        return -1
    p = n
    for q in range(max(0, n - max_len + 1), n):
        # does some piece start with data[q:n] and go on?
        lo = 0
        hi = nr
        for d in range(n - q):
            lo, hi = narrow(sb, so, lo, hi, d, data[q + d])
            if lo >= hi:
                break
        if lo >= hi or (hi - lo == 1 and so[lo + 1] - so[lo] == n - q):
            continue
        e = q
        while e > 0 and not own_ends[e]:
            e = back[e]
        if e < 0:
            return -1
        p = min(p, e)
    return p
