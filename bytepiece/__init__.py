"""bytepiece: a byte-level Unigram tokenizer (the BytePiece algorithm) with numba kernels."""

from typing import TYPE_CHECKING, Any

from .errors import BytePieceError, InputError, ModelFormatError, TrainingError
from .model import Model, load_model
from .streaming import DecodeStream
from .tokenizer import Tokenizer

if TYPE_CHECKING:  # imported on first use below; type checkers see the real classes
    from .continuation import ByteLevelLM, stable_split
    from .continuation import complete
    from .training import Trainer

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The trainer pulls in its kernels and corpus readers; encoding-only users never pay for them.
    if name == "Trainer":
        from .training import Trainer

        return Trainer
    # The byte-level continuation (exact next-byte distribution, healing strategies) loads its
    # kernels only when asked for.
    if name in ("ByteLevelLM", "stable_split"):
        from . import continuation

        return getattr(continuation, name)
    if name == "complete":
        from .continuation import complete

        return complete
    if name in ("encode_corpus", "TokenDataset", "EncodeSummary"):
        from . import tokens

        return getattr(tokens, name)
    raise AttributeError(f"module 'bytepiece' has no attribute {name!r}")

__all__ = [
    "ByteLevelLM",
    "BytePieceError",
    "DecodeStream",
    "EncodeSummary",
    "InputError",
    "Model",
    "ModelFormatError",
    "TokenDataset",
    "Tokenizer",
    "Trainer",
    "TrainingError",
    "__version__",
    "complete",
    "encode_corpus",
    "load_model",
    "stable_split",
]
