"""The continuation experiment: does the LM continue a prompt cut at a random character?

For each held-out text, ``n`` cut points are drawn (seeded, without replacement) among the
character boundaries that leave at least ``target_bytes`` bytes after them; the same cuts are
used for every tokenizer, so results are paired. The prompt is the text before the cut,
tokenized as the tokenizer would tokenize that text on its own (the finished chunks keep their
tokens; the chunk the cut falls in is re-encoded up to the cut). A cut is *mid-token* when it
is not a token boundary of the full text's tokenization.

Conditions: every strategy of :data:`bytepiece.continuation.healing.STRATEGIES` (``naive``, the
healing variants, ``soft``, and the exact byte-level distributions ``exact-canonical``,
``exact-stable``, ``exact-all``, :mod:`.exact`) with the LM trained on deterministic and on
sampled segmentations, all on the same cuts. Decoding is greedy until ``target_bytes`` bytes
beyond the prompt exist (token strategies: greedy tokens; ``exact-*``: the most probable byte,
one at a time). Scores: the first character (its UTF-8 bytes) and the first ``target_bytes``
bytes match the text exactly; ``matched_bytes``: length of the common prefix; ``logloss_bits``:
``-log2`` of the probability the strategy's generation process gives the true next character
(sampling at temperature 1: the byte-level dynamic program of :mod:`bytepiece.continuation` run
with the strategy's context, required prefix and constraint; ``exact-*`` condition on the
prompt's bytes). A ``soft`` generation that rewrites the prompt's end continues nothing, so it
scores as a miss.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..continuation.byte_lm import DEFAULT_MAX_STATES, ByteLevelLM
from ..continuation.context import context_size, last_tokens
from ..continuation.cursor import char_length
from ..continuation.healing import DEFAULT_SOFT_BIAS, STRATEGIES, backoff_of, exact_tokenizations, generate, heal
from ..continuation.lm import NGramLM
from ..continuation.vocab import VocabIndex
from ..tokenizer import Tokenizer
from . import exact as X
from .metrics import EncodedText

DEFAULT_CUTS = 2000
DEFAULT_TARGET_BYTES = 8


def cuts_digest(cuts: npt.NDArray[np.int64]) -> str:
    """A short fingerprint of a set of cut positions: equal digests mean paired results."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(cuts, dtype="<i8").tobytes()).hexdigest()[:16]


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
    """Each cut's prompt as the tokenizer sees it on its own: the tokens of every chunk before the
    prompt's last chunk (``ids[:before[i]]`` of the full text) and the tokens ``own[i]`` of that
    last, still open chunk (its bytes: ``last[i]``)."""

    cuts: npt.NDArray[np.int64]
    is_boundary: npt.NDArray[np.bool_]
    before: list[int]
    own: list[list[int]]
    last: list[bytes]
    ids: npt.NDArray[np.int32]

    def tail(self, i: int, n: int) -> list[int]:
        """The last ``n`` token ids of prompt ``i`` (all of them when it has fewer)."""
        return last_tokens(self.before_last(i, max(n - len(self.own[i]), 0)) + self.own[i], n)

    def before_last(self, i: int, n: int) -> list[int]:
        """The last ``n`` ids before prompt ``i``'s last chunk."""
        return last_tokens(self.ids[: self.before[i]], n).tolist()

    def tails(self, n: int) -> list[list[int]]:
        return [self.tail(i, n) for i in range(len(self.cuts))]


def build_prompts(tokenizer: Tokenizer, enc: EncodedText, cuts: npt.NDArray[np.int64],
                  num_threads: int | None = None) -> Prompts:
    chunk_of = np.searchsorted(enc.chunk_starts, cuts, side="right") - 1
    # A cut right after a newline run leaves the previous chunk as the prompt's last one (open:
    # another newline would extend it).
    at_start = enc.chunk_starts[chunk_of] == cuts
    last_chunk = np.where(at_start, chunk_of - 1, chunk_of)
    partials = [enc.data[enc.chunk_starts[c] : b] for c, b, s in zip(chunk_of.tolist(), cuts.tolist(), at_start.tolist())
                if not s]
    p_ids = tokenizer.encode_batch(partials, num_threads=num_threads) if partials else []
    own, last, k = [], [], 0
    offs = enc.chunk_token_offsets
    for c, s in zip(last_chunk.tolist(), at_start.tolist()):
        if s:
            own.append(enc.ids[offs[c] : offs[c + 1]].tolist())
            last.append(enc.chunks[c])
        else:
            own.append(p_ids[k])
            last.append(partials[k])
            k += 1
    bounds = enc.token_ends
    pos = np.searchsorted(bounds, cuts)
    is_boundary = (pos < len(bounds)) & (bounds[np.minimum(pos, len(bounds) - 1)] == cuts)
    before = [int(offs[c]) for c in last_chunk.tolist()]
    return Prompts(cuts, is_boundary, before, own, last, enc.ids)


