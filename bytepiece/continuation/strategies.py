"""One call to continue a prompt with any strategy of :data:`bytepiece.continuation.healing.STRATEGIES`.

The token-level strategies back off and constrain (:func:`bytepiece.continuation.healing.heal` and
:func:`bytepiece.continuation.healing.generate`); the ``exact-*`` strategies never back off, they
decode bytes from the byte-level distribution of :class:`bytepiece.continuation.ByteLevelLM` over
the tokenizations their name says. Having all of them behind one name is what lets the
evaluation harness and users compare them on the same prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .byte_lm import ByteLevelLM, TokenLM
from .cursor import Seed
from .healing import DEFAULT_SOFT_BIAS, exact_tokenizations, generate, heal
from .vocab import VocabIndex

__all__ = ["Completion", "complete"]


@dataclass(frozen=True)
class Completion:
    """What a strategy produced after the prompt."""

    strategy: str
    continuation: bytes  # bytes after the prompt's (normalized) bytes
    rewrote_prompt: bool = False  # soft only: the model replaced the prompt's last bytes instead

    def text(self, errors: str = "replace") -> str:
        return self.continuation.decode("utf-8", errors)


def complete(tokenizer: Any, lm: TokenLM, prompt: str | bytes, *, strategy: str = "exact-stable",
             max_new_bytes: int = 16, temperature: float = 0.0, seed: Seed = None,
             soft_bias: float = DEFAULT_SOFT_BIAS, index: VocabIndex | None = None,
             byte_lm: ByteLevelLM | None = None) -> Completion:
    """Continue ``prompt`` by at least ``max_new_bytes`` bytes (exactly that many for the
    ``exact-*`` strategies; token strategies stop at the first token that reaches it) with
    ``strategy``; greedy at ``temperature == 0``, sampled otherwise. ``index`` / ``byte_lm``
    reuse prebuilt structures."""
    tokenizations = exact_tokenizations(strategy)
    if isinstance(max_new_bytes, bool) or not isinstance(max_new_bytes, int) or max_new_bytes < 0:
        raise InputError(f"max_new_bytes must be a non-negative integer, got {max_new_bytes!r}")
    if tokenizations is not None:
        blm = byte_lm or ByteLevelLM(tokenizer, lm, index=index)
        cur = blm.prompt_cursor(prompt, tokenizations=tokenizations)
        if temperature == 0:
            return Completion(strategy, cur.greedy(max_new_bytes))
        return Completion(strategy, cur.sample(max_new_bytes, temperature=temperature, seed=seed))
    index = index or VocabIndex.from_tokenizer(tokenizer)
    healed = heal(tokenizer, prompt, strategy, index=index)
    g = generate(lm.next_token_logprobs, index, healed.kept_ids, healed.prefix, max_new_bytes=max_new_bytes,
                 max_new_tokens=max_new_bytes + len(healed.prefix) + 1, temperature=temperature, seed=seed,
                 bias=soft_bias if strategy == "soft" else None)
    return Completion(strategy, g.continuation, g.diverged)
