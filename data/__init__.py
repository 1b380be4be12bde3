"""Data shipped with bytepiece: the sample training corpus and the default model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLE_CORPUS = "sample_corpus.txt"
DEFAULT_MODEL = "default.model"


def data_file(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(name)))
