"""bytepiece: a byte-level Unigram tokenizer (the BytePiece algorithm) with numba kernels."""

from typing import TYPE_CHECKING, Any

from .errors import BytePieceError, InputError, ModelFormatError, ModelNotFoundError, TrainingError

if TYPE_CHECKING:  # imported on first use below; type checkers see the real names
    from .continuation import ByteLevelLM, stable_split
    from .model import Model, load_model
    from .continuation import complete
    from .tokenizer import Tokenizer
    from .tokenizer.streaming import DecodeStream
    from .tokens import EncodeSummary, TokenDataset, decode_corpus, encode_corpus
    from .training import Trainer

__version__ = "0.1.0"

# Every public name is imported when first used: ``import bytepiece.errors`` (what the command
# line needs before it knows the command) costs nothing, and encoding-only users never load the
# trainer's kernels and corpus readers, nor the continuation side.
_HOMES = {
    "Model": "model", "load_model": "model",
    "Tokenizer": "tokenizer", "DecodeStream": "tokenizer.streaming",
    "Trainer": "training",
    "ByteLevelLM": "continuation", "stable_split": "continuation",
    "complete": "continuation",
    "encode_corpus": "tokens", "decode_corpus": "tokens", "TokenDataset": "tokens", "EncodeSummary": "tokens",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bytepiece' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "ByteLevelLM",
    "BytePieceError",
    "DecodeStream",
    "EncodeSummary",
    "InputError",
    "Model",
    "ModelFormatError",
    "ModelNotFoundError",
    "TokenDataset",
    "Tokenizer",
    "Trainer",
    "TrainingError",
    "__version__",
    "complete",
    "decode_corpus",
    "encode_corpus",
    "load_model",
    "stable_split",
]
