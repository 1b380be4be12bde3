"""Slow, obviously-correct references the kernels are checked against.

Deliberately written differently from the kernels: candidates are gathered per *end* position
with the longest first (how the original's Aho-Corasick scan reports them), not by walking a trie
forward from each start; segmentations are enumerated exhaustively.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Literal

CHUNK = re.compile(rb"[^\n]*\n+|[^\n]+")


def chunks(data: bytes) -> list[bytes]:
    return CHUNK.findall(data)


def piece_scores(counts: Mapping[bytes, int]) -> dict[bytes, float]:
    import numpy as np

    log_total = np.log(sum(counts.values()))
    return {p: float(np.log(c) - log_total) for p, c in counts.items()}


def viterbi(scores: Mapping[bytes, float], data: bytes, *, ties: Literal["longer", "shorter"] = "longer") -> list[bytes]:
    """Original semantics: per end position, candidates longest first, strict improvement wins.
    ``ties="shorter"`` breaks exact ties the other way (the last, shorter candidate wins), so a
    golden set can show that it depends on the tie rule at all."""
    if ties not in ("longer", "shorter"):
        raise ValueError(f"ties must be 'longer' or 'shorter', got {ties!r}")
    shorter_wins = ties == "shorter"
    out: list[bytes] = []
    longest = max(map(len, scores))
    for chunk in chunks(data):
        n = len(chunk)
        best = [0.0] + [-math.inf] * n
        start = list(range(n + 1))
        for e in range(1, n + 1):
            for s in range(max(0, e - longest), e):  # ascending start == longest piece first
                piece = chunk[s:e]
                if piece in scores:
                    value = best[s] + scores[piece]
                    if value > best[e] or (shorter_wins and value == best[e]):
                        best[e], start[e] = value, s
        pieces = []
        e = n
        while e > 0:
            pieces.append(chunk[start[e] : e])
            e = start[e]
        out.extend(reversed(pieces))
    return out


def segmentations(vocab: set[bytes] | Mapping[bytes, float], data: bytes) -> list[tuple[bytes, ...]]:
    """Every segmentation of ``data`` (one chunk: no newline followed by other bytes) into pieces."""
    if not data:
        return [()]
    result = []
    for k in range(1, len(data) + 1):
        head = data[:k]
        if head in vocab:
            result.extend((head,) + rest for rest in segmentations(vocab, data[k:]))
    return result


def exact_distribution(scores: Mapping[bytes, float], data: bytes, alpha: float) -> dict[tuple[bytes, ...], float]:
    """P(S) proportional to prod p(piece) ** alpha over all segmentations S of ``data``."""
    segs = segmentations(scores, data)
    logw = [alpha * sum(scores[p] for p in seg) for seg in segs]
    top = max(logw)
    weights = [math.exp(w - top) for w in logw]
    total = sum(weights)
    return {seg: w / total for seg, w in zip(segs, weights)}


def chunked_segmentations(vocab: set[bytes] | Mapping[bytes, float], data: bytes) -> list[list[tuple[bytes, ...]]]:
    """Every segmentation of each chunk of ``data`` (a text's segmentations are one per chunk)."""
    return [segmentations(vocab, chunk) for chunk in chunks(data)]


def all_segmentations(scores: Mapping[bytes, float], data: bytes) -> list[tuple[tuple[bytes, ...], float]]:
    """Every segmentation of ``data`` with its log probability, summed the way the library sums
    (within a chunk left to right from 0.0, then the chunk totals left to right)."""
    import itertools

    per_chunk = chunked_segmentations(scores, data)
    out = []
    for combo in itertools.product(*per_chunk):
        total = 0.0
        for seg in combo:
            chunk_total = 0.0
            for piece in seg:
                chunk_total += scores[piece]
            total += chunk_total
        out.append((tuple(p for seg in combo for p in seg), total))
    return out


def entropy(scores: Mapping[bytes, float], data: bytes, alpha: float) -> float:
    """Entropy (nats) of P(S) proportional to p(S) ** alpha over all segmentations, by enumeration."""
    logw = [alpha * total for _, total in all_segmentations(scores, data)]
    top = max(logw)
    weights = [math.exp(w - top) for w in logw]
    z = sum(weights)
    return -sum(w / z * math.log(w / z) for w in weights if w > 0)


def exact_text_distribution(scores: Mapping[bytes, float], data: bytes, alpha: float) -> dict[tuple[bytes, ...], float]:
    """``exact_distribution`` over a whole text (several chunks)."""
    segs = all_segmentations(scores, data)
    logw = [alpha * total for _, total in segs]
    top = max(logw)
    weights = [math.exp(w - top) for w in logw]
    z = sum(weights)
    return {seg: w / z for (seg, _), w in zip(segs, weights)}


def leftmost_longest(text, tokens) -> list[tuple[int, int, str]]:
    """Non-overlapping occurrences of ``tokens`` in ``text``, scanning left to right and taking
    at each position the longest token that starts there."""
    out = []
    i = 0
    while i < len(text):
        best = max((t for t in tokens if text.startswith(t, i)), key=len, default=None)
        if best is None:
            i += 1
        else:
            out.append((i, i + len(best), best))
            i += len(best)
    return out
