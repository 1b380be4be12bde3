"""The continuation experiment: does the LM continue a prompt cut at a random character?

For each held-out text, ``n`` cut points are drawn (seeded, without replacement) among the
character boundaries that leave at least ``target_bytes`` bytes after them; the same cuts are
used for every tokenizer, so results are paired. The prompt is the text before the cut,
tokenized as the tokenizer would tokenize that text on its own (the finished chunks keep their
tokens; the chunk the cut falls in is re-encoded up to the cut). A cut is *mid-token* when it
is not a token boundary of the full text's tokenization.

Conditions: the prompt as is (``naive``) or with its last ``k`` tokens backed off and their
bytes required as the start of the continuation (``healing``), each with the LM trained on
deterministic and on sampled segmentations. Decoding is greedy until ``target_bytes`` bytes
beyond the prompt exist. Scores: the first character (its UTF-8 bytes) and the first
``target_bytes`` bytes match the text exactly; ``matched_bytes``: length of the common prefix.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..healing import VocabIndex, generate
from ..lm import NGramLM
from ..tokenizer import Tokenizer
from .metrics import EncodedText

DEFAULT_CUTS = 2000
DEFAULT_TARGET_BYTES = 8


def char_length(lead: int) -> int:
    if lead < 0x80:
        return 1
    if lead >= 0xF0:
        return 4
    if lead >= 0xE0:
        return 3
    if lead >= 0xC0:
        return 2
    return 1


def cut_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The cut points of a text depend on the experiment seed and the text's name only."""
    return np.random.SeedSequence([seed, zlib.crc32(name.encode("utf-8"))])


def choose_cuts(data: bytes, n: int, seed: int | np.random.SeedSequence, *, min_after: int = DEFAULT_TARGET_BYTES) -> npt.NDArray[np.int64]:
    """Up to ``n`` distinct byte offsets in ``1 .. len(data) - min_after`` at character boundaries, sorted."""
    arr = np.frombuffer(data, dtype=np.uint8)
    hi = len(arr) - min_after
    if hi < 1:
        return np.zeros(0, dtype=np.int64)
    positions = np.flatnonzero((arr[1 : hi + 1] & 0xC0) != 0x80) + 1
    rng = np.random.default_rng(seed)
    take = min(n, len(positions))
    return np.sort(rng.choice(positions, size=take, replace=False)).astype(np.int64)


@dataclass
class Prompts:
    cuts: npt.NDArray[np.int64]
    is_boundary: npt.NDArray[np.bool_]
    tails: list[list[int]]  # the last ``tail`` prompt ids of each cut


def build_prompts(tokenizer: Tokenizer, enc: EncodedText, cuts: npt.NDArray[np.int64], tail: int,
                  num_threads: int | None = None) -> Prompts:
    chunk_of = np.searchsorted(enc.chunk_starts, cuts, side="right") - 1
    partials = [enc.data[enc.chunk_starts[c] : b] for c, b in zip(chunk_of.tolist(), cuts.tolist())]
    p_ids, p_off = tokenizer.encode_batch(partials, return_flat=True, num_threads=num_threads)
    ids = enc.ids
    tails = []
    p_ids_l = p_ids.tolist()
    p_off_l = p_off.tolist()
    for i, c in enumerate(chunk_of.tolist()):
        before = int(enc.chunk_token_offsets[c])
        own = p_ids_l[p_off_l[i] : p_off_l[i + 1]]
        need = tail - len(own)
        prev = ids[max(0, before - need) : before].tolist() if need > 0 else []
        tails.append((prev + own)[-tail:])
    bounds = enc.token_ends
    pos = np.searchsorted(bounds, cuts)
    is_boundary = (pos < len(bounds)) & (bounds[np.minimum(pos, len(bounds) - 1)] == cuts)
    return Prompts(cuts, is_boundary, tails)


CONDITIONS = ("naive", "healing")


def run_condition(lm_next: Callable[[list[int]], np.ndarray], index: VocabIndex, prompts: Prompts, data: bytes, *,
                  order: int, heal_k: int, target_bytes: int = DEFAULT_TARGET_BYTES) -> dict[str, npt.NDArray]:
    """Greedy continuations of every prompt; per-cut arrays of the three scores."""
    n = len(prompts.cuts)
    match_char = np.zeros(n, dtype=bool)
    match_bytes = np.zeros(n, dtype=bool)
    matched = np.zeros(n, dtype=np.int64)
    ctx_len = order - 1
    for i in range(n):
        tail = prompts.tails[i]
        if heal_k > 0 and tail:
            k = min(heal_k, len(tail))
            kept = tail[: len(tail) - k]
            prefix = b"".join(index.piece(t) for t in tail[len(tail) - k :])
        else:
            kept, prefix = tail, b""
        context = kept[max(0, len(kept) - ctx_len) :] if ctx_len > 0 else []
        g = generate(lm_next, index, context, prefix, max_new_bytes=target_bytes,
                     max_new_tokens=target_bytes + len(prefix))
        out = g.continuation
        b = int(prompts.cuts[i])
        truth = data[b : b + target_bytes]
        L = char_length(truth[0])
        match_char[i] = out[:L] == truth[:L]
        match_bytes[i] = out[:target_bytes] == truth
        m = 0
        top = min(len(out), len(truth))
        while m < top and out[m] == truth[m]:
            m += 1
        matched[i] = m
    return {"next_char": match_char, "next_bytes": match_bytes, "matched_bytes": matched}


def summarize(scores: dict[str, npt.NDArray], is_boundary: npt.NDArray[np.bool_]) -> dict:
    out = {}
    for part, mask in (("all", np.ones_like(is_boundary)), ("boundary", is_boundary), ("mid_token", ~is_boundary)):
        n = int(mask.sum())
        out[part] = {"n": n, **{k: (float(v[mask].mean()) if n else None) for k, v in scores.items()}}
    return out


def continuation_experiment(tokenizer: Tokenizer, enc: EncodedText, lms: dict[str, NGramLM], *, cuts: int,
                            seed: int, heal_k: int = 1, target_bytes: int = DEFAULT_TARGET_BYTES,
                            index: VocabIndex | None = None, num_threads: int | None = None,
                            conditions: Sequence[str] = CONDITIONS) -> dict:
    """All conditions on one text: ``{"cuts", "mid_token_fraction", "conditions": {"naive/LM": ...}}``."""
    index = index or VocabIndex.from_tokenizer(tokenizer)
    order = max(lm.order for lm in lms.values()) if lms else 1
    positions = choose_cuts(enc.data, cuts, cut_seed(seed, enc.name), min_after=target_bytes)
    prompts = build_prompts(tokenizer, enc, positions, tail=order - 1 + heal_k, num_threads=num_threads)
    result = {"cuts": int(len(positions)), "mid_token_fraction": float((~prompts.is_boundary).mean()) if len(positions) else None,
              "conditions": {}}
    for lm_name, lm in lms.items():
        buf = np.empty(lm.vocab_size, dtype=np.float64)

        def lm_next(ctx, lm=lm, buf=buf):
            return lm.next_probs(ctx, out=buf)

        for cond in conditions:
            k = heal_k if cond == "healing" else 0
            scores = run_condition(lm_next, index, prompts, enc.data, order=lm.order, heal_k=k, target_bytes=target_bytes)
            result["conditions"][f"{cond}/{lm_name}"] = summarize(scores, prompts.is_boundary)
    return result
