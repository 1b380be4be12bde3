"""Load exported models with their libraries and measure agreement with bytepiece.

These helpers need the optional packages (``sentencepiece`` / ``tokenizers``); a missing one
raises :class:`~bytepiece.interop.MissingExtraError` naming the extra to install.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import InputError
from ..units import format_size
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
        return _compare(tokenizer, _sentencepiece_ids(load_sentencepiece(path), tokenizer), texts, keep)
    if target == "hf":
        return _compare(tokenizer, _hf_ids(load_hf(path)), texts, keep)
    raise ValueError(f"target must be 'sentencepiece' or 'hf', got {target!r}")


def content_agreement(tokenizer, content: bytes | str, target: str, texts: Iterable[str], *,
                      keep: int = 20) -> Agreement:
    """:func:`agreement` for an export's bytes before they are written (a sentencepiece
    ``ModelProto`` or the text of a ``tokenizer.json``): an export whose check fails then leaves
    no file behind, while what is checked is still exactly what would be written."""
    if target == "sentencepiece":
        spm = require("sentencepiece", "loading a sentencepiece model")
        data = content.encode("utf-8") if isinstance(content, str) else content
        return _compare(tokenizer, _sentencepiece_ids(spm.SentencePieceProcessor(model_proto=data), tokenizer),
                        texts, keep)
    if target == "hf":
        tokenizers = require("tokenizers", "loading an HF tokenizer.json")
        tok = tokenizers.Tokenizer.from_str(content.decode("utf-8") if isinstance(content, bytes) else content)
        tok.encode_special_tokens = True
        return _compare(tokenizer, _hf_ids(tok), texts, keep)
    raise ValueError(f"target must be 'sentencepiece' or 'hf', got {target!r}")


def _sentencepiece_ids(sp, tokenizer) -> Callable[[str], list[int]]:
    nfc = tokenizer.normalization == "nfc"

    def encode(t: str) -> list[int]:
        return sp.encode(unicodedata.normalize("NFC", t) if nfc else t)

    return encode


def _hf_ids(hf) -> Callable[[str], list[int]]:
    def encode(t: str) -> list[int]:
        return hf.encode(t).ids

    return encode


def _compare(tokenizer, encode: Callable[[str], list[int]], texts: Iterable[str], keep: int) -> Agreement:
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
    if not result.texts:  # 0 of 0 agreeing is no evidence, not a rate of 100%
        raise InputError("no texts to compare the export on; give at least one text")
    return result


def read_texts(path: str | os.PathLike, *, limit: int, jsonl_field: str | None = None,
               parquet_column: str | None = None) -> list[str]:
    """The documents of ``path`` as every other reader of text sees them (a text file's lines
    without their newlines, JSON Lines fields, Parquet values; see :mod:`bytepiece.corpus.read`),
    not normalized: the export's own normalizer is part of what is checked. Compressed input is
    decompressed, and binary, corrupt or truncated input is refused with the corpus reader's
    message. At most ``limit`` bytes of text are held; more is an error rather than a check of
    an arbitrary part."""
    from ..corpus import file_documents

    texts: list[str] = []
    size = 0
    for data, _ in file_documents(path, jsonl_field=jsonl_field, parquet_column=parquet_column):
        size += len(data)
        if size > limit:
            raise InputError(f"{os.fspath(path)} holds more than {format_size(limit)} of text, the most read for "
                             "checking ids; check on a part of it (e.g. head -n 10000 FILE > part.txt)")
        texts.append(data.decode("utf-8"))
    return texts
