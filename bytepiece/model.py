"""The model file: a JSON object mapping base64(piece) to ``[id, display_text, count]``.

The format is the original BytePiece's, so models move freely between the two projects. The
original loader base64-decodes every key, so anything extra inside the file would break it;
bytepiece therefore keeps its own metadata (training options, ...) in a sidecar file
``MODEL.meta.json`` and, when reading, ignores keys that cannot be base64 (they start with ``_``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import numpy.typing as npt

from .atomic import atomic_write
from .errors import ModelFormatError

#: ids 0, 1, 2 are reserved; pieces take ids from 3 on.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_PIECE_ID = len(SPECIAL_TOKENS)
METADATA_SUFFIX = ".meta.json"

ModelSource = Union[str, os.PathLike, IO, Mapping, "Model"]


@dataclass(frozen=True)
class Model:
    """Pieces indexed by ``id - 3`` and their counts: the whole content of a model file."""

    pieces: list[bytes]
    counts: npt.NDArray[np.int64]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces) + FIRST_PIECE_ID

    @classmethod
    def from_counts(cls, counts: Mapping[bytes, int], metadata: Mapping | None = None) -> Model:
        """Number pieces as the original does: sorted by (byte length, bytes), ids from 3."""
        ordered = sorted(counts, key=lambda p: (len(p), p))
        model = cls(ordered, np.array([counts[p] for p in ordered], dtype=np.int64), dict(metadata or {}))
        _validate_pieces(model.pieces, model.counts)
        return model

    def to_json_dict(self) -> dict[str, list]:
        return {
            base64.b64encode(piece).decode("ascii"): [i + FIRST_PIECE_ID, piece.decode("utf-8", "ignore"), int(c)]
            for i, (piece, c) in enumerate(zip(self.pieces, self.counts))
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the model (and its metadata sidecar, when there is metadata) atomically."""
        path = Path(path)
        text = json.dumps(self.to_json_dict(), ensure_ascii=False, indent=1)
        atomic_write(path, text, overwrite=overwrite)
        if self.metadata:
            atomic_write(metadata_path(path), json.dumps(self.metadata, indent=2, sort_keys=True), overwrite=True)
        return path


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (models and corpora are identified by it in sidecars and reports)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def metadata_path(model_path: str | os.PathLike) -> Path:
    return Path(str(model_path) + METADATA_SUFFIX)


def load_model(source: ModelSource) -> Model:
    """Read a model from a path, an open file, a parsed dict or a ``Model``; validate it."""
    if isinstance(source, Model):
        return source
    metadata: dict[str, Any] = {}
    if isinstance(source, Mapping):
        raw, name = source, "model dict"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        try:
            with open(path, "rb") as f:
                raw = _parse_json(f.read(), name)
        except FileNotFoundError:
            raise ModelFormatError(f"model file {name} does not exist") from None
        except IsADirectoryError:
            raise ModelFormatError(f"model path {name} is a directory, not a model file") from None
        except PermissionError as e:
            raise ModelFormatError(f"cannot read model file {name}: {e.strerror}") from None
        meta_file = metadata_path(path)
        if meta_file.is_file():
            try:
                metadata = json.loads(meta_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                metadata = {}
    elif hasattr(source, "read"):
        name = getattr(source, "name", "model file object")
        raw = _parse_json(source.read(), str(name))
    else:
        raise TypeError(f"cannot load a model from {type(source).__name__}; pass a path, a file object or a dict")
    pieces, counts, inline_meta = _decode_entries(raw, str(name))
    metadata = {**inline_meta, **metadata}
    return Model(pieces, counts, metadata)


if sys.version_info >= (3, 11):

    def _b64decode(key: str) -> bytes:
        return binascii.a2b_base64(key, strict_mode=True)

else:  # pragma: no cover - Python 3.10

    def _b64decode(key: str) -> bytes:
        return base64.b64decode(key, validate=True)


def _parse_json(data: bytes | str, name: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFormatError(f"{name} is not a JSON model file ({e}); pass a bytepiece/BytePiece .model file") from None


def _decode_entries(raw: Any, name: str) -> tuple[list[bytes], npt.NDArray[np.int64], dict]:
    if not isinstance(raw, Mapping):
        raise ModelFormatError(f"{name}: a model is a JSON object mapping base64 pieces to [id, text, count], got {type(raw).__name__}")
    n = sum(1 for k in raw if not str(k).startswith("_"))
    pieces: list[bytes | None] = [None] * n
    counts = np.zeros(n, dtype=np.int64)
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        if str(key).startswith("_"):
            meta[str(key)] = value
            continue
        try:
            piece = _b64decode(key)
        except (binascii.Error, ValueError, TypeError):
            raise ModelFormatError(f"{name}: key {key!r} is not valid base64") from None
        if not piece:
            raise ModelFormatError(f"{name}: key {key!r} decodes to an empty piece")
        if not (isinstance(value, (list, tuple)) and len(value) == 3):
            raise ModelFormatError(f"{name}: entry {key!r} must be [id, text, count], got {value!r}")
        pid, _, count = value
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise ModelFormatError(f"{name}: entry {key!r} has a non-integer id {pid!r}")
        if not isinstance(count, (int, float)) or isinstance(count, bool) or not count > 0:
            raise ModelFormatError(f"{name}: piece {piece!r} has count {count!r}; counts must be positive")
        index = pid - FIRST_PIECE_ID
        if not 0 <= index < n:
            raise ModelFormatError(
                f"{name}: ids must be contiguous from {FIRST_PIECE_ID} to {n + FIRST_PIECE_ID - 1}, found id {pid} (piece {piece!r})"
            )
        if pieces[index] is not None:
            raise ModelFormatError(f"{name}: id {pid} is used twice ({pieces[index]!r} and {piece!r})")
        pieces[index] = piece
        counts[index] = count
    # n slots filled without a duplicate id means every id 3..n+2 is present.
    _validate_pieces(pieces, counts, name)  # type: ignore[arg-type]
    return pieces, counts, meta  # type: ignore[return-value]


def _validate_pieces(pieces: list[bytes], counts: np.ndarray, name: str = "model") -> None:
    if len(set(pieces)) != len(pieces):
        seen: set[bytes] = set()
        dup = next(p for p in pieces if p in seen or seen.add(p))  # type: ignore[func-returns-value]
        raise ModelFormatError(f"{name}: piece {dup!r} appears twice")
    if len(counts) and counts.min() <= 0:
        raise ModelFormatError(f"{name}: counts must be positive, found {int(counts.min())}")
    have = {p[0] for p in pieces if len(p) == 1}
    missing = [b for b in range(256) if b not in have]
    if missing:
        shown = ", ".join(f"0x{b:02x}" for b in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise ModelFormatError(
            f"{name}: every single byte must be a piece so any text can be encoded; missing {shown}{more}"
        )


def iter_display(pieces: Iterable[bytes]) -> Iterable[str]:
    for p in pieces:
        yield p.decode("utf-8", "backslashreplace")
