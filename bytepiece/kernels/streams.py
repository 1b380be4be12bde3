"""Corpus encoding kernels: documents named by random streams, and ids packed at their width.

``encode_streams`` is ``encode.encode_documents`` with the generator of each document seeded by
a number the caller gives (its input and position in the corpus) instead of its index in the
batch, so a sampled document is the same whatever batch, shard or worker encodes it; it reuses
``encode._encode_span`` for the segmentation itself. ``gather_slots`` packs the per-document
results into the token file's own integer width, so a batch is never held as int32 as well.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

from .encode import _chunk_end, _encode_span
from .rng import seed_state

#: work arrays of ``encode_streams`` start at this many bytes and grow only for longer chunks
STREAM_WORK_BYTES = 1 << 20


@njit(cache=True, nogil=True)
def encode_streams(bc, pair, piece, values, mode, max_len, alpha, buf, offsets, lo, hi, seed, streams, out, counts):
    """Encode documents lo..hi-1 of ``buf``; document i writes its ids at ``out[offsets[i]:]``
    and its count in ``counts[i]``, drawing (when sampling) from the generator seeded by
    (seed, ``streams[i]``). Work arrays are sized by the longest chunk rather than the longest
    document (a 20 MB source file of short lines needs kilobytes, not 16 bytes per byte of the
    file); a document longer than them goes chunk by chunk, with the same result."""
    longest = 0
    for i in range(lo, hi):
        longest = max(longest, offsets[i + 1] - offsets[i])
    cap = min(longest, STREAM_WORK_BYTES)
    best = np.empty(cap + 1, np.float64)
    back = np.empty(cap + 1, np.int32)
    tok = np.empty(cap + 1, np.int32)
    sums = np.empty(max_len + 1, np.float64)
    cells = np.empty(max_len + 1, np.int64)
    for i in range(lo, hi):
        a, n = offsets[i], offsets[i + 1]
        state = seed_state(seed, streams[i])
        if n - a <= cap:
            pos, _ = _encode_span(bc, pair, piece, values, mode, max_len, alpha, buf, a, n, best, back, tok, sums, cells,
                                  out, a, state)
        else:
            pos = a
            s = a
            while s < n:
                e = _chunk_end(buf, s, n)
                if e - s > cap:
                    cap = e - s
                    best = np.empty(cap + 1, np.float64)
                    back = np.empty(cap + 1, np.int32)
                    tok = np.empty(cap + 1, np.int32)
                pos, state = _encode_span(bc, pair, piece, values, mode, max_len, alpha, buf, s, e, best, back, tok,
                                          sums, cells, out, pos, state)
                s = e
        counts[i] = pos - a


@njit(cache=True, nogil=True)
def gather_slots(out, offsets, counts, bos, eos, token_offsets, flat):
    """Copy document i's ids from ``out[offsets[i]:]`` to ``flat[token_offsets[i]:]``, with
    ``bos``/``eos`` ids around them (-1: none); ``flat`` has the caller's dtype."""
    for i in range(counts.shape[0]):
        p = token_offsets[i]
        if bos >= 0:
            flat[p] = bos
            p += 1
        src = offsets[i]
        for k in range(counts[i]):
            flat[p + k] = out[src + k]
        if eos >= 0:
            flat[p + counts[i]] = eos
