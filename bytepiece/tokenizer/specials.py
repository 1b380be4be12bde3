"""Special tokens (``<|im_start|>``, ...): ids after the pieces, matched in text on request.

Matching follows HF tokenizers and tiktoken: only the special tokens the caller allows are
looked for, leftmost-longest (at the first position where any allowed token starts, the longest
one that starts there), never across a document boundary. It runs on the bytes the model
segments, after normalization (a token's own text is normalized the same way), so a special
token always sits between pieces, never inside one, and every path that encodes (one text, a
batch, a corpus) matches the same occurrences.

pyahocorasick finds the occurrences (its ``str`` build, over a latin-1 view of the bytes in which
every byte is one character); its ``iter_long`` misses matches after a failed longer candidate,
so the leftmost-longest choice is made here from all occurrences (``iter``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Union

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..normalize import to_utf8

AllowedSpecial = Union[Literal["all"], Iterable[str]]


class Matches:
    """Occurrences of special tokens: ``starts``, ``ends`` (byte positions) and ``ids``, in order."""

    def __init__(self, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ids: npt.NDArray[np.int32]) -> None:
        self.starts, self.ends, self.ids = starts, ends, ids

    def __len__(self) -> int:
        return len(self.ids)


NO_MATCHES = Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))


class SpecialTokens:
    """The special tokens of one vocabulary: names, ids and the automata that find them."""

    def __init__(self, tokens: tuple[str, ...], first_id: int, normalization: str) -> None:
        self.tokens = tokens
        self.first_id = first_id
        self.normalization = normalization
        self.ids: dict[str, int] = {t: first_id + k for k, t in enumerate(tokens)}
        self.patterns: dict[str, bytes] = {t: to_utf8(t, normalization) for t in tokens}
        self._automata: dict[frozenset[str], Any] = {}
        self._all = frozenset(tokens)

    def extended(self, tokens: tuple[str, ...]) -> SpecialTokens:
        """These tokens and, after them, each of ``tokens`` not yet among them (checked tokens):
        known tokens keep their ids, new ones take the next."""
        added = tuple(t for t in tokens if t not in self.ids)
        return SpecialTokens(self.tokens + added, self.first_id, self.normalization) if added else self

    def resolve(self, allowed: AllowedSpecial) -> frozenset[str]:
        """The set of tokens ``allowed_special`` names ("all", or an iterable of known tokens)."""
        if isinstance(allowed, str):
            if allowed == "all":
                return self._all
            raise InputError(f"allowed_special must be 'all' or a set of special tokens, got the string {allowed!r}; "
                             f"write {{{allowed!r}}} for that one token")
        try:
            chosen = frozenset(allowed)
        except TypeError:
            raise InputError(f"allowed_special must be 'all' or a set of special tokens, got {allowed!r}") from None
        unknown = sorted(str(t) for t in chosen if t not in self.ids)
        if unknown:
            known = ", ".join(map(repr, self.tokens)) or "none"
            raise InputError(f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not a special token "
                             f"of this tokenizer (known: {known}); add it with add_special_tokens() first")
        return chosen

    def _automaton(self, allowed: frozenset[str]) -> Any:
        automaton = self._automata.get(allowed)
        if automaton is None:
            import ahocorasick

            automaton = ahocorasick.Automaton()
            for token in allowed:
                pattern = self.patterns[token].decode("latin-1")
                automaton.add_word(pattern, (len(pattern), self.ids[token]))
            automaton.make_automaton()
            self._automata[allowed] = automaton
        return automaton

    def may_occur(self, data: bytes, allowed: frozenset[str]) -> bool:
        """False when no allowed token can occur in ``data`` because none of their first bytes
        does: a scan in C per distinct first byte, much cheaper than the automaton on text
        without special tokens (the common case)."""
        return any(first in data for first in {self.patterns[t][:1] for t in allowed})

    def find(self, data: bytes, allowed: frozenset[str], offsets: npt.NDArray[np.int64] | None = None) -> Matches:
        """Leftmost-longest, non-overlapping occurrences of ``allowed`` tokens in ``data``; with
        document ``offsets``, none that crosses from one document into the next."""
        if not allowed or not self.may_occur(data, allowed):
            return NO_MATCHES
        automaton = self._automaton(allowed)
        found = [(end + 1 - length, end + 1, token_id)
                 for end, (length, token_id) in automaton.iter(data.decode("latin-1"))]
        if not found:
            return NO_MATCHES
        arr = np.array(found, dtype=np.int64)
        if offsets is not None and len(offsets) > 2:
            first_doc = np.searchsorted(offsets, arr[:, 0], side="right")
            last_doc = np.searchsorted(offsets, arr[:, 1] - 1, side="right")
            arr = arr[first_doc == last_doc]
        # earliest start first, longest first at equal starts; then skip what overlaps a choice
        arr = arr[np.lexsort((-arr[:, 1], arr[:, 0]))]
        keep = []
        pos = 0
        for k, (start, end) in enumerate(arr[:, :2].tolist()):
            if start >= pos:
                keep.append(k)
                pos = end
        chosen = arr[keep]
        return Matches(chosen[:, 0].copy(), chosen[:, 1].copy(), chosen[:, 2].astype(np.int32))


def segments(offsets: npt.NDArray[np.int64], matches: Matches
             ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """Documents cut at special tokens, as the encode kernel takes them: (``bounds``, the
    segments' byte ranges, contiguous; ``doc_segments``, each document's first segment;
    ``special``, the id of a segment that is a special token or -1 for text).

    Every document is text, then for each match the token and the text after it (text segments
    may be empty). At one position, a match's end comes before a document start, which comes
    before a match's start, so adjacent tokens and tokens at a document's edges stay in order."""
    n_docs = len(offsets) - 1
    m = len(matches)
    positions = np.concatenate([matches.ends, offsets[:-1], matches.starts])
    rank = np.concatenate([np.zeros(m, np.int8), np.ones(n_docs, np.int8), np.full(m, 2, np.int8)])
    kind = np.concatenate([np.full(m + n_docs, -1, np.int32), matches.ids])
    order = np.lexsort((rank, positions))
    bounds = np.append(positions[order], offsets[-1]).astype(np.int64)
    doc_segments = np.append(np.flatnonzero(rank[order] == 1), len(order)).astype(np.int64)
    return bounds, doc_segments, kind[order]
