"""Other language models behind the :class:`bytepiece.continuation.TokenLM` interface.

:class:`HFCausalLM` wraps a ``transformers`` causal LM whose token ids are this tokenizer's ids
(for example one trained on text encoded with bytepiece, or with the ``tokenizer.json`` written
by ``Tokenizer.to_hf(style="byte_level")``, which keeps bytepiece's ids). torch and transformers
are imported only when an adapter is made, so bytepiece never depends on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from .context import last_tokens

__all__ = ["HFCausalLM"]


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise InputError("HFCausalLM needs torch and transformers; install them with "
                         "pip install 'bytepiece-tk[lm]'") from None
    return torch


class HFCausalLM:
    """``next_token_logprobs`` from a transformers causal LM (any ``model(input_ids,
    attention_mask).logits``).

    ``vocab_size``: the tokenizer's; logits beyond it (padding rows of the embedding) are
    dropped before the softmax. ``bos_id``: prepended to every context (needed for an empty
    context). ``max_context``: keep only the last tokens, which also lets the byte-level
    recursion merge histories that agree on them (``context_size``).
    """

    def __init__(self, model: Any, *, vocab_size: int, bos_id: int | None = None, max_context: int | None = None,
                 batch_size: int = 64) -> None:
        self._torch = _torch()
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise InputError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        if max_context is not None and (not isinstance(max_context, int) or max_context < 1):
            raise InputError(f"max_context must be a positive integer or None, got {max_context!r}")
        self.model = model.eval()
        self.vocab_size = vocab_size
        self.bos_id = bos_id
        self.context_size = max_context
        self.batch_size = max(1, int(batch_size))
        try:
            self._device = next(model.parameters()).device
        except (AttributeError, StopIteration):
            self._device = "cpu"

    def next_token_logprobs(self, context_ids: Sequence[int]) -> npt.NDArray[np.float64]:
        return self.next_token_logprobs_batch([context_ids])[0]

    def next_token_logprobs_batch(self, contexts: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
        """One row of log-probabilities per context (right-padded batches, last real position)."""
        torch = self._torch
        seqs = []
        for ctx in contexts:
            ids = [int(t) for t in ctx]
            ids = last_tokens(ids, self.context_size)
            if self.bos_id is not None:
                ids = [self.bos_id, *ids]
            if not ids:
                raise InputError("an empty context has no position to predict from; pass bos_id to HFCausalLM")
            seqs.append(ids)
        out = np.empty((len(seqs), self.vocab_size), dtype=np.float64)
        for lo in range(0, len(seqs), self.batch_size):
            part = seqs[lo : lo + self.batch_size]
            width = max(len(s) for s in part)
            ids = torch.zeros((len(part), width), dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for i, s in enumerate(part):
                ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
                mask[i, : len(s)] = 1
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self._device), attention_mask=mask.to(self._device)).logits
            last = logits[torch.arange(len(part)), torch.tensor([len(s) - 1 for s in part])]
            logp = torch.log_softmax(last[:, : self.vocab_size].double(), dim=-1)
            out[lo : lo + len(part)] = logp.cpu().numpy()
        return out
