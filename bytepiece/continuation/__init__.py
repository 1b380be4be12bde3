"""The language-model side of bytepiece: what a token LM says about the bytes after a prompt.

* :mod:`.lm`: :class:`NGramLM`, the interpolated Kneser-Ney token model of the harness;
* :mod:`.healing`: token healing (back off, constrain) for any LM, and the named strategies;
* :mod:`.byte_lm`: :class:`ByteLevelLM`, the exact byte-level distribution of a token LM;
* :mod:`.strategies`: :func:`complete`, any strategy by name, end to end;
* :mod:`.adapters`: :class:`HFCausalLM`, a transformers model behind the token-LM interface.
"""

from __future__ import annotations

from .byte_lm import ByteCursor, ByteLevelLM, StableSplit, TokenLM, stable_points, stable_split
from .healing import STRATEGIES, Generation, HealedPrompt, VocabIndex, generate, heal
from .lm import NGramLM
from .strategies import Completion, complete

__all__ = ["STRATEGIES", "ByteCursor", "ByteLevelLM", "Completion", "Generation", "HealedPrompt", "NGramLM",
           "StableSplit", "TokenLM", "VocabIndex", "complete", "generate", "heal", "stable_points", "stable_split"]
