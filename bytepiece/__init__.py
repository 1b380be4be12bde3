"""bytepiece: a byte-level Unigram tokenizer (the BytePiece algorithm) with numba kernels."""

from .errors import BytePieceError, InputError, ModelFormatError, TrainingError
from .model import Model, load_model
from .tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "BytePieceError",
    "InputError",
    "Model",
    "ModelFormatError",
    "Tokenizer",
    "TrainingError",
    "__version__",
    "load_model",
]
