"""sentencepiece export (``Tokenizer.to_sentencepiece``) and import (Unigram ``ModelProto`` -> ``Model``).

The file is a Unigram ``ModelProto`` written by :mod:`._proto` (no ``protobuf`` needed); loading
it with ``sentencepiece.SentencePieceProcessor(model_file=...)`` needs the ``sentencepiece``
extra. See :mod:`._vocab` for how ids map in the two styles:

- ``style="byte_fallback"`` (default): identity normalization (no dummy prefix, no whitespace
  removal or escaping, no script/number splitting), byte fallback, ids 0..V-1 equal bytepiece
  ids. Differences from bytepiece, all inherent to sentencepiece's character lattice: no NFC
  (normalize text first), pieces that are not valid UTF-8 are unused, and a character with no
  piece of its own costs sentencepiece's unknown penalty (lowest score - 10) rather than the sum
  of its byte scores.
- ``style="byte_level"``: a precompiled normalization map sends each byte 0x80-0xFF to a
  character of its own (the denormalization map undoes it when decoding), so sentencepiece
  searches over bytes and every piece is usable: ids equal bytepiece's except where float32
  scores (sentencepiece stores and adds scores in float32) break a near tie differently. Piece
  strings are the mapped bytes (GPT-2 style, e.g. ``ä¸Ń`` for 中). Still no NFC.

Every piece carries its exact bytepiece count in extension field 200, so importing an export
restores the model exactly. A tokenizer's special tokens follow the pieces as user-defined
symbols (same ids); sentencepiece always matches those in the input, like bytepiece with
``allowed_special="all"``, and importing turns user-defined symbols into special tokens.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic
from ..io.read import read_limited
from ..errors import InputError, ModelFormatError
from ..model import FIRST_PIECE_ID, MAX_MODEL_BYTES, Model, checked_counts, counts_from_scores, validate_pieces
from . import _proto as P
from ._darts import build_charsmap
from ._vocab import (
    Entry,
    Style,
    byte_level_tokens,
    byte_token,
    bytes_to_unicode,
    check_style,
    fallback_entries,
    parse_placeholder,
    placeholder,
    special_names,
)

#: Unknown-character penalty of sentencepiece's Unigram model (``kUnkPenalty``).
UNK_PENALTY = 10.0
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE_SYMBOL = "\u2581"


def byte_level_table() -> dict[int, str]:
    """Character for each byte in the ``byte_level`` sentencepiece export: ASCII bytes stay
    themselves (the input's ASCII passes through unchanged), bytes 0x80-0xFF take their
    GPT-2 table character (all two-byte UTF-8, none of them ASCII)."""
    gpt2 = bytes_to_unicode()
    return {b: (chr(b) if b < 0x80 else gpt2[b]) for b in range(256)}


def build_proto(tokenizer, *, style: Style = "byte_fallback") -> P.ModelProto:
    check_style(style)
    normalizer: dict[str, Any]
    denormalizer: dict[str, Any] | None
    if style == "byte_fallback":
        entries, extras = fallback_entries(tokenizer, with_counts=True)
        normalizer = {"name": "identity", "precompiled_charsmap": b""}
        denormalizer = None
        byte_fallback = True
    else:
        table = byte_level_table()
        tokens = byte_level_tokens(tokenizer.model.pieces, table)
        names = special_names(set(tokens))
        entries = [Entry(n, 0.0, P.CONTROL) for n in names]
        scores, counts = tokenizer.scores, tokenizer.model.counts
        for i, (piece, token) in enumerate(zip(tokenizer.model.pieces, tokens)):
            score, count = float(scores[i + FIRST_PIECE_ID]), int(counts[i])
            if piece == b"\0":  # NUL cannot be in a piece: reached through byte fallback instead
                entries.append(Entry(byte_token(0), score, P.BYTE, count))
            elif 0 in piece:
                entries.append(Entry(placeholder(piece), score, P.UNUSED, count))
            else:
                entries.append(Entry(token, score, P.NORMAL, count))
        taken = {e.token for e in entries}
        extras = [Entry("<unk>" if "<unk>" not in taken else "<unk|1>", 0.0, P.UNKNOWN)]
        extras += [Entry(byte_token(b), 0.0, P.BYTE) for b in range(1, 256)]
        forward = {bytes([b]): table[b].encode("utf-8") for b in range(0x80, 0x100)}
        backward = {v: k for k, v in forward.items()}
        normalizer = {"name": "bytepiece_byte_level", "precompiled_charsmap": build_charsmap(forward)}
        denormalizer = {"name": "bytepiece_byte_level_inverse", "precompiled_charsmap": build_charsmap(backward),
                        "add_dummy_prefix": False, "remove_extra_whitespaces": False, "escape_whitespaces": False}
        byte_fallback = True
    normalizer.update(add_dummy_prefix=False, remove_extra_whitespaces=False, escape_whitespaces=False)
    # special tokens keep their bytepiece ids (right after the pieces) as user-defined symbols,
    # which sentencepiece matches in the raw text before normalizing
    specials = [Entry(t, 0.0, P.USER_DEFINED) for t in getattr(tokenizer, "special_tokens", ())]
    clash = sorted({e.token for e in specials} & {e.token for e in entries + extras})
    if clash:
        raise InputError(f"special token(s) {', '.join(map(repr, clash))} also spell a vocabulary entry; a sentencepiece "
                         "model cannot hold one string twice (export to HF keeps both, or rename the special token)")
    all_entries = entries + specials + extras
    pieces = [P.Piece(e.token, e.score, e.type, e.count) for e in all_entries]
    unk_id = next(i for i, e in enumerate(all_entries) if e.type == P.UNKNOWN)
    trainer = {
        "model_type": P.UNIGRAM,
        "vocab_size": len(pieces),
        "byte_fallback": byte_fallback,
        "split_by_unicode_script": False,
        "split_by_whitespace": False,
        "split_by_number": False,
        "split_digits": False,
        "allow_whitespace_only_pieces": True,
        "max_sentencepiece_length": max(tokenizer.max_piece_length, 1),
        "unk_id": unk_id,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": 0,
        "unk_piece": all_entries[unk_id].token,
        "pad_piece": entries[0].token,
        "bos_piece": entries[1].token,
        "eos_piece": entries[2].token,
    }
    return P.ModelProto(pieces, trainer, normalizer, denormalizer)


def export_sentencepiece(tokenizer, path: str | os.PathLike, *, style: Style = "byte_fallback",
                         overwrite: bool = True) -> Path:
    """Write ``tokenizer`` as a sentencepiece Unigram model file (atomically); returns the path."""
    data = build_proto(tokenizer, style=style).serialize()
    return atomic.atomic_write(path, data, overwrite=overwrite)


def _read_proto(path: str | os.PathLike) -> bytes:
    return read_limited(path, limit=MAX_MODEL_BYTES, what="sentencepiece model", error=ModelFormatError)


def import_sentencepiece(path: str | os.PathLike | bytes) -> Model:
    """Read a sentencepiece Unigram model (a file path or the serialized bytes) as a bytepiece ``Model``.

    Pieces: normal and user-defined pieces become their UTF-8 bytes (``▁`` becomes a space when
    the model escapes whitespace), ``<0xNN>`` byte pieces single bytes, bytepiece placeholders
    ``<bytes:HEX>`` their bytes; control, unknown and other unused pieces are dropped. The
    ``byte_level`` export's mapped characters are mapped back to bytes. Order (and so ids) is
    kept; a piece seen twice (e.g. ``a`` and ``<0x61>``) keeps its first id and the score of
    its normal entry.

    Counts: exact when the file carries bytepiece's count extension (a bytepiece export).
    Otherwise counts are proportional to ``exp(score)`` (the largest is 2**53, so ratios keep
    float64 precision), which preserves sentencepiece's piece probabilities and hence its
    Viterbi choices as long as the probabilities sum to one (``metadata["sentencepiece"]
    ["probability_mass"]`` reports the sum; bytepiece renormalizes). A single byte that has no
    normal piece (sentencepiece reaches it only through byte fallback at a cost of
    ``min_score - 10`` per character) gets probability ``exp((min_score - 10) / 3)``, so a
    three-byte character costs what sentencepiece charges for an unknown character.

    What is not converted: sentencepiece's normalizer (a character map such as NFKC, the dummy
    prefix ``▁``, whitespace collapsing) is not applied by bytepiece, which uses its own (NFC,
    newline chunking). A model whose normalizer changes text warns (:class:`NormalizerWarning`):
    only a model trained with ``normalization_rule_name="identity"``, ``add_dummy_prefix=False``
    and ``remove_extra_whitespaces=False`` gives sentencepiece's ids after import.
    """
    proto, name = _parse_source(path)
    _check_unigram(proto, name)
    normalizer = {**P.NORMALIZER_DEFAULTS, **proto.normalizer_spec}
    _warn_about_normalizer(normalizer, name)
    found = _collect_pieces(proto, normalizer)
    if not found.order:
        raise ModelFormatError(f"{name} has no pieces that can be imported")
    _check_scores(found, name)
    missing = _add_fallback_bytes(found, proto)
    info: dict = {"source": None if isinstance(path, (bytes, bytearray)) else os.path.basename(name),
                  "pieces_in_file": len(proto.pieces), "imported_pieces": len(found.order),
                  "added_single_bytes": len(missing)}
    counts = _counts(found, name, info)
    _check_bytes(found.order, name)
    validate_pieces(found.order, counts, name)
    if found.specials:
        info["special_tokens"] = len(found.specials)
    try:
        return Model(found.order, counts, {"sentencepiece": info}).with_special_tokens(found.specials)
    except InputError as e:
        raise ModelFormatError(f"{name}: user-defined symbol cannot be a special token: {e}") from e


class NormalizerWarning(UserWarning):
    """A sentencepiece model imported by :func:`import_sentencepiece` normalizes text in a way
    bytepiece does not, so the imported model's ids differ from sentencepiece's."""


def _parse_source(path: str | os.PathLike | bytes) -> tuple[P.ModelProto, str]:
    """The parsed model and the name messages give it; a JSON file (a bytepiece model or an HF
    ``tokenizer.json``) is named as what it is rather than reported as a damaged protobuf."""
    if isinstance(path, (bytes, bytearray)):
        data, name = bytes(path), "sentencepiece model"
    else:
        name = str(path)
        data = _read_proto(path)
    what = _json_kind(data, name)
    if what is not None:
        raise ModelFormatError(what)
    return P.ModelProto.parse(data, name), name


def _json_kind(data: bytes, name: str) -> str | None:
    """What to say about ``data`` when it is JSON, else None. A ``ModelProto`` never starts
    with ``{``, but may start with a newline byte followed by one (a piece of length 123), so
    only text that parses as JSON counts after leading whitespace."""
    import json

    if data.lstrip()[:1] != b"{":
        return None
    try:
        head = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        if data[:1] == b"{":
            return f"{name} is not a sentencepiece model (it starts like JSON, but is not valid JSON)"
        return None
    if isinstance(head, dict) and "model" in head:  # never a key of a bytepiece model (base64, or "_...")
        return (f"{name} is an HF tokenizer.json, not a sentencepiece model; "
                "bytepiece.interop.hf.import_hf reads the ones bytepiece exported")
    return f"{name} is already a bytepiece model; use it directly with -m (Tokenizer(path) in Python)"


def _check_unigram(proto: P.ModelProto, name: str) -> None:
    model_type = proto.trainer_spec.get("model_type", P.UNIGRAM)
    if model_type != P.UNIGRAM:
        kind = P.MODEL_TYPE_NAMES.get(model_type, str(model_type))
        raise ModelFormatError(
            f"{name} is a sentencepiece {kind.upper()} model; only Unigram models can be imported "
            "(their pieces have probabilities; BPE merges do not)"
        )


def _warn_about_normalizer(normalizer: dict[str, Any], name: str) -> None:
    """Warn when sentencepiece changes the text before segmenting it and bytepiece will not:
    a character map (NFKC and the like; bytepiece's own ``byte_level`` map is undone on import),
    the dummy prefix ``▁``, whitespace collapsing."""
    changes = []
    if normalizer.get("precompiled_charsmap") and _byte_level_reverse(normalizer) is None:
        changes.append(f"normalization {normalizer.get('name') or 'map'!r}")
    if normalizer["add_dummy_prefix"]:
        changes.append("add_dummy_prefix (a \u2581 before every text: nearly every text's first ids differ)")
    if normalizer["remove_extra_whitespaces"]:
        changes.append("remove_extra_whitespaces (leading, trailing and repeated spaces removed)")
    if changes:
        import warnings

        warnings.warn(
            f"{name}: sentencepiece normalizes text with {', '.join(changes)} before encoding it with this model; "
            "bytepiece does not, so the imported model's ids will differ from sentencepiece's. Only a model trained "
            "with normalization_rule_name='identity', add_dummy_prefix=False and remove_extra_whitespaces=False "
            "gives sentencepiece's ids after import",
            NormalizerWarning, stacklevel=3)


def _byte_level_reverse(normalizer: dict[str, Any]) -> dict[str, int] | None:
    """For bytepiece's ``byte_level`` export, the byte of each mapped character; else None."""
    if str(normalizer.get("name", "")).startswith("bytepiece_byte_level"):
        return {ch: b for b, ch in byte_level_table().items()}
    return None


@dataclass
class _Found:
    """The pieces of a ``ModelProto`` in import order, with what is known about each."""

    order: list[bytes] = field(default_factory=list)
    specials: list[str] = field(default_factory=list)
    score_of: dict[bytes, float] = field(default_factory=dict)
    count_of: dict[bytes, int] = field(default_factory=dict)
    normal_seen: set[bytes] = field(default_factory=set)
    exact: bool = True


def _collect_pieces(proto: P.ModelProto, normalizer: dict[str, Any]) -> _Found:
    found = _Found()
    escaped, reverse = normalizer["escape_whitespaces"], _byte_level_reverse(normalizer)
    for p in proto.pieces:
        if p.type == P.USER_DEFINED and p.piece:
            found.specials.append(p.piece)  # matched as a whole in text: a special token
            continue
        raw = _piece_bytes(p, escaped, reverse)
        if raw is not None:
            _take(found, p, raw)
    return found


def _take(found: _Found, p: P.Piece, raw: bytes) -> None:
    """Record piece ``p`` (bytes ``raw``): the first entry of some bytes fixes their id, a
    normal entry their score and count."""
    is_normal = p.type in (P.NORMAL, P.USER_DEFINED, P.UNUSED)
    if raw not in found.score_of:
        found.order.append(raw)
        found.score_of[raw] = p.score
        if p.count is not None:
            found.count_of[raw] = p.count
        else:
            found.exact = False
    elif is_normal and raw not in found.normal_seen:
        found.score_of[raw] = p.score
        if p.count is not None:
            found.count_of[raw] = p.count
    if is_normal:
        found.normal_seen.add(raw)


def _check_scores(found: _Found, name: str) -> None:
    """NaN or infinite scores would make NaN counts and a model nobody can load."""
    for raw in found.order:
        if not math.isfinite(found.score_of[raw]):
            raise ModelFormatError(f"{name}: piece {raw!r} has score {found.score_of[raw]}; scores must be finite "
                                   "log probabilities, so this model cannot be imported")


def _add_fallback_bytes(found: _Found, proto: P.ModelProto) -> list[bytes]:
    """Add the single bytes the model lacks, and score every single byte that sentencepiece
    reaches only through byte fallback like an unknown character's share; returns those added."""
    normal_scores = [p.score for p in proto.pieces if p.type == P.NORMAL and math.isfinite(p.score)]
    min_score = min(normal_scores) if normal_scores else 0.0
    fallback_score = (min_score - UNK_PENALTY) / 3.0
    missing = [bytes([b]) for b in range(256) if bytes([b]) not in found.score_of]
    for raw in missing:
        found.order.append(raw)
        found.score_of[raw] = fallback_score
        found.exact = False
    for raw in found.order:
        if len(raw) == 1 and raw not in found.normal_seen and raw not in found.count_of:
            found.score_of[raw] = fallback_score
    return missing


def _counts(found: _Found, name: str, info: dict) -> np.ndarray:
    """The exact counts of a bytepiece export, else counts proportional to ``exp(score)``
    (``info`` says which, and the probability mass of the scores)."""
    order = found.order
    if found.exact and len(found.count_of) == len(order):
        info["counts"] = "exact (bytepiece count extension)"
        return checked_counts(order, [found.count_of[p] for p in order], name)
    s = np.array([found.score_of[p] for p in order], dtype=np.float64)
    info["counts"] = "exp(score) scaled so the largest is 2**53 (less where the total would pass 2**62)"
    info["probability_mass"] = float(np.exp(s).sum())
    return checked_counts(order, counts_from_scores(s), name)


def sentencepiece_id_map(source: str | os.PathLike | bytes, model: Model) -> np.ndarray:
    """For each sentencepiece id of ``source``, the bytepiece id of the same piece in ``model``
    (typically ``import_sentencepiece(source)``): control pieces map to 0/1/2 (pad/bos/eos),
    the unknown piece and dropped pieces to -1. For a bytepiece export this is the identity
    on ids ``0..V-1``."""
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else _read_proto(source)
    proto = P.ModelProto.parse(data, "sentencepiece model")
    normalizer = {**P.NORMALIZER_DEFAULTS, **proto.normalizer_spec}
    reverse = _byte_level_reverse(normalizer)
    trainer = {**P.TRAINER_DEFAULTS, **proto.trainer_spec}
    specials = {trainer["pad_id"]: 0, trainer["bos_id"]: 1, trainer["eos_id"]: 2}
    index = {p: i + FIRST_PIECE_ID for i, p in enumerate(model.pieces)}
    special_index = {t: model.vocab_size + k for k, t in enumerate(model.special_tokens)}
    out = np.full(len(proto.pieces), -1, dtype=np.int64)
    for sp_id, piece in enumerate(proto.pieces):
        if piece.type == P.CONTROL:
            out[sp_id] = specials.get(sp_id, -1)
            continue
        if piece.type == P.USER_DEFINED and piece.piece in special_index:
            out[sp_id] = special_index[piece.piece]
            continue
        raw = _piece_bytes(piece, normalizer["escape_whitespaces"], reverse)
        if raw is not None:
            out[sp_id] = index.get(raw, -1)
    return out


def _piece_bytes(p: P.Piece, escaped: bool, reverse: dict[str, int] | None) -> bytes | None:
    if p.type in (P.CONTROL, P.UNKNOWN):
        return None
    if p.type == P.BYTE:
        m = _BYTE_PIECE.fullmatch(p.piece)
        if m is None:
            raise ModelFormatError(f"byte piece {p.piece!r} is not of the form <0xNN>")
        return bytes([int(m.group(1), 16)])
    if p.type == P.UNUSED:
        return parse_placeholder(p.piece)
    if not p.piece:
        return None
    if reverse is not None:
        try:
            return bytes(reverse[ch] if ch in reverse else ord(ch) for ch in p.piece)
        except ValueError:
            return p.piece.encode("utf-8")
    text = p.piece.replace(_SPACE_SYMBOL, " ") if escaped else p.piece
    return text.encode("utf-8")


def _check_bytes(order: list[bytes], name: str) -> None:
    if len(set(order)) != len(order):  # pragma: no cover - guarded by the dict above
        raise ModelFormatError(f"{name}: duplicate pieces after conversion")
