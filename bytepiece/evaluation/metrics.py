"""Per-text measurements: compression, LM training data, bits per byte, the sampling profile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..compression import Compression
from ..model import FIRST_PIECE_ID
from ..normalize import chunks as split_chunks
from ..tokenizer import Tokenizer

LN2 = float(np.log(2.0))


def piece_lengths(tokenizer: Tokenizer) -> npt.NDArray[np.int64]:
    """Byte length of every id (0 for the reserved ids and special tokens)."""
    out = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    pieces = tokenizer.pieces()
    out[FIRST_PIECE_ID:FIRST_PIECE_ID + len(pieces)] = [len(p) for p in pieces]
    return out


@dataclass
class EncodedText:
    """A text as one tokenizer sees it: its normalized bytes cut into chunks (the units the
    tokenizer segments independently) and the deterministic tokens of every chunk."""

    name: str
    raw_bytes: int  # UTF-8 bytes of the text as given (the denominator of every per-byte figure)
    chars: int
    data: bytes  # normalized bytes (what the tokenizer segments)
    chunks: list[bytes]
    chunk_starts: npt.NDArray[np.int64]  # byte offset of each chunk in ``data`` (+ len(data) at the end)
    ids: npt.NDArray[np.int32]
    chunk_token_offsets: npt.NDArray[np.int64]  # tokens of chunk c: ids[off[c]:off[c+1]]
    token_ends: npt.NDArray[np.int64]  # byte offset just after each token

    @property
    def tokens(self) -> int:
        return len(self.ids)


def encode_text(tokenizer: Tokenizer, text: str, name: str, lengths: npt.NDArray[np.int64] | None = None,
                num_threads: int | None = None) -> EncodedText:
    data = tokenizer.normalize(text)
    parts = split_chunks(data)
    starts = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in parts], out=starts[1:])
    ids, offsets = tokenizer.encode_batch(parts, return_flat=True, num_threads=num_threads)
    if lengths is None:
        lengths = piece_lengths(tokenizer)
    ends = np.cumsum(lengths[ids])
    return EncodedText(name, len(text.encode("utf-8")), len(text), data, parts, starts, ids, offsets, ends)


def compression(enc: EncodedText) -> dict:
    return Compression(enc.raw_bytes, enc.chars, enc.tokens).as_dict()


def training_ids(tokenizer: Tokenizer, parts: Sequence[bytes], *, alpha: float = -1.0, passes: int = 1,
                 seed: int = 0, num_threads: int | None = None) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Token ids of the LM training text as one document per pass: the deterministic
    segmentation (``alpha < 0``, one pass) or ``passes`` sampled segmentations with seeds
    ``seed, seed + 1, ...`` (each chunk draws from its own stream of that seed)."""
    if alpha < 0:
        passes = 1
    runs = []
    for p in range(passes):
        ids, _ = tokenizer.encode_batch(parts, alpha=alpha, seed=seed + p, return_flat=True, num_threads=num_threads)
        runs.append(ids)
    offsets = np.zeros(len(runs) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in runs], out=offsets[1:])
    return np.concatenate(runs) if runs else np.zeros(0, np.int32), offsets


class ScoresTokens(Protocol):
    """A token LM that scores a whole text (the KN model, the transformer)."""

    def token_logprobs(self, ids: npt.NDArray[np.int32], /) -> npt.NDArray[np.floating]: ...


def bits_per_byte(lm: ScoresTokens, enc: EncodedText) -> dict:
    """Total -log2 likelihood of the text's deterministic tokens (one document: the context runs
    across lines) over the text's UTF-8 bytes."""
    logp = lm.token_logprobs(enc.ids)
    bits = float(-logp.sum() / LN2)
    return {"bits": bits, "bits_per_byte": bits / max(enc.raw_bytes, 1), "bits_per_token": bits / max(enc.tokens, 1),
            "tokens": enc.tokens}


def sampling_profile(tokenizer: Tokenizer, enc: EncodedText, alphas: Sequence[float], *, seed: int = 0,
                     lengths: npt.NDArray[np.int64] | None = None, num_threads: int | None = None) -> list[dict]:
    """For each alpha: how much a sampled segmentation differs from Viterbi, and its compression.

    ``changed_fraction``: sampled tokens that are not a token of the Viterbi segmentation (same
    start and end); ``viterbi_kept_fraction``: Viterbi tokens that survive in the sample.
    """
    if lengths is None:
        lengths = piece_lengths(tokenizer)
    bounds = np.concatenate([[0], enc.token_ends])
    out = []
    for alpha in alphas:
        ids, _ = tokenizer.encode_batch(enc.chunks, alpha=float(alpha), seed=seed, return_flat=True,
                                        num_threads=num_threads)
        ends = np.cumsum(lengths[ids])
        starts = ends - lengths[ids]
        i = np.searchsorted(bounds, starts)
        j = np.searchsorted(bounds, ends)
        i_ok = bounds[np.minimum(i, len(bounds) - 1)] == starts
        j_ok = bounds[np.minimum(j, len(bounds) - 1)] == ends
        same = i_ok & j_ok & (j == i + 1)
        n = max(len(ids), 1)
        kept = int(same.sum())
        sampled = Compression(enc.raw_bytes, enc.chars, len(ids))
        out.append({"alpha": float(alpha), "tokens": int(len(ids)), "changed_fraction": 1.0 - kept / n,
                    "viterbi_kept_fraction": kept / max(enc.tokens, 1), "bytes_per_token": sampled.bytes_per_token,
                    "chars_per_token": sampled.chars_per_token})
    return out
