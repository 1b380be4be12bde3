"""The model file: a JSON object mapping base64(piece) to ``[id, display_text, count]``.

The format is the original BytePiece's, so models move freely between the two projects. The
original loader base64-decodes every key, so anything extra inside the file would break it;
bytepiece therefore keeps its own metadata (training options, ...) in a sidecar file
``MODEL.meta.json`` and, when reading, ignores keys that cannot be base64 (they start with ``_``).
The one exception is a model's special tokens, which must travel with it: they are written under
``_special_tokens`` only when there are some (such a file no longer loads in the original).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import reprlib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from .io import atomic
from .io.read import open_regular, read_limited
from .errors import InputError, ModelFormatError, ModelNotFoundError
from .units import format_size

if TYPE_CHECKING:
    from .summary import ModelSummary

#: ids 0, 1, 2 are reserved; pieces take ids from 3 on.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_PIECE_ID = len(SPECIAL_TOKENS)
METADATA_SUFFIX = ".meta.json"
#: Counts are int64 and so is their total (scores are log(count) - log(total)).
MAX_TOTAL_COUNT = (1 << 63) - 1
#: The largest model file read (the published 160k model is 12 MB).
MAX_MODEL_BYTES = 512 << 20
MAX_METADATA_BYTES = 16 << 20

#: file key of the user special tokens (``[[id, text], ...]``); base64 never contains ``_``, so
#: the key cannot collide with a piece. Written only when a model has special tokens, so other
#: files stay byte-for-byte what the original BytePiece writes and reads.
SPECIAL_TOKENS_KEY = "_special_tokens"

ModelSource = Union[str, os.PathLike, IO, Mapping, "Model"]


@dataclass(frozen=True, repr=False)
class Model:
    """Pieces indexed by ``id - 3`` and their counts: the whole content of a model file.

    ``special_tokens`` (strings such as ``<|im_start|>``) take the ids after the pieces, from
    ``vocab_size`` on: ``vocab_size`` counts the reserved ids and the pieces, the ids the
    segmentation kernels deal with; ``len(model)`` and ``Tokenizer.vocab_size`` count the
    special tokens too (the size an embedding table needs).
    """

    pieces: list[bytes]
    counts: npt.NDArray[np.int64]
    metadata: dict[str, Any] = field(default_factory=dict)
    special_tokens: tuple[str, ...] = ()

    @property
    def vocab_size(self) -> int:
        return len(self.pieces) + FIRST_PIECE_ID

    def __len__(self) -> int:
        return self.vocab_size + len(self.special_tokens)

    def __repr__(self) -> str:
        # Short on purpose: printing a trained model must not print 32,000 pieces.
        specials = f", special_tokens={_short(self.special_tokens)}" if self.special_tokens else ""
        return f"Model(vocab_size={self.vocab_size}, pieces={len(self.pieces)}{specials})"

    def summary(self, *, top: int = 20) -> ModelSummary:
        """Sizes, piece lengths and the ``top`` most frequent pieces (what ``bytepiece
        inspect`` shows), as data."""
        from .summary import summarize

        return summarize(self, top=top)  # type: ignore[arg-type]  # Model's fields are read-only properties

    def with_special_tokens(self, tokens: Iterable[str]) -> Model:
        """This model with ``tokens`` appended to its special tokens (ones it already has are
        kept where they are, so adding is idempotent)."""
        added = check_special_tokens(tokens)
        merged = self.special_tokens + tuple(t for t in added if t not in self.special_tokens)
        return replace(self, special_tokens=merged)

    @classmethod
    def from_counts(cls, counts: Mapping[bytes, int], metadata: Mapping | None = None) -> Model:
        """Number pieces as the original does: sorted by (byte length, bytes), ids from 3."""
        ordered = sorted(counts, key=lambda p: (len(p), p))
        model = cls(ordered, checked_counts(ordered, [counts[p] for p in ordered]), dict(metadata or {}))
        validate_pieces(model.pieces, model.counts)
        return model

    def to_json_dict(self) -> dict[str, list]:
        out: dict[str, list] = {
            base64.b64encode(piece).decode("ascii"): [i + FIRST_PIECE_ID, piece.decode("utf-8", "ignore"), int(c)]
            for i, (piece, c) in enumerate(zip(self.pieces, self.counts))
        }
        if self.special_tokens:
            out[SPECIAL_TOKENS_KEY] = [[self.vocab_size + k, t] for k, t in enumerate(self.special_tokens)]
        return out

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the model and its metadata sidecar as one atomic set (see :mod:`bytepiece.io.atomic`)."""
        with atomic.OutputSet(overwrite=overwrite) as out:
            self.stage(out, path)
        return Path(path)

    def stage(self, out: atomic.OutputSet, path: str | os.PathLike) -> None:
        """Add the model file and its sidecar to ``out``, so that several models commit together.
        A model without metadata removes a stale sidecar; a device or FIFO gets no sidecar."""
        text = json.dumps(self.to_json_dict(), ensure_ascii=False, indent=4)  # as the original writes it
        out.write(path, text)
        if atomic.is_stream(path):
            return
        if self.metadata:
            out.write(metadata_path(path), json.dumps(self.metadata, indent=2, sort_keys=True), overwrite=True)
        else:
            out.remove(metadata_path(path))