LN2 = math.log(2.0)


def _score(out: bytes, truth: bytes) -> tuple[bool, bool, int]:
    n = len(truth)
    L = char_length(truth[0])
    m = 0
    top = min(len(out), n)
    while m < top and out[m] == truth[m]:
        m += 1
    return out[:L] == truth[:L], out[:n] == truth, m


def run_strategy(strategy: str, lm: Any, byte_lm: ByteLevelLM, prompts: Prompts, data: bytes, *,
                 target_bytes: int = DEFAULT_TARGET_BYTES, soft_bias: float = DEFAULT_SOFT_BIAS,
                 splits: list[tuple[list[int], bytes]] | None = None) -> dict[str, npt.NDArray]:
    """Greedy continuation and log-loss of the true next character for every cut, one strategy
    (``splits``: the stable splits of the prompts' last chunks, shared by the LMs)."""
    n = len(prompts.cuts)
    scores = {"next_char": np.zeros(n, dtype=bool), "next_bytes": np.zeros(n, dtype=bool),
              "matched_bytes": np.zeros(n, dtype=np.int64), "logloss_bits": np.zeros(n, dtype=np.float64)}
    tokenizations = exact_tokenizations(strategy)
    extra: dict[int, dict[str, float]] = {}
    if tokenizations is not None:
        runs = X.exact_cuts(tokenizations, byte_lm, prompts, data, range(n), target_bytes=target_bytes, splits=splits,
                            extra=extra)
    else:
        runs = _token_cuts(strategy, lm, byte_lm, prompts, data, target_bytes=target_bytes, soft_bias=soft_bias)
    for i, out, bits in runs:
        truth = data[int(prompts.cuts[i]) : int(prompts.cuts[i]) + target_bytes]
        scores["next_char"][i], scores["next_bytes"][i], scores["matched_bytes"][i] = _score(out, truth)
        scores["logloss_bits"][i] = bits
    for key in (next(iter(extra.values())) if extra else {}):
        scores[key] = np.array([extra[i][key] for i in range(n)], dtype=np.float64)
    return scores


def _token_cuts(strategy: str, lm: Any, byte_lm: ByteLevelLM, prompts: Prompts, data: bytes, *,
                target_bytes: int, soft_bias: float):
    """``(cut, continuation, log-loss bits)`` of a token strategy at every cut: back off, generate
    greedily, and score the true next character with the same process as a sampler."""
    keep = context_size(lm)
    index = byte_lm.index
    bias = soft_bias if strategy == "soft" else None
    buf = np.empty(lm.vocab_size, dtype=np.float64)
    lm_next: Callable[[list[int]], npt.NDArray[np.float64]]
    if not isinstance(lm, NGramLM):  # any other token LM: its log-probabilities
        def lm_next(ctx):
            logp = lm.next_token_logprobs(ctx)
            return logp if bias is not None else np.exp(logp)
    elif bias is None:
        def lm_next(ctx):
            return lm.next_probs(ctx, out=buf)
    else:
        def lm_next(ctx):
            return lm.next_logprobs(ctx, out=buf)
    k = backoff_of(strategy)
    back = index.max_piece_length + 1 if k == "cover" else int(k)
    for i in range(len(prompts.cuts)):
        b = int(prompts.cuts[i])
        char = data[b : b + char_length(data[b])]
        ids = prompts.tail(i, (keep or 0) + back) if keep is not None else prompts.tail(i, len(prompts.ids))
        if back:
            healed = heal(byte_lm.tokenizer, ids, k, index=index)
            kept, prefix = healed.kept_ids, healed.prefix
        else:
            kept, prefix = ids, b""
        context = last_tokens(kept, keep)
        g = generate(lm_next, index, context, prefix, max_new_bytes=target_bytes,
                     max_new_tokens=target_bytes + len(prefix), bias=bias)
        cur = byte_lm.cursor(context, prefix, constrained=len(prefix), bias=bias)
        lp = cur.log_mass() if prefix else 0.0
        yield i, g.continuation, -(lp + cur.score(char)) / LN2


