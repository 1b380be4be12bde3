"""Load exported models with their libraries and measure agreement with bytepiece.

These helpers need the optional packages (``sentencepiece`` / ``tokenizers``); a missing one
raises :class:`~bytepiece.interop.MissingExtraError` naming the extra to install.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import require

#: A few texts of our own covering scripts, whitespace runs, newlines and digits.
SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "def encode(self, text: str) -> list[int]:\n    return self._kernel(text)\n\n\n",
    "字节级分词器把任意文本切成片段,再用维特比算法找出概率最大的切分。",
    "東京の天気は晴れです。明日は雨が降るでしょう。",
    "Привет, мир! Ελληνικά κείμενα και 한국어 문장도 있습니다.",
    "    indented    text\twith\ttabs  and   spaces   ",
    "emoji 👩‍💻 and flags 🇫🇷🇯🇵, numbers 3.14159 and 2025-01-01",
    "\n\n\nleading newlines, then one\nand trailing ones\n\n",
    "",
]


def load_sentencepiece(path: str | os.PathLike):
    """A ``sentencepiece.SentencePieceProcessor`` for ``path``."""
    spm = require("sentencepiece", "loading a sentencepiece model")
    return spm.SentencePieceProcessor(model_file=str(path))


def load_hf(path: str | os.PathLike, *, text_specials: bool = True):
    """A ``tokenizers.Tokenizer`` for ``path``; ``text_specials`` treats the literal strings of
    the special tokens as text, as bytepiece does (``encode_special_tokens``)."""
    tokenizers = require("tokenizers", "loading an HF tokenizer.json")
    tok = tokenizers.Tokenizer.from_file(str(path))
    if text_specials:
        tok.encode_special_tokens = True
    return tok


def load_transformers(path: str | os.PathLike, *, text_specials: bool = True):
    """A ``transformers.PreTrainedTokenizerFast`` for an HF export (a ``tokenizer.json`` or a
    directory export) with ``pad_token``, ``bos_token``, ``eos_token`` and the tokenizer's own
    special tokens in their roles. ``PreTrainedTokenizerFast(tokenizer_file=...)`` alone leaves
    them unset, since transformers reads the roles only from ``tokenizer_config.json`` or from
    keyword arguments; they are passed here as a directory export's config passes them.
    ``text_specials`` treats the special tokens' strings in text as text, as bytepiece does
    (``split_special_tokens``)."""
    import json
    from pathlib import Path

    from ..errors import InputError
    from ..io.read import read_limited
    from ..model import MAX_MODEL_BYTES
    from .hf import DIRECTORY_FILES, special_token_roles

    transformers = require("transformers", "loading an HF export with transformers")
    file = Path(path) / DIRECTORY_FILES[0] if Path(path).is_dir() else Path(path)
    try:
        data = json.loads(read_limited(file, limit=MAX_MODEL_BYTES, what="tokenizer.json", error=InputError))
    except ValueError as e:
        raise InputError(f"{file} is not a tokenizer.json ({e})") from None
    return transformers.PreTrainedTokenizerFast(tokenizer_file=str(file), split_special_tokens=text_specials,
                                                clean_up_tokenization_spaces=False, **special_token_roles(data))


@dataclass
class Agreement:
    texts: int = 0
    exact: int = 0
    tokens: int = 0
    mismatches: list[tuple[str, list[int], list[int]]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.exact / self.texts if self.texts else 1.0


def agreement(tokenizer, path: str | os.PathLike, target: str, texts: Iterable[str], *, keep: int = 20) -> Agreement:
    """How many ``texts`` the exported model at ``path`` encodes to bytepiece's ids.

    sentencepiece does not NFC-normalize, so texts are NFC-normalized before it sees them when
    the tokenizer does (the HF export has its own NFC normalizer)."""
    if target == "sentencepiece":
        sp = load_sentencepiece(path)
        nfc = tokenizer.normalization == "nfc"

        def encode(t: str) -> list[int]:
            return sp.encode(unicodedata.normalize("NFC", t) if nfc else t)
    elif target == "hf":
        hf = load_hf(path)

        def encode(t: str) -> list[int]:
            return hf.encode(t).ids
    else:
        raise ValueError(f"target must be 'sentencepiece' or 'hf', got {target!r}")
    result = Agreement()
    for text in texts:
        ours = tokenizer.encode(text)
        theirs = encode(text)
        result.texts += 1
        result.tokens += len(ours)
        if ours == theirs:
            result.exact += 1
        elif len(result.mismatches) < keep:
            result.mismatches.append((text, ours, theirs))
    return result
