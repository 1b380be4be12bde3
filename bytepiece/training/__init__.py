"""Training: the BNLM trainer (faithful to the original BytePiece) and the optional refinement."""

from ..corpus import Files, Texts
from .trainer import Trainer

TextFiles = Files  # the name of earlier releases

__all__ = ["Files", "TextFiles", "Texts", "Trainer"]
