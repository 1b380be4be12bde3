"""Training BytePiece models: the BNLM trainer and its corpus readers."""

from .corpus import Corpus, SpooledTexts, TextFiles, Texts, spool_stdin
from .trainer import Trainer

__all__ = ["Corpus", "SpooledTexts", "TextFiles", "Texts", "Trainer", "spool_stdin"]
