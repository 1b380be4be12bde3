"""Reading an HF ``tokenizer.json`` back as a bytepiece model (:func:`import_hf`, also available
from :mod:`bytepiece.interop.hf`).

A ``tokenizer.json`` may come from anywhere, so nothing in it is trusted. It is read through the
same gate as a model file (a regular file of at most 512 MiB; a FIFO, device or directory is
refused before anything is read), and every part the import uses is checked before use: the
JSON itself (deep nesting included), the model's type, each vocabulary entry's token and score,
each added token's id, content and ``special`` flag, and each token's characters. Whatever the
file holds, the result is a ``Model`` or one ``ModelFormatError`` that names the file and the
entry and field at fault, never another exception and never a numpy warning.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any


from ..errors import InputError, ModelFormatError
from ..io.read import read_limited
from ..model import FIRST_PIECE_ID, MAX_MODEL_BYTES, SPECIAL_TOKENS, Model, check_special_tokens, \
    checked_counts, counts_from_scores, validate_pieces
from ._vocab import bytes_to_unicode, parse_placeholder

#: the advice every refusal ends with
WRITTEN_BY = ("import_hf reads the tokenizer.json files that bytepiece's HF export writes (bytepiece export --to hf): "
              "export the model again, or check that this is such a file")
#: how deep pre-tokenizer sequences are searched for the ByteLevel step (an export nests one level)
_MAX_DEPTH = 8
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def import_hf(path: str | os.PathLike) -> Model:
    """Read an HF ``tokenizer.json`` written by :func:`bytepiece.interop.hf.export_hf` (either
    style) back as a ``Model``: pieces in id order, added special tokens after them as the
    model's special tokens. HF files keep scores, not counts, so counts are ``exp(score)`` scaled
    so that the largest is 2**53 (smaller if their total would not fit 64 bits): the same piece
    probabilities up to float rounding. Any defect of the file is a ``ModelFormatError`` naming
    the file, the entry and the field."""
    name = str(path)
    data = _parse(read_limited(path, limit=MAX_MODEL_BYTES, what="tokenizer.json", error=ModelFormatError), name)
    vocab = _unigram_vocab(data, name)
    added = _special_added_tokens(data, name)
    reverse = {ch: b for b, ch in bytes_to_unicode().items()} if _has_byte_level(data.get("pre_tokenizer")) else None
    pieces, scores, specials = _read_vocab(vocab, added, reverse, name)
    if not pieces:
        raise _error(name, f"model.vocab has no pieces after the {FIRST_PIECE_ID} reserved tokens")
    try:
        counts = checked_counts(pieces, counts_from_scores(scores), name)
        validate_pieces(pieces, counts, name)
    except ModelFormatError as e:
        raise ModelFormatError(f"{e}; {WRITTEN_BY}") from None
    model = Model(pieces, counts, {"hf": {"source": os.path.basename(name)}})
    return model.with_special_tokens(specials)


def _error(name: str, problem: str) -> ModelFormatError:
    return ModelFormatError(f"{name}: {problem}; {WRITTEN_BY}")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(value: Any) -> str:
    """A JSON value as a message shows it: its type, and a short form of a scalar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {_short(repr(value))}"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-" if value < 0 else "") + "Infinity"
    if isinstance(value, (int, float)):
        return f"the number {_short(repr(value))}"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return "an object"


def _parse(content: bytes, name: str) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except RecursionError:
        raise _error(name, "it is nested too deeply to be a tokenizer.json") from None
    except ValueError as e:  # not JSON, not UTF-8, a number of more than 4300 digits
        raise _error(name, f"it is not valid JSON ({_short(str(e), 200)})") from None
    if not isinstance(data, dict):
        raise _error(name, f"it holds {_describe(data)}, not a JSON object with a model")
    return data


def _unigram_vocab(data: dict[str, Any], name: str) -> list:
    model = data.get("model")
    if not isinstance(model, dict):
        found = f"its model is {_describe(model)}, not an object" if "model" in data else "it has no model"
        raise _error(name, f"{found}; it is not an HF tokenizer.json")
    kind = model.get("type")
    if not isinstance(kind, str):
        raise _error(name, f'model.type is {_describe(kind)}, not "Unigram"')
    if kind != "Unigram":
        raise ModelFormatError(f"{name} holds a {_short(kind)} model; only Unigram tokenizer.json files can be "
                               "imported")
    vocab = model.get("vocab")
    if not isinstance(vocab, list) or not vocab:
        raise _error(name, f"model.vocab is {_describe(vocab)}; it must be a non-empty list of [token, score] pairs")
    return vocab


