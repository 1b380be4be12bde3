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

import numpy as np

CHUNK = re.compile(rb"[^\n]*\n+|[^\n]+")


def chunks(data: bytes) -> list[bytes]:
    return CHUNK.findall(data)


def piece_scores(counts: Mapping[bytes, int]) -> dict[bytes, float]:
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


# -- byte-level continuation ------------------------------------------------------------------------
# The next-byte distributions of a token LM (bytepiece.continuation), each from its definition: every
# token sequence that covers the bytes and reaches past them is enumerated, and the LM is asked one
# probability at a time with the whole history.

def memo(prob):
    """The same token probabilities, each (history, token) asked of the LM once."""
    seen: dict = {}

    def cached(ctx, t):
        key = (tuple(ctx), t)
        if key not in seen:
            seen[key] = prob(ctx, t)
        return seen[key]

    return cached


def next_byte(prob, pieces: dict[bytes, int], context: list[int], x: bytes, keep=None, *,
              normalized: bool = True) -> np.ndarray:
    """P(next byte | x): the summed probability of the token sequences t1..tk after ``context``
    whose first k-1 tokens spell a prefix of x and whose last token spells the rest of x and at
    least one byte more, split by that byte (``keep(T)`` filters the sequences), normalized
    (or the 256 sums themselves)."""
    out = np.zeros(256)

    def rec(seq, pos, w):
        rest = x[pos:]
        for piece, t in pieces.items():
            if piece.startswith(rest) and len(piece) > len(rest):
                if keep is None or keep(seq + [t]):
                    out[piece[len(rest)]] += w * prob(context + seq, t)
            elif rest.startswith(piece):
                rec(seq + [t], pos + len(piece), w * prob(context + seq, t))

    rec([], 0, 1.0)
    return out / out.sum() if normalized else out


def all_reference(tok, prob, pieces, prompt: str) -> np.ndarray:
    return next_byte(prob, pieces, [], tok.normalize(prompt))


def stable_reference(tok, prob, pieces, prompt: str) -> np.ndarray:
    ids, tail = tok.encode_stable(prompt)
    return next_byte(prob, pieces, list(ids), tok.normalize(tail))


def canonical_reference(tok, prob, pieces, prompt: str) -> np.ndarray:
    data = tok.normalize(prompt)
    cut = data.rfind(b"\n", 0, len(data.rstrip(b"\n"))) + 1  # the last chunk starts after a newline run
    head = data[:cut]
    head_ids = tok.encode(head)
    piece_of = {t: p for p, t in pieces.items()}

    def canonical(seq):
        return tok.encode(head + b"".join(piece_of[t] for t in seq)) == head_ids + seq

    return next_byte(prob, pieces, head_ids, data[cut:], keep=canonical)


REFERENCES = {"all": all_reference, "stable": stable_reference, "canonical": canonical_reference}