def content_sha256(model: Model) -> str:
    """The model's identity: sha256 of its content (pieces and counts in id order), whatever the
    JSON file looked like: for each piece its length (uint32 LE), its bytes and its count (int64
    LE). Token files and corpus manifests record it, so a reader can refuse another model."""
    h = hashlib.sha256()
    counts = np.asarray(model.counts, dtype="<i8")
    for piece, count in zip(model.pieces, counts.tolist()):
        h.update(len(piece).to_bytes(4, "little"))
        h.update(piece)
        h.update(int(count).to_bytes(8, "little", signed=True))
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, *, what: str = "file", error: type[Exception] = InputError) -> str:
    """sha256 of a file's bytes (models and corpora are identified by it in sidecars and
    reports); ``error`` names ``what`` the file should be when it is not a regular file."""
    h = hashlib.sha256()
    f, _ = open_regular(path, what=what, error=error)
    with f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def metadata_path(model_path: str | os.PathLike) -> Path:
    return Path(str(model_path) + METADATA_SUFFIX)


def load_model(source: ModelSource) -> Model:
    """Read a model from a path, an open file, a parsed dict or a ``Model``; validate it."""
    if isinstance(source, Model):
        validate_pieces(source.pieces, checked_counts(source.pieces, source.counts), "model")
        return source
    if isinstance(source, Mapping):
        return _from_raw(source, "model dict", {})
    if isinstance(source, (str, os.PathLike)):
        return load_model_bytes(read_model_file(source), source)
    if hasattr(source, "read"):
        name = str(getattr(source, "name", "model file object"))
        data = source.read(MAX_MODEL_BYTES + 1)
        if len(data) > MAX_MODEL_BYTES:
            raise ModelFormatError(f"{name} is larger than a model file can be ({format_size(MAX_MODEL_BYTES)})")
        return _from_raw(_parse_json(data, name), name, {})
    raise TypeError(f"cannot load a model from {type(source).__name__}; pass a path, a file object or a dict")


def read_model_file(path: str | os.PathLike) -> bytes:
    """The bytes of the model file ``path``: a regular file of at most ``MAX_MODEL_BYTES``
    (a FIFO, device or directory is refused with a ``ModelFormatError``; a missing file with
    its subclass ``ModelNotFoundError``)."""
    if not os.path.lexists(path):
        raise ModelNotFoundError(f"model file {os.fspath(path)} does not exist")
    return read_limited(path, limit=MAX_MODEL_BYTES, what="model file", error=ModelFormatError)


def load_model_bytes(data: bytes, path: str | os.PathLike) -> Model:
    """The model whose file ``path`` held ``data`` (read once, by :func:`read_model_file`), with
    the metadata of its sidecar."""
    return _from_raw(_parse_json(data, str(path)), str(path), read_metadata(path))


def _from_raw(raw: Any, name: str, sidecar: dict[str, Any]) -> Model:
    pieces, counts, inline_meta = _decode_entries(raw, name)
    specials = decode_special_tokens(inline_meta.pop(SPECIAL_TOKENS_KEY, None), len(pieces) + FIRST_PIECE_ID, name)
    return Model(pieces, counts, {**inline_meta, **sidecar}, specials)