def _field(item: dict[str, Any], key: str, where: str, name: str, kind: type, what: str) -> Any:
    if key not in item:
        raise _error(name, f'{where} has no "{key}"')
    value = item[key]
    if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
        raise _error(name, f'the "{key}" of {where} is {_describe(value)}, not {what}')
    return value


def _special_added_tokens(data: dict[str, Any], name: str) -> dict[int, tuple[int, str]]:
    """``id -> (position in added_tokens, content)`` of the special added tokens."""
    if "added_tokens" not in data:
        return {}
    added = data["added_tokens"]
    if not isinstance(added, list):
        raise _error(name, f"added_tokens is {_describe(added)}; it must be a list of objects")
    out: dict[int, tuple[int, str]] = {}
    for k, token in enumerate(added):
        where = f"added_tokens[{k}]"
        if not isinstance(token, dict):
            raise _error(name, f"{where} is {_describe(token)}, not an object with an id and a content")
        token_id = _field(token, "id", where, name, int, "an integer")
        content = _field(token, "content", where, name, str, "a string")
        if "special" in token and _field(token, "special", where, name, bool, "true or false"):
            out[token_id] = (k, content)
    return out


def _has_byte_level(step: Any, depth: int = 0) -> bool:
    """Whether the pre-tokenizer ``step`` is, or a sequence of steps holds, ``ByteLevel``."""
    if not isinstance(step, dict) or depth > _MAX_DEPTH:
        return False
    if step.get("type") == "ByteLevel":
        return True
    inner = step.get("pretokenizers")
    return isinstance(inner, list) and any(_has_byte_level(s, depth + 1) for s in inner)


def _read_vocab(vocab: list, added: dict[int, tuple[int, str]], reverse: dict[str, int] | None,
                name: str) -> tuple[list[bytes], list[float], list[str]]:
    """(pieces, their scores, special tokens) of the vocabulary; ids 0-2, special added tokens
    and the byte_fallback style's unknown token are not pieces, and a repeated piece is kept once."""
    pieces: list[bytes] = []
    scores: list[float] = []
    specials: list[str] = []
    seen: set[bytes] = set()
    for i, entry in enumerate(vocab):
        where = f"model.vocab[{i}]"
        token, score = _entry(entry, where, name)
        if i < FIRST_PIECE_ID:
            continue
        if i in added:
            k, content = added[i]
            if content not in SPECIAL_TOKENS and not token.startswith("<unk"):
                specials.append(_special(content, f"added_tokens[{k}] (id {i})", name))
            continue
        raw = _piece(token, where, reverse, name)
        if raw not in seen:
            seen.add(raw)
            pieces.append(raw)
            scores.append(score)
    return pieces, scores, specials


def _entry(entry: Any, where: str, name: str) -> tuple[str, float]:
    if not isinstance(entry, list) or len(entry) != 2:
        raise _error(name, f"{where} is {_describe(entry)}; each entry must be a [token, score] pair")
    token, score = entry
    if not isinstance(token, str):
        raise _error(name, f"the token of {where} is {_describe(token)}, not a string")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise _error(name, f"the score of {where} is {_describe(score)}, not a number")
    try:
        value = float(score)
    except OverflowError:  # an integer beyond float64
        value = math.inf
    if not math.isfinite(value):
        raise _error(name, f"the score of {where} is {_describe(score if isinstance(score, float) else value)}; "
                     "scores must be finite numbers")
    return token, value


def _piece(token: str, where: str, reverse: dict[str, int] | None, name: str) -> bytes:
    """The bytes a vocabulary token stands for: the byte_level style maps each character back
    to its byte; the byte_fallback style spells pieces as UTF-8, ``<0xNN>`` or ``<bytes:HEX>``."""
    if reverse is not None:
        unknown = next((ch for ch in token if ch not in reverse), None)
        if unknown is not None:
            raise _error(name, f"the token of {where} ({_short(repr(token))}) has the character {unknown!r} "
                         f"(U+{ord(unknown):04X}), which the ByteLevel byte-to-character table does not hold")
        raw = bytes(reverse[ch] for ch in token)
    else:
        raw = _fallback_piece(token, where, name)
    if not raw:
        raise _error(name, f"the token of {where} is empty")
    return raw


def _fallback_piece(token: str, where: str, name: str) -> bytes:
    raw = parse_placeholder(token)
    if raw is not None:
        return raw
    byte = _BYTE_TOKEN.fullmatch(token)
    if byte:
        return bytes([int(byte.group(1), 16)])
    try:
        return token.encode("utf-8")
    except UnicodeEncodeError:
        raise _error(name, f"the token of {where} ({_short(repr(token))}) holds a lone surrogate and has no "
                     "UTF-8 form") from None


def _special(content: str, where: str, name: str) -> str:
    try:
        check_special_tokens([content])
    except InputError as e:
        raise _error(name, f"{where}: {e}") from None
    return content
