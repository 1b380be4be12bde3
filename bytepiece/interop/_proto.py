"""Just enough of the protobuf wire format to write and read a sentencepiece ``ModelProto``.

Exporting and importing sentencepiece models therefore needs neither ``protobuf`` nor
``sentencepiece``; those are only needed to *run* the exported model. Field numbers follow
sentencepiece's ``sentencepiece_model.proto``:

- ``ModelProto``: 1 ``pieces`` (repeated SentencePiece), 2 ``trainer_spec``, 3 ``normalizer_spec``,
  5 ``denormalizer_spec``.
- ``SentencePiece``: 1 ``piece`` (string), 2 ``score`` (float32), 3 ``type`` (enum); bytepiece adds
  the extension field 200 ``bytepiece_count`` (varint, the piece's exact count, so that
  ``import`` of a bytepiece export restores the model exactly; sentencepiece ignores it, its
  message reserves 200..max for extensions).
- ``TrainerSpec`` and ``NormalizerSpec``: see ``TRAINER_FIELDS`` / ``NORMALIZER_FIELDS``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelFormatError

# SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.ModelType
UNIGRAM, BPE, WORD, CHAR = 1, 2, 3, 4
MODEL_TYPE_NAMES = {UNIGRAM: "unigram", BPE: "bpe", WORD: "word", CHAR: "char"}

BYTEPIECE_COUNT_FIELD = 200

# name -> (field number, kind); kinds: "string", "bytes", "bool", "int32", "enum", "float", "uint64"
TRAINER_FIELDS: dict[str, tuple[int, str]] = {
    "model_type": (3, "enum"),
    "vocab_size": (4, "int32"),
    "character_coverage": (10, "float"),
    "split_by_unicode_script": (21, "bool"),
    "split_by_whitespace": (22, "bool"),
    "split_by_number": (23, "bool"),
    "treat_whitespace_as_suffix": (24, "bool"),
    "split_digits": (25, "bool"),
    "allow_whitespace_only_pieces": (26, "bool"),
    "max_sentencepiece_length": (20, "int32"),
    "byte_fallback": (35, "bool"),
    "unk_id": (40, "int32"),
    "bos_id": (41, "int32"),
    "eos_id": (42, "int32"),
    "pad_id": (43, "int32"),
    "unk_surface": (44, "string"),
    "unk_piece": (45, "string"),
    "bos_piece": (46, "string"),
    "eos_piece": (47, "string"),
    "pad_piece": (48, "string"),
}
NORMALIZER_FIELDS: dict[str, tuple[int, str]] = {
    "name": (1, "string"),
    "precompiled_charsmap": (2, "bytes"),
    "add_dummy_prefix": (3, "bool"),
    "remove_extra_whitespaces": (4, "bool"),
    "escape_whitespaces": (5, "bool"),
    "normalization_rule_tsv": (6, "string"),
}
# Defaults of the .proto for fields a reader needs when they are absent.
NORMALIZER_DEFAULTS = {"add_dummy_prefix": True, "remove_extra_whitespaces": True, "escape_whitespaces": True}
TRAINER_DEFAULTS = {"model_type": UNIGRAM, "byte_fallback": False, "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1}


@dataclass
class Piece:
    piece: str
    score: float
    type: int = NORMAL
    count: int | None = None  # bytepiece extension (field 200)


@dataclass
class ModelProto:
    pieces: list[Piece] = field(default_factory=list)
    trainer_spec: dict[str, Any] = field(default_factory=dict)
    normalizer_spec: dict[str, Any] = field(default_factory=dict)
    denormalizer_spec: dict[str, Any] | None = None

    def serialize(self) -> bytes:
        out = bytearray()
        for p in self.pieces:
            _put_message(out, 1, _piece_bytes(p))
        _put_message(out, 2, _spec_bytes(self.trainer_spec, TRAINER_FIELDS))
        _put_message(out, 3, _spec_bytes(self.normalizer_spec, NORMALIZER_FIELDS))
        if self.denormalizer_spec is not None:
            _put_message(out, 5, _spec_bytes(self.denormalizer_spec, NORMALIZER_FIELDS))
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes, name: str = "model") -> ModelProto:
        try:
            fields = _parse_fields(memoryview(data))
            proto = cls()
            for number, wire, value in fields:
                if number == 1 and wire == 2:
                    proto.pieces.append(_parse_piece(value))
                elif number == 2 and wire == 2:
                    proto.trainer_spec = _parse_spec(value, TRAINER_FIELDS)
                elif number == 3 and wire == 2:
                    proto.normalizer_spec = _parse_spec(value, NORMALIZER_FIELDS)
                elif number == 5 and wire == 2:
                    proto.denormalizer_spec = _parse_spec(value, NORMALIZER_FIELDS)
        except (IndexError, ValueError, UnicodeDecodeError, struct.error) as e:
            raise ModelFormatError(f"{name} is not a sentencepiece model ({type(e).__name__}: {e})") from None
        if not proto.pieces:
            raise ModelFormatError(f"{name} is not a sentencepiece model (no pieces found)")
        return proto


# -- writing ---------------------------------------------------------------------------------
def _varint(out: bytearray, value: int) -> None:
    value &= (1 << 64) - 1  # negative int32/int64 are written as 10-byte two's complement
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _key(out: bytearray, number: int, wire: int) -> None:
    _varint(out, (number << 3) | wire)


def _put_message(out: bytearray, number: int, payload: bytes) -> None:
    _key(out, number, 2)
    _varint(out, len(payload))
    out += payload


def _put(out: bytearray, number: int, kind: str, value: Any) -> None:
    if kind in ("string", "bytes"):
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        _put_message(out, number, data)
    elif kind == "float":
        _key(out, number, 5)
        out += struct.pack("<f", value)
    elif kind in ("bool", "int32", "enum", "uint64"):
        _key(out, number, 0)
        _varint(out, int(value))
    else:  # pragma: no cover - table error
        raise ValueError(kind)


def _piece_bytes(p: Piece) -> bytes:
    out = bytearray()
    _put(out, 1, "string", p.piece)
    _put(out, 2, "float", p.score)
    if p.type != NORMAL:
        _put(out, 3, "enum", p.type)
    if p.count is not None:
        _put(out, BYTEPIECE_COUNT_FIELD, "uint64", p.count)
    return bytes(out)


def _spec_bytes(spec: dict[str, Any], table: dict[str, tuple[int, str]]) -> bytes:
    out = bytearray()
    for name, value in spec.items():
        if value is None:
            continue
        number, kind = table[name]
        _put(out, number, kind, value)
    return bytes(out)


# -- reading ---------------------------------------------------------------------------------
def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _parse_fields(buf: memoryview) -> list[tuple[int, int, Any]]:
    fields = []
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes | memoryview
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value = bytes(buf[pos : pos + 8])
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > n:
                raise ValueError("truncated field")
            value = buf[pos : pos + length]
            pos += length
        elif wire == 5:
            value = bytes(buf[pos : pos + 4])
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > n:
            raise ValueError("truncated message")
        fields.append((number, wire, value))
    return fields


def _signed(value: int, bits: int = 64) -> int:
    return value - (1 << 64) if value >= 1 << (bits - 1) else value


def _parse_piece(buf: memoryview) -> Piece:
    piece, score, type_, count = "", 0.0, NORMAL, None
    for number, wire, value in _parse_fields(buf):
        if number == 1 and wire == 2:
            piece = bytes(value).decode("utf-8")
        elif number == 2 and wire == 5:
            score = struct.unpack("<f", value)[0]
        elif number == 3 and wire == 0:
            type_ = value
        elif number == BYTEPIECE_COUNT_FIELD and wire == 0:
            count = value
    return Piece(piece, score, type_, count)


def _parse_spec(buf: memoryview, table: dict[str, tuple[int, str]]) -> dict[str, Any]:
    by_number = {number: (name, kind) for name, (number, kind) in table.items()}
    spec: dict[str, Any] = {}
    for number, wire, value in _parse_fields(buf):
        if number not in by_number:
            continue
        name, kind = by_number[number]
        if kind == "string" and wire == 2:
            spec[name] = bytes(value).decode("utf-8")
        elif kind == "bytes" and wire == 2:
            spec[name] = bytes(value)
        elif kind == "float" and wire == 5:
            spec[name] = struct.unpack("<f", value)[0]
        elif kind == "bool" and wire == 0:
            spec[name] = bool(value)
        elif kind in ("int32", "enum") and wire == 0:
            spec[name] = _signed(value)
        elif kind == "uint64" and wire == 0:
            spec[name] = value
    return spec