def summarize(scores: dict[str, npt.NDArray], is_boundary: npt.NDArray[np.bool_]) -> dict:
    out = {}
    for part, mask in (("all", np.ones_like(is_boundary)), ("boundary", is_boundary), ("mid_token", ~is_boundary)):
        n = int(mask.sum())
        out[part] = {"n": n, **{k: (float(v[mask].mean()) if n else None) for k, v in scores.items()}}
    return out


def continuation_experiment(tokenizer: Tokenizer, enc: EncodedText, lms: Mapping[str, Any], *, cuts: int,
                            seed: int, target_bytes: int = DEFAULT_TARGET_BYTES, index: VocabIndex | None = None,
                            num_threads: int | None = None, strategies: Sequence[str] = STRATEGIES,
                            soft_bias: float = DEFAULT_SOFT_BIAS, generic_cuts: int = 0, subset: int | None = None,
                            max_states: int | None = None) -> dict:
    """Every strategy with every LM on one text: ``{"cuts", "mid_token_fraction", "conditions":
    {"<strategy>/<lm>": {"all" | "boundary" | "mid_token": scores, "seconds_per_cut": ...}},
    "generic": ...}``; ``generic`` (:func:`.exact.generic_check`) runs the exact strategies on the
    first ``generic_cuts`` cuts again with the first LM seen only through ``next_token_logprobs``.
    ``subset``: run on that many of the cuts only, evenly spread over them (a slow LM's share of
    the same cuts); ``max_states``: the state cap of the byte-level recursion (generic LMs)."""
    index = index or VocabIndex.from_tokenizer(tokenizer)
    positions = choose_cuts(enc.data, cuts, cut_seed(seed, enc.name), min_after=target_bytes)
    if subset is not None and subset < len(positions):
        positions = positions[np.unique(np.linspace(0, len(positions) - 1, subset).round().astype(np.int64))]
    prompts = build_prompts(tokenizer, enc, positions, num_threads=num_threads)
    result: dict[str, Any] = {"cuts": int(len(positions)), "cuts_sha256": cuts_digest(positions),
                              "mid_token_fraction": float((~prompts.is_boundary).mean()) if len(positions) else None,
                              "conditions": {}}
    t0 = time.perf_counter()
    splits = X.stable_splits(tokenizer, prompts) if "exact-stable" in strategies else None
    t_stable = time.perf_counter() - t0  # part of the exact-stable strategy's cost, for each LM
    first: ByteLevelLM | None = None
    for lm_name, lm in lms.items():
        byte_lm = first.with_lm(lm) if first is not None else \
            ByteLevelLM(tokenizer, lm, index=index, max_states=max_states or DEFAULT_MAX_STATES)
        first = first or byte_lm
        for strategy in strategies:
            t0 = time.perf_counter()
            scores = run_strategy(strategy, lm, byte_lm, prompts, enc.data, target_bytes=target_bytes,
                                  soft_bias=soft_bias, splits=splits)
            seconds = time.perf_counter() - t0 + (t_stable if strategy == "exact-stable" else 0.0)
            entry = summarize(scores, prompts.is_boundary)
            entry["seconds_per_cut"] = seconds / max(len(positions), 1)
            result["conditions"][f"{strategy}/{lm_name}"] = entry
    exact = [s for s in strategies if exact_tokenizations(s) is not None]
    if generic_cuts and exact and first is not None and len(positions):
        result["generic"] = X.generic_check(first, prompts, enc.data, exact, min(generic_cuts, len(positions)),
                                            target_bytes=target_bytes, splits=splits)
    return result
