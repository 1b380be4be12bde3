"""Interoperability with other tokenizers: sentencepiece and Hugging Face ``tokenizers``
exports, sentencepiece and ``tokenizer.json`` imports (token files are ``bytepiece.tokens``).

- :func:`bytepiece.interop.sentencepiece.export_sentencepiece` / ``Tokenizer.to_sentencepiece``
- :func:`bytepiece.interop.sentencepiece.import_sentencepiece` (sentencepiece Unigram -> ``Model``)
- :func:`bytepiece.interop.hf.export_hf` / ``Tokenizer.to_hf``

Writing the files needs no optional package (the sentencepiece ``ModelProto`` is serialized by
:mod:`bytepiece.interop._proto`); *running* them needs the ``sentencepiece`` or ``hf`` extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import BytePieceError

EXTRAS = {
    "sentencepiece": "sentencepiece",
    "google.protobuf": "sentencepiece",
    "tokenizers": "hf",
    "psutil": "bench",
}


class MissingExtraError(BytePieceError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = "protobuf" if module.startswith("google.protobuf") else module.split(".")[0]
        extra = EXTRAS.get(module)
        how = f'pip install "bytepiece-tk[{extra}]"' if extra else f"pip install {package}"
        raise MissingExtraError(f"{purpose} needs the {package!r} package; install it with: {how}") from None


__all__ = ["MissingExtraError", "require"]
