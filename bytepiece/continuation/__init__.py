"""The language-model side of bytepiece: what a token LM says about the bytes after a prompt.

* :mod:`.lm`: :class:`NGramLM`, the interpolated Kneser-Ney token model of the harness;
* :mod:`.healing`: token healing (back off, constrain) for any LM, and the named strategies;
* :mod:`.byte_lm`: :class:`ByteLevelLM`, the byte-level distribution of a token LM, summed over
  the tokenizations :data:`TOKENIZATIONS` names (:mod:`.split` says where each starts on a
  prompt); its cursors (:mod:`.cursor`) run on the Kneser-Ney kernels (:mod:`.kn`), any LM
  (:mod:`.generic`) or the tokenizer's own segmentations only (:mod:`.canonical`);
* :mod:`.strategies`: :func:`complete`, any strategy by name, end to end;
* :mod:`.adapters`: :class:`HFCausalLM`, a transformers model behind the token-LM interface;
* :mod:`.neural`: :class:`~.neural.TransformerLM`, the harness's small transformer (:mod:`.transformer`;
  PyTorch, the ``lm`` extra, imported only from these two modules);
* :mod:`.context`: which tokens of a history a model looks at; :mod:`.vocab`: prefix queries.
"""

from __future__ import annotations

from .byte_lm import ByteLevelLM, TokenLM
from .cursor import Cursor
from .healing import STRATEGIES, Generation, HealedPrompt, generate, heal
from .lm import NGramLM
from .split import TOKENIZATIONS, StableSplit, stable_split
from .strategies import Completion, complete
from .vocab import VocabIndex

__all__ = ["STRATEGIES", "TOKENIZATIONS", "ByteLevelLM", "Completion", "Cursor", "Generation", "HealedPrompt",
           "NGramLM", "StableSplit", "TokenLM", "VocabIndex", "complete", "generate", "heal", "stable_split"]
