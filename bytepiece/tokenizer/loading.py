"""The one way a tokenizer gets its model: :func:`load`.

A model file is read once, through the same guarded read whether or not its arrays are cached
(a regular file of at most 512 MiB; nothing else is ever opened). Its bytes are hashed and
looked up in the array cache (:mod:`.cache`): a hit needs neither the JSON parse nor the trie
build; a miss parses the same bytes, builds the arrays and stores them. A model object or a
dict is validated and built. The model hash of a file is the sha256 of its bytes
(:func:`.cache.model_sha256`); token files name the model by the hash of its content
(``bytepiece.model.content_sha256``), which does not depend on how the JSON was written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import secret
from ..model import (SPECIAL_TOKENS_KEY, Model, ModelSource, decode_special_tokens, load_model, load_model_bytes,
                     read_metadata, read_model_file)
from .arrays import EncoderArrays, build_arrays
from .cache import cache_dir, entry_path, load_cached, model_sha256, store


@dataclass
class Loaded:
    """A model's arrays, the parsed model when it had to be parsed, its metadata and its
    special tokens."""

    arrays: EncoderArrays
    model: Model | None
    metadata: dict[str, Any] = field(default_factory=dict)
    special_tokens: tuple[str, ...] = ()
    #: the model file's absolute path, when the model came from a file (pickles refer to it)
    path: Path | None = None


def load(source: ModelSource) -> Loaded:
    arrays, model, metadata = load_arrays(source)
    path = Path(os.path.abspath(source)) if isinstance(source, (str, os.PathLike)) else None
    if model is not None:
        return Loaded(arrays, model, model.metadata, model.special_tokens, path)
    metadata = dict(metadata)
    specials = decode_special_tokens(metadata.pop(SPECIAL_TOKENS_KEY, None), arrays.vocab_size, "cached model")
    return Loaded(arrays, None, metadata, specials, path)


def load_arrays(source: ModelSource) -> tuple[EncoderArrays, Model | None, dict[str, Any]]:
    """(arrays, the parsed model or None, metadata): from the cache when ``source`` is a model
    file with a valid entry, else parsed and built (and then cached). The model file is read
    once: the arrays built are those of the bytes hashed."""
    if not isinstance(source, (str, os.PathLike)):
        model = load_model(source)
        return build_arrays(model), model, model.metadata
    path = Path(source)
    data = read_model_file(path)
    directory = cache_dir()
    if directory is None or secret.key() is None:
        model = load_model_bytes(data, path)
        return build_arrays(model), model, model.metadata
    sha = model_sha256(data)
    entry = entry_path(directory, sha)
    hit = load_cached(entry, sha)
    if hit is not None:
        arrays, inline = hit
        return arrays, None, {**inline, **read_metadata(path)}
    model = load_model_bytes(data, path)
    arrays = build_arrays(model)
    sidecar = read_metadata(path)
    inline = {k: v for k, v in model.metadata.items() if k not in sidecar}
    if model.special_tokens:  # kept as the file keeps them, so a cache hit restores them
        inline[SPECIAL_TOKENS_KEY] = model.to_json_dict()[SPECIAL_TOKENS_KEY]
    store(entry, sha, arrays, inline)
    return arrays, model, model.metadata