def check_special_tokens(tokens: Iterable[str]) -> tuple[str, ...]:
    """Validate user special tokens: non-empty strings, not the reserved names; a repeat of an
    earlier one is dropped (adding a token twice is harmless)."""
    if isinstance(tokens, (str, bytes)):
        raise InputError(f"special tokens must be a list of strings, got the single value {tokens!r}; wrap it in a list")
    if not isinstance(tokens, Iterable):
        raise InputError(f"special tokens must be a list of strings, got {tokens!r}")
    out: list[str] = []
    for t in tokens:
        if not isinstance(t, str):
            raise InputError(f"special token {t!r} is not a str; give special tokens as text, e.g. '<|im_start|>'")
        if not t:
            raise InputError("a special token cannot be the empty string")
        if t in SPECIAL_TOKENS:
            raise InputError(f"{t!r} is reserved (id {SPECIAL_TOKENS.index(t)}); use add_bos/add_eos or the id itself")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"special token {t!r} contains a lone surrogate and has no UTF-8 form") from None
        if t not in out:
            out.append(t)
    return tuple(out)


def decode_special_tokens(raw: Any, first_id: int, name: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ModelFormatError(f"{name}: {SPECIAL_TOKENS_KEY} must be a list of [id, text], got {type(raw).__name__}")
    tokens: list[str] = []
    for k, entry in enumerate(raw):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)):
            raise ModelFormatError(f"{name}: {SPECIAL_TOKENS_KEY} entry {entry!r} must be [id, text]")
        if entry[0] != first_id + k:
            raise ModelFormatError(f"{name}: special token {entry[1]!r} has id {entry[0]!r}; special token ids must "
                                   f"follow the pieces contiguously from {first_id}")
        tokens.append(entry[1])
    try:
        checked = check_special_tokens(tokens)
    except InputError as e:
        raise ModelFormatError(f"{name}: {e}") from e
    if len(checked) != len(tokens):
        raise ModelFormatError(f"{name}: a special token appears twice in {SPECIAL_TOKENS_KEY}")
    return checked


def read_metadata(model_path: str | os.PathLike) -> dict[str, Any]:
    """The metadata in the sidecar of the model file ``model_path``; informational only, so a
    missing or unreadable one (not a regular file, too large, not a JSON object) is ignored."""
    try:
        meta = json.loads(read_limited(metadata_path(model_path), limit=MAX_METADATA_BYTES, what="metadata file",
                                       error=ValueError))
    except (ValueError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}


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
    except RecursionError:
        raise ModelFormatError(f"{name} is not a model file: its JSON is nested too deeply") from None


def _decode_entries(raw: Any, name: str) -> tuple[list[bytes], npt.NDArray[np.int64], dict]:
    if not isinstance(raw, Mapping):
        raise ModelFormatError(f"{name}: a model is a JSON object mapping base64 pieces to [id, text, count], got {type(raw).__name__}")
    n = sum(1 for k in raw if not str(k).startswith("_"))
    pieces: list[bytes | None] = [None] * n
    values: list[Any] = [None] * n
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        if str(key).startswith("_"):
            meta[str(key)] = value
            continue
        try:
            piece = _b64decode(key)
        except (binascii.Error, ValueError, TypeError):
            raise ModelFormatError(f"{name}: key {_short(key)} is not valid base64") from None
        if not piece:
            raise ModelFormatError(f"{name}: key {key!r} decodes to an empty piece")
        if not (isinstance(value, (list, tuple)) and len(value) == 3):
            raise ModelFormatError(f"{name}: entry {key!r} must be [id, text, count], got {_short(value)}")
        pid, _, count = value
        if type(pid) is not int and not isinstance(pid, np.integer):  # bool is not an id either
            raise ModelFormatError(f"{name}: entry {key!r} has a non-integer id {_short(pid)}")
        index = int(pid) - FIRST_PIECE_ID
        if not 0 <= index < n:
            raise ModelFormatError(
                f"{name}: ids must be contiguous from {FIRST_PIECE_ID} to {n + FIRST_PIECE_ID - 1}, found id {pid} (piece {piece!r})"
            )
        if pieces[index] is not None:
            raise ModelFormatError(f"{name}: id {pid} is used twice ({pieces[index]!r} and {piece!r})")
        pieces[index] = piece
        values[index] = count
    # n slots filled without a duplicate id means every id 3..n+2 is present.
    counts = checked_counts(pieces, values, name)  # type: ignore[arg-type]
    validate_pieces(pieces, counts, name)  # type: ignore[arg-type]
    return pieces, counts, meta  # type: ignore[return-value]


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 40


