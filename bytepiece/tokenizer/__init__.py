"""The tokenizer: one core that segments bytes (:class:`Segmenter`), the one document encoder
(:class:`DocumentEncoder`), and :class:`Tokenizer`, the facade users call. The other views of a
segmentation live beside them: ``lattice`` (n-best, scores, samples, entropy), ``offsets``,
``stable`` (stable prefixes), ``streaming`` (incremental decoding), ``specials``."""

from .core import KernelTables, Segmenter
from .documents import DocumentEncoder, EncodeOptions
from .facade import Text, Tokenizer

__all__ = ["DocumentEncoder", "EncodeOptions", "KernelTables", "Segmenter", "Text", "Tokenizer"]
