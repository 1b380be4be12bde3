"""Special tokens (``<|im_start|>``, ...): ids after the pieces, matched in text on request.

Matching follows HF tokenizers and tiktoken: only the special tokens the caller allows are
looked for, in the text as given (before normalization), leftmost-longest (at the first position
where any allowed token starts, the longest one that starts there). The text between matches
is encoded exactly as ``encode`` would encode it as a document of its own, so a special token
always sits between pieces, never inside one.

pyahocorasick finds the occurrences; its ``iter_long`` misses matches after a failed longer
candidate, so the leftmost-longest choice is made here from all occurrences (``iter``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np
import numpy.typing as npt

from .errors import InputError
from .model import BOS_ID, EOS_ID, Model

if TYPE_CHECKING:
    from .tokenizer import Seed, Text, Tokenizer

AllowedSpecial = Union[Literal["all"], Iterable[str]]
#: a text cut at special tokens: pieces of text (str or bytes) and special-token ids (int)
Parts = list[Union[str, bytes, int]]


class SpecialTokens:
    """The special tokens of one tokenizer: ids and the automata that find them in text.

    One automaton per allowed set (and per input type: ``bytes`` input is matched byte-wise,
    through a latin-1 view in which every byte is one character)."""

    def __init__(self, model: Model) -> None:
        self.tokens: tuple[str, ...] = model.special_tokens
        self.first_id = model.vocab_size
        self.ids: dict[str, int] = {t: self.first_id + k for k, t in enumerate(self.tokens)}
        self._automata: dict[tuple[frozenset[str], bool], Any] = {}
        self._firsts: dict[tuple[frozenset[str], bool], tuple] = {}
        self._all = frozenset(self.tokens)

    def resolve(self, allowed: AllowedSpecial) -> frozenset[str]:
        """The set of tokens ``allowed_special`` names ("all", or an iterable of known tokens)."""
        if allowed == "all":
            return self._all
        if isinstance(allowed, str):
            if allowed == "all":
                return self._all
            raise InputError(f"allowed_special must be 'all' or a set of special tokens, got the string {allowed!r}; "
                             f"write {{{allowed!r}}} for that one token")
        chosen = frozenset(allowed)
        unknown = sorted(t for t in chosen if t not in self.ids)
        if unknown:
            known = ", ".join(map(repr, self.tokens)) or "none"
            raise InputError(f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not a special token "
                             f"of this tokenizer (known: {known}); add it with add_special_tokens() first")
        return chosen

    def _automaton(self, allowed: frozenset[str], binary: bool):
        key = (allowed, binary)
        automaton = self._automata.get(key)
        if automaton is None:
            import ahocorasick

            automaton = ahocorasick.Automaton()
            for token in allowed:
                pattern = token.encode("utf-8").decode("latin-1") if binary else token
                automaton.add_word(pattern, (len(pattern), self.ids[token]))
            automaton.make_automaton()
            self._automata[key] = automaton
        return automaton

    def may_occur(self, text: Text, allowed: frozenset[str]) -> bool:
        """False when no allowed token can occur in ``text`` because none of their first
        characters does: a scan in C per distinct first character, much cheaper than the
        automaton on text without special tokens (the common case)."""
        binary = type(text) is not str
        firsts = self._firsts.get((allowed, binary))
        if firsts is None:
            firsts = tuple({t.encode("utf-8")[:1] if binary else t[0] for t in allowed})
            self._firsts[(allowed, binary)] = firsts
        for first in firsts:
            if first in text:
                return True
        return False

    def find(self, text: Text, allowed: frozenset[str]) -> list[tuple[int, int, int]]:
        """Leftmost-longest, non-overlapping ``(start, end, id)`` of allowed tokens in ``text``
        (character positions for str, byte positions for bytes)."""
        if not allowed or not self.may_occur(text, allowed):
            return []
        binary = not isinstance(text, str)
        if binary:
            try:
                text = bytes(text).decode("latin-1")  # type: ignore[arg-type]
            except TypeError:
                raise InputError(f"expected str or bytes to encode, got {type(text).__name__}") from None
        automaton = self._automaton(allowed, binary)
        found = [(end + 1 - length, end + 1, token_id) for end, (length, token_id) in automaton.iter(text)]
        if not found:
            return found
        # earliest start first, longest first at equal starts; then skip what overlaps a choice
        found.sort(key=lambda m: (m[0], -m[1]))
        chosen = []
        pos = 0
        for start, end, token_id in found:
            if start >= pos:
                chosen.append((start, end, token_id))
                pos = end
        return chosen

    def split(self, text: Text, allowed: frozenset[str]) -> Parts:
        """``text`` cut at the allowed special tokens: text pieces (possibly empty ones left out)
        and special ids, in order."""
        parts: Parts = []
        pos = 0
        for start, end, token_id in self.find(text, allowed):
            if start > pos:
                parts.append(text[pos:start])
            parts.append(token_id)
            pos = end
        if pos < len(text) or not parts:
            parts.append(text[pos:])
        return parts


def encode(tok: Tokenizer, text: Text, allowed: AllowedSpecial, *, add_bos: bool, add_eos: bool, alpha: float,
           seed: Seed) -> list[int]:
    """``Tokenizer.encode`` with special tokens matched: text without any is encoded by the
    ordinary path (same ids, same samples); otherwise the text pieces are encoded as one batch."""
    special = tok._special
    chosen = special.resolve(allowed)
    if not special.may_occur(text, chosen):
        return tok.encode(text, add_bos, add_eos, alpha, seed)
    parts = special.split(text, chosen)
    if len(parts) == 1 and not isinstance(parts[0], int):
        return tok.encode(text, add_bos, add_eos, alpha, seed)
    flat, offsets = _encode_parts(tok, [parts], alpha, seed, 1)
    ids = flat.tolist()
    if add_bos:
        ids.insert(0, BOS_ID)
    if add_eos:
        ids.append(EOS_ID)
    return ids


def encode_batch(tok: Tokenizer, texts: Iterable[Text], allowed: AllowedSpecial, *, add_bos: bool, add_eos: bool,
                 alpha: float, seed: Seed, num_threads: int | None, return_flat: bool):
    """``Tokenizer.encode_batch`` with special tokens matched (same return types)."""
    if isinstance(texts, (str, bytes)):
        raise InputError("encode_batch expects an iterable of texts; use encode() for a single text")
    special = tok._special
    chosen = special.resolve(allowed)
    texts = list(texts)
    may_occur = special.may_occur
    docs: list[Parts] = [special.split(t, chosen) if may_occur(t, chosen) else [t] for t in texts]
    if all(len(parts) == 1 and not isinstance(parts[0], int) for parts in docs):
        # no special token anywhere: the ordinary path, with its own bos/eos handling
        flat, offsets = tok.encode_batch(texts, add_bos=add_bos, add_eos=add_eos, alpha=alpha, seed=seed,
                                         num_threads=num_threads, return_flat=True)
    else:
        flat, offsets = _with_bos_eos(*_encode_parts(tok, docs, alpha, seed, num_threads), add_bos, add_eos)
    if return_flat:
        return flat, offsets
    ids = flat.tolist()
    bounds = offsets.tolist()
    return [ids[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]


def _with_bos_eos(flat: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64], add_bos: bool,
                  add_eos: bool) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    if add_bos or add_eos:
        counts = np.diff(offsets)
        extra = int(add_bos) + int(add_eos)
        new_offsets = np.zeros_like(offsets)
        np.cumsum(counts + extra, out=new_offsets[1:])
        out = np.empty(int(new_offsets[-1]), np.int32)
        for i in range(len(counts)):
            lo = int(new_offsets[i])
            if add_bos:
                out[lo] = BOS_ID
            out[lo + int(add_bos) : lo + int(add_bos) + int(counts[i])] = flat[offsets[i] : offsets[i + 1]]
            if add_eos:
                out[int(new_offsets[i + 1]) - 1] = EOS_ID
        return out, new_offsets
    return flat, offsets


def _encode_parts(tok: Tokenizer, docs: list[Parts], alpha: float, seed: Seed,
                  num_threads: int | None) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Encode the text pieces of all documents as one batch and put the special ids between
    them: (flat ids, per-document offsets)."""
    texts = [p for parts in docs for p in parts if not isinstance(p, int)]
    seg_flat, seg_offsets = tok.encode_batch(texts, alpha=alpha, seed=seed, num_threads=num_threads, return_flat=True)
    n_special = sum(1 for parts in docs for p in parts if isinstance(p, int))
    out = np.empty(len(seg_flat) + n_special, np.int32)
    offsets = np.zeros(len(docs) + 1, np.int64)
    pos = 0
    seg = 0
    bounds = seg_offsets.tolist()
    for d, parts in enumerate(docs):
        for p in parts:
            if isinstance(p, int):
                out[pos] = p
                pos += 1
            else:
                lo, hi = bounds[seg], bounds[seg + 1]
                out[pos : pos + hi - lo] = seg_flat[lo:hi]
                pos += hi - lo
                seg += 1
        offsets[d + 1] = pos
    return out, offsets
