"""Token counting for foreign tokenizers, for ``bytepiece eval compression``.

Three kinds of model file are recognised:

* a bytepiece model (a JSON object of base64 pieces; the original BytePiece format);
* a sentencepiece ``ModelProto`` (binary ``.model``; needs the ``sentencepiece`` package);
* a Hugging Face ``tokenizer.json`` (or a directory holding one; needs ``tokenizers``).

Every tokenizer counts the tokens of the same documents: :func:`documents` cuts a text after
each run of newlines, the cuts bytepiece's own encoding makes (so its count is the whole text's),
and :func:`compression_rows` hands the one list to every adapter. bytepiece and HF tokenizers
encode the documents exactly as given (newlines kept, special-token strings as text, no
special tokens added), so a bytepiece model and its HF export count the same tokens.
sentencepiece cannot represent a newline with its default normalizer, so it sees the documents
without their trailing newlines; the per-token figures still divide the whole text's bytes and
characters, and the adapter says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Callable

from ..compression import Compression
from ..errors import InputError, ModelFormatError
from ..io.read import check_file
from ..normalize import Normalization


@dataclass
class CountingTokenizer:
    name: str
    kind: str  # "bytepiece", "sentencepiece" or "hf"
    vocab_size: int
    count: Callable[[list[str]], int]  # the number of tokens of the documents (see documents())
    note: str = ""


def documents(text: str) -> list[str]:
    """The documents every tokenizer encodes for ``text``: cut after each run of newlines (which
    stays with the text before it), where bytepiece cuts a text before segmenting it."""
    from ..normalize import chunks

    return chunks(text)


def _read_model(path: Path) -> bytes:
    """The whole model file (a regular file of at most ``MAX_MODEL_BYTES``; see ``bytepiece.io.read``)."""
    from ..io.read import read_limited
    from ..model import MAX_MODEL_BYTES

    return read_limited(path, limit=MAX_MODEL_BYTES, what="model file", error=ModelFormatError)


def load_counting_tokenizer(path: str | os.PathLike, *, normalization: Normalization = "nfc") -> CountingTokenizer:
    """An adapter for ``path`` (kind detected from the file); clear errors for missing extras."""
    p = Path(path)
    if p.is_dir():
        if (p / "tokenizer.json").is_file():
            p = p / "tokenizer.json"
        else:
            raise InputError(f"{path} is a directory without a tokenizer.json; pass a model file")
    check_file(p, what="tokenizer file", error=InputError)
    # a tokenizer.json is named by its folder (made absolute, ``tokenizer.json`` in the working one has a
    # parent other than ""; not resolved, a Hugging Face cache's snapshot links to a folder named "blobs")
    name = ((Path(os.path.abspath(p)).parent.name or "tokenizer") if p.name == "tokenizer.json"
            else p.name.removesuffix(".model").removesuffix(".json"))
    data = _read_model(p)
    if data.lstrip()[:1] == b"{":
        try:
            head = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ModelFormatError(f"{path} is not valid JSON ({e}); expected a bytepiece model or tokenizer.json") from None
        if isinstance(head, dict) and "model" in head and isinstance(head.get("model"), dict):
            return _hf(p, name)
        return _bytepiece(p, name, normalization)
    return _sentencepiece(p, name)


def _bytepiece(path: Path, name: str, normalization: Normalization) -> CountingTokenizer:
    from ..tokenizer import Tokenizer

    tok = Tokenizer(path, normalization=normalization)

    def count(docs: list[str]) -> int:
        _, offsets = tok.encode_batch(docs, return_flat=True)
        return int(offsets[-1])

    return CountingTokenizer(name, "bytepiece", tok.vocab_size, count)


def _sentencepiece(path: Path, name: str) -> CountingTokenizer:
    try:
        import sentencepiece as spm
    except ImportError:
        raise InputError(f"{path} looks like a sentencepiece model; reading it needs the sentencepiece package "
                         "(pip install 'bytepiece-tk[sentencepiece]')") from None
    try:
        sp = spm.SentencePieceProcessor(model_file=str(path))
    except Exception as e:  # sentencepiece raises RuntimeError/OSError with C++ messages
        raise ModelFormatError(f"{path} is neither a bytepiece JSON model nor a sentencepiece model ({e})") from None

    def count(docs: list[str]) -> int:
        lines = [line for line in (doc.rstrip("\n") for doc in docs) if line]
        return sum(len(ids) for ids in sp.encode(lines))

    return CountingTokenizer(name, "sentencepiece", sp.get_piece_size(), count,
                             note="sentencepiece: lines encoded without their newlines")


def _hf(path: Path, name: str) -> CountingTokenizer:
    try:
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError:
        raise InputError(f"{path} is an HF tokenizer.json; reading it needs the tokenizers package "
                         "(pip install 'bytepiece-tk[hf]')") from None
    try:
        tok = HFTokenizer.from_file(str(path))
    except Exception as e:
        raise ModelFormatError(f"{path}: tokenizers could not load it ({e})") from None

    tok.encode_special_tokens = True  # the text "<bos>" is text, as for bytepiece

    def count(docs: list[str]) -> int:
        return sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))

    return CountingTokenizer(name, "hf", tok.get_vocab_size(), count)


def compression_rows(tokenizers: list[CountingTokenizer], texts: list[tuple[str, str]]) -> list[dict]:
    """Per tokenizer: tokens, bytes/token and chars/token of every text and of all together. An
    empty text is an error: it has no ratio, and 0.00 in a table would read as a measurement."""
    for name, text in texts:
        if not text:
            raise InputError(f"{name} holds no text; give a text with at least one line")
    if not texts:
        raise InputError("no texts to measure compression on; give at least one")
    out = []
    docs = [documents(text) for _, text in texts]  # one list per text, the same for every tokenizer
    for t in tokenizers:
        per_text = {name: Compression.of_text(text, t.count(d)) for (name, text), d in zip(texts, docs)}
        total = sum(per_text.values(), Compression())
        out.append({"name": t.name, "kind": t.kind, "vocab_size": t.vocab_size, "note": t.note,
                    "files": {name: c.as_dict() for name, c in per_text.items()}, "all": total.as_dict()})
    return out


def compression_report(files: Sequence[str | os.PathLike], models: Sequence[str | os.PathLike], *,
                       normalization: Normalization = "nfc") -> dict:
    """What ``bytepiece eval compression`` reports: ``{"files": [{"name", "path"}], "tokenizers":
    compression_rows(...)}``, a column per file (named by the file, ``name#2`` for a repeated
    name). The texts are read before any tokenizer loads, so an unusable text fails at once."""
    from ..corpus import no_text_error
    from .corpus import read_text

    contents = [read_text(f) for f in files]
    for f, content in zip(files, contents):
        if not content:
            raise no_text_error(f"text file {os.fspath(f)}")
    tokenizers = [load_counting_tokenizer(m, normalization=normalization) for m in models]
    names: list[str] = []
    for f in files:
        base = Path(f).name
        name, k = base, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    rows = compression_rows(tokenizers, list(zip(names, contents)))
    return {"files": [{"name": n, "path": os.fspath(f)} for n, f in zip(names, files)], "tokenizers": rows}
