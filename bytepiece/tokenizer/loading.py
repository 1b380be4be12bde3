"""The one way a tokenizer gets its model: :func:`load`.

A model file is looked up in the array cache by the hash of its bytes (a hit needs neither the
JSON parse nor the trie build); a miss, a model object or a dict is validated, built and, for a
file, stored in the cache. Every path applies the same guards to what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..cache import load_arrays, special_tokens
from ..model import Model, ModelSource
from .arrays import EncoderArrays


@dataclass
class Loaded:
    """A model's arrays, the parsed model when it had to be parsed, its metadata and its
    special tokens."""

    arrays: EncoderArrays
    model: Model | None
    metadata: dict[str, Any] = field(default_factory=dict)
    special_tokens: tuple[str, ...] = ()


def load(source: ModelSource) -> Loaded:
    arrays, model, metadata = load_arrays(source)
    if model is not None:
        return Loaded(arrays, model, model.metadata, model.special_tokens)
    metadata = dict(metadata)
    specials = special_tokens(metadata, arrays.vocab_size)
    return Loaded(arrays, None, metadata, specials)
