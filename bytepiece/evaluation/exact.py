"""The exact strategies of the continuation experiment: the byte-level distribution of the LM
over the tokenizations each one names, at every cut.

* ``exact-canonical``: the context is the tokens of the chunks before the prompt's last one, the
  sum runs over the tokenizer's own segmentations of that chunk and what follows;
* ``exact-stable``: the context is those tokens plus the stable prefix of the last chunk
  (``Tokenizer.encode_stable``, computed once per cut for both LMs), the sum runs over every
  tokenization of the rest;
* ``exact-all``: no context at all; every tokenization of the text from its first byte. One
  cursor walks the whole text (cuts in order): at each cut it scores the true character, goes
  back, decodes, goes back, and moves on, so the work is one pass plus the queries.

:func:`generic_check` runs them again on a few cuts with the first LM seen only through
``next_token_logprobs`` (the path any other model takes) and compares with the kernels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..continuation.byte_lm import ByteLevelLM
from ..continuation.context import context_size, last_tokens
from ..continuation.cursor import Cursor, char_length
from ..continuation.healing import exact_tokenizations
from ..continuation.split import stable_split

LN2 = math.log(2.0)
Split = tuple[list[int], bytes]


def stable_splits(tokenizer: Any, prompts: Any) -> list[Split]:
    """``(ids, tail)`` of each prompt's last chunk: the tokens no continuation can change, and the
    bytes after them (the chunks before are final: chunks are encoded on their own)."""
    out = []
    for last in prompts.last:
        split = stable_split(tokenizer, last)
        out.append((split.ids, split.tail))
    return out


def _history(prompts: Any, i: int, keep: int | None) -> list[int]:
    """The tokens before prompt i's last chunk that the LM looks at."""
    return prompts.before_last(i, prompts.before[i] if keep is None else keep)


def _char_hit(data: bytes, b: int, out: bytes) -> bool:
    char = data[b : b + char_length(data[b])]
    return out[: len(char)] == char


def _split(cur: Any, data: bytes, b: int) -> dict[str, float]:
    """``boundary_mass``: the share of the canonical next-byte mass on sequences whose last token
    starts at the cut (the rest lets a token that started before the cut go on);
    ``next_char_given_boundary``: whether greedy bytes under that part alone (the model told that
    a token starts at the cut) spell the text's next character. The cursor ends where it began."""
    _, share = cur.boundary_split()
    n0 = len(cur)
    char = data[b : b + char_length(data[b])]
    cur.assume_boundary(n0)
    hit = cur.greedy(len(char)) == char
    cur.truncate(n0)
    cur.assume_boundary(None)
    return {"boundary_mass": share, "next_char_given_boundary": float(hit)}


def _probe(cur: Cursor, data: bytes, b: int, target_bytes: int) -> tuple[bytes, float]:
    """At a cursor standing at cut b: the log-loss (bits) of the true next character, and the
    greedy continuation; the cursor ends where it started."""
    n0 = len(cur)
    bits = -cur.score(data[b : b + char_length(data[b])]) / LN2
    cur.truncate(n0)
    out = cur.greedy(target_bytes)
    cur.truncate(n0)
    return out, bits


def exact_cuts(tokenizations: str, byte_lm: ByteLevelLM, prompts: Any, data: bytes, indices: Iterable[int], *,
               target_bytes: int, splits: list[Split] | None = None,
               extra: dict[int, dict[str, float]] | None = None) -> Iterator[tuple[int, bytes, float]]:
    """``(cut, greedy continuation, log-loss bits of the true next character)`` at each cut of
    ``indices`` (in increasing order) under the distribution ``tokenizations``. For
    ``canonical``, ``extra[cut]`` gets where its next-byte mass comes from (:func:`_split`)."""
    keep = context_size(byte_lm.lm)
    if tokenizations == "all":
        cur = byte_lm.cursor((), b"")
        pos = 0
        for i in indices:
            b = int(prompts.cuts[i])
            cur.extend(data[pos:b])
            pos = b
            yield (i, *_probe(cur, data, b, target_bytes))
        return
    for i in indices:
        b = int(prompts.cuts[i])
        if tokenizations == "canonical":
            cur = byte_lm.cursor(_history(prompts, i, keep), prompts.last[i], canonical=True)
            if extra is not None:
                extra[i] = _split(cur, data, b)
        else:
            if splits is not None:
                ids, tail = splits[i]
            else:
                split = stable_split(byte_lm.tokenizer, prompts.last[i])
                ids, tail = split.ids, split.tail
            cur = byte_lm.cursor(last_tokens(_history(prompts, i, keep) + ids, keep), tail)
        yield (i, *_probe(cur, data, b, target_bytes))