def _short(value: Any) -> str:
    """A bounded repr for messages: deep nesting or huge values must not become the error (and
    a NumPy scalar reads as its number, ``-5``, not ``np.int64(-5)``)."""
    return _REPR.repr(value.item() if isinstance(value, np.generic) else value)


def _as_count(value: Any) -> int | None:
    """The count ``value`` stands for, or None unless it is a positive integer that fits int64
    (a float is accepted only when it is a whole number: JSON writers sometimes emit ``5.0``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        count = int(value)
    elif isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        count = int(value)
    else:
        return None
    return count if 0 < count <= MAX_TOTAL_COUNT else None


def checked_counts(pieces: list[bytes], values: Any, name: str = "model") -> npt.NDArray[np.int64]:
    """``values`` as int64 counts, after checking that each is a positive integer and that their
    total fits int64 exactly (past it every score would be NaN and encoding garbage)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and values.ndim == 1:
        arr = values
        bad = np.flatnonzero(arr <= 0) if arr.dtype.kind == "i" else np.flatnonzero(arr == 0)
        big = np.flatnonzero(arr > MAX_TOTAL_COUNT) if arr.dtype.kind == "u" else bad[:0]
        if len(bad) or len(big):
            i = int(min(bad[:1].tolist() + big[:1].tolist()))
            raise _count_error(name, pieces, i, arr[i])
        if len(arr) and int(arr.max()) > MAX_TOTAL_COUNT // len(arr):
            _check_total(pieces, arr.tolist(), name)
        return arr.astype(np.int64, copy=False)
    values = list(values)
    if set(map(type, values)) <= {int}:  # the usual case, checked at C speed
        try:
            return checked_counts(pieces, np.array(values, dtype=np.int64), name)
        except OverflowError:
            pass  # a count past int64: the loop below names it
    ints = []
    for i, value in enumerate(values):
        count = _as_count(value)
        if count is None:
            raise _count_error(name, pieces, i, value)
        ints.append(count)
    _check_total(pieces, ints, name)
    return np.array(ints, dtype=np.int64)


def _count_error(name: str, pieces: list, i: int, value: Any) -> ModelFormatError:
    piece = pieces[i] if i < len(pieces) else None
    return ModelFormatError(f"{name}: piece {piece!r} (id {i + FIRST_PIECE_ID}) has count {_short(value)}; "
                            f"counts must be positive integers below 2**63")


def _check_total(pieces: list, ints: list[int], name: str) -> None:
    total = 0
    for i, count in enumerate(ints):
        total += count
        if total > MAX_TOTAL_COUNT:
            raise ModelFormatError(
                f"{name}: the counts add up to more than 2**63 - 1 (passed at piece {pieces[i]!r}, id "
                f"{i + FIRST_PIECE_ID}); scale them down so that their total fits a 64-bit integer")


def counts_from_scores(scores: Any) -> npt.NDArray[np.int64]:
    """Counts in the proportions ``exp(score)`` (finite scores, at least one), for models that
    come with log probabilities instead of counts: the largest is 2**53 unless the total would
    then pass 2**62, and every count is at least 1. Scores too far apart for float64 give the
    lower ones count 1, without a warning."""
    s = np.asarray(scores, dtype=np.float64)
    with np.errstate(all="ignore"):
        weights = np.exp(s - s.max())  # in [0, 1], the largest 1
    scale = min(2.0**53, (2.0**62 - len(s)) / float(weights.sum()))
    return np.maximum(1, np.rint(weights * scale)).astype(np.int64)


def validate_pieces(pieces: list[bytes], counts: np.ndarray, name: str = "model") -> None:
    if len(pieces) != len(counts):
        raise ModelFormatError(f"{name}: {len(pieces)} pieces but {len(counts)} counts")
    if not all(isinstance(p, bytes) and p for p in pieces):
        raise ModelFormatError(f"{name}: every piece must be a non-empty bytes object")
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