class ThroughProtocol:
    """An LM seen only through the token-LM interface (``next_token_logprobs``, its batch forms
    in logs and in probabilities, and ``context_size``), so that :class:`ByteLevelLM` takes its
    generic path."""

    def __init__(self, lm: Any) -> None:
        self._lm = lm
        self.vocab_size = lm.vocab_size
        self.context_size = lm.context_size

    def next_token_logprobs(self, context_ids: Sequence[int]) -> np.ndarray:
        return self._lm.next_token_logprobs(context_ids)

    def next_token_logprobs_batch(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        return self._lm.next_token_logprobs_batch(contexts)

    def next_token_probs_batch(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        probs = getattr(self._lm, "next_token_probs_batch", None)  # an LM without it: its log rows exponentiated
        return probs(contexts) if callable(probs) else np.exp(self._lm.next_token_logprobs_batch(contexts))


def generic_check(byte_lm: ByteLevelLM, prompts: Any, data: bytes, strategies: Sequence[str], n: int, *,
                  target_bytes: int, splits: list[Split] | None = None) -> dict[str, Any]:
    """The exact ``strategies`` on the first ``n`` cuts through the kernels and through the
    generic path (the same LM behind :class:`ThroughProtocol`): the generic path's accuracy,
    how often both decode the same bytes, the largest log-loss difference, and both timings."""
    generic = byte_lm.with_lm(ThroughProtocol(byte_lm.lm))
    out: dict[str, Any] = {"cuts": n, "strategies": {}}
    for strategy in strategies:
        name = exact_tokenizations(strategy)
        assert name is not None
        runs: dict[str, list[tuple[int, bytes, float]]] = {}
        seconds: dict[str, float] = {}
        for which, blm in (("kernel", byte_lm), ("generic", generic)):
            t0 = time.perf_counter()
            runs[which] = list(exact_cuts(name, blm, prompts, data, range(n), target_bytes=target_bytes, splits=splits))
            seconds[which] = time.perf_counter() - t0
        hits = [_char_hit(data, int(prompts.cuts[i]), cont) for i, cont, _ in runs["generic"]]
        out["strategies"][strategy] = {
            "next_char": float(np.mean(hits)),
            "same_continuation": float(np.mean([a[1] == b[1] for a, b in zip(runs["kernel"], runs["generic"])])),
            "max_logloss_diff_bits": float(max(abs(a[2] - b[2]) for a, b in zip(runs["kernel"], runs["generic"]))),
            "seconds_per_cut": seconds["generic"] / n,
            "kernel_seconds_per_cut": seconds["kernel"] / n,
        }
    return out


def pool_generic(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """:func:`generic_check` results of several files as one (cut-weighted; the largest difference)."""
    if not parts:
        return None
    n = sum(p["cuts"] for p in parts)
    out: dict[str, Any] = {"cuts": n, "strategies": {}}
    for strategy in parts[0]["strategies"]:
        rows = [(p["cuts"], p["strategies"][strategy]) for p in parts if strategy in p["strategies"]]
        cell = {key: sum(k * r[key] for k, r in rows) / n
                for key in ("next_char", "same_continuation", "seconds_per_cut", "kernel_seconds_per_cut")}
        cell["max_logloss_diff_bits"] = max(r["max_logloss_diff_bits"] for _, r in rows)
        out["strategies"][strategy] = cell
    return out
