"""Flat binary token files for LM training pipelines (``bytepiece encode --format bin``).

Layout of ``corpus.bin`` (the name is free):

``corpus.bin``
    all token ids of all documents, concatenated, little-endian ``uint16`` when the vocabulary
    has at most 65,536 ids, else ``uint32``; no header, so ``np.memmap(path, dtype)`` is the
    whole array.
``corpus.bin.idx``
    ``n_documents + 1`` little-endian ``int64`` token offsets: document ``i`` is
    ``tokens[idx[i]:idx[i + 1]]`` (``idx[0] == 0``, ``idx[-1] == n_tokens``). Always a separate
    file, so the index of a billion-document corpus is memory-mapped too, never parsed.
``corpus.bin.json``
    the sidecar: ``format``, ``version``, ``dtype``, ``byteorder``, ``vocab_size``,
    ``n_tokens``, ``n_documents``, ``index`` (file name, dtype, entries), ``model`` (content
    sha256 of the model's pieces and counts, see :func:`model_sha256`; the model file's sha256
    too when the writer was given its path; normalization), plus any caller ``metadata``
    (e.g. ``add_eos``). A ``.bin`` without its ``.json`` is incomplete.

Streaming and atomicity: :class:`BinWriter` appends each batch to temporary files in the
target directory and keeps only counters in memory (memory use is one batch, whatever the
corpus size). ``close()`` commits the three files as one :class:`bytepiece.io.atomic.OutputSet`
(an error or a kill at any point leaves the old set or the new one, never a mix); an exception
inside the ``with`` block, or ``abort()``, removes them and leaves any previous output untouched.

Reading: ``tokens, offsets = open_bin("corpus.bin")`` (two read-only memmaps, checked against
the sidecar, whose index must be a file beside the token file, and every offset checked);
``verify=True`` also checks every id.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..io import atomic
from ..io.read import map_array, open_regular, read_limited
from ..errors import InputError, ModelFormatError
from ..model import file_sha256

FORMAT = "bytepiece-bin"
VERSION = 1
INDEX_SUFFIX = ".idx"
META_SUFFIX = ".json"


def index_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + INDEX_SUFFIX)


def meta_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + META_SUFFIX)


def token_dtype(vocab_size: int) -> np.dtype:
    """``<u2`` when every id fits in 16 bits (vocab_size <= 65536), else ``<u4``."""
    if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise InputError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if vocab_size > 1 << 32:
        raise InputError(f"vocab_size {vocab_size} does not fit in uint32 token ids")
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def model_sha256(model) -> str:
    """sha256 of a model's content (pieces and counts in id order), independent of how the
    JSON file was formatted: for each piece, its length (uint32 LE), its bytes and its count
    (int64 LE)."""
    h = hashlib.sha256()
    counts = np.asarray(model.counts, dtype="<i8")
    for piece, count in zip(model.pieces, counts.tolist()):
        h.update(len(piece).to_bytes(4, "little"))
        h.update(piece)
        h.update(int(count).to_bytes(8, "little", signed=True))
    return h.hexdigest()


class BinWriter(atomic.StagedWriter):
    """Stream token ids into ``path`` (+ ``.idx`` and ``.json``), atomically.

    ``tokenizer`` gives the vocabulary size (hence the dtype) and the model hash; without one,
    pass ``vocab_size``. ``model_path`` adds the model file's sha256 to the sidecar.
    ``metadata`` (JSON-serializable) is stored in the sidecar under ``"metadata"``.

    >>> with BinWriter("corpus.bin", tok) as w:                      # doctest: +SKIP
    ...     for batch in batches:
    ...         w.write(*tok.encode_batch(batch, add_eos=True, return_flat=True))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        tokenizer=None,
        *,
        vocab_size: int | None = None,
        model_path: str | os.PathLike | None = None,
        metadata: dict[str, Any] | None = None,
        overwrite: bool = True,
    ) -> None:
        self.path = Path(path)
        if tokenizer is not None:
            vocab_size = tokenizer.vocab_size
        elif vocab_size is None:
            raise InputError("BinWriter needs a tokenizer or a vocab_size (to choose uint16 or uint32)")
        self.vocab_size = int(vocab_size)
        self.dtype = token_dtype(self.vocab_size)
        if self.path.is_dir():
            raise InputError(f"{self.path} is a directory; give a file name such as {self.path / 'corpus.bin'}")
        if atomic.is_stream(self.path):
            raise InputError(f"{self.path} is a device or FIFO; a token file needs a regular file path "
                             f"(its {INDEX_SUFFIX} and {META_SUFFIX} files go beside it)")
        self.n_tokens = 0
        self.n_documents = 0
        self._model_info: dict[str, Any] = {}
        if tokenizer is not None:
            self._model_info["sha256"] = model_sha256(tokenizer.model)
            self._model_info["normalization"] = getattr(tokenizer, "normalization", None)
        if model_path is not None:
            self._model_info["file"] = Path(model_path).name
            if Path(model_path).is_file():  # a FIFO model was consumed when it was loaded
                self._model_info["file_sha256"] = file_sha256(model_path)
        self._metadata = dict(metadata or {})
        json.dumps(self._metadata)  # fail now, not after hours of encoding
        # The three files are one atomic set: a kill at any moment leaves the old set or the new.
        self._closed = True
        atomic.check_writable([self.path, index_path(self.path), meta_path(self.path)], overwrite=overwrite)
        self._out = atomic.OutputSet(overwrite=overwrite)
        self._bin = self._out.open(self.path, "wb")
        self._idx = self._out.open(index_path(self.path), "wb")
        self._idx.write(np.zeros(1, dtype="<i8").tobytes())
        self._closed = False

    # -- writing ----------------------------------------------------------------------------
    def write(self, ids: npt.ArrayLike, offsets: npt.ArrayLike | None = None) -> None:
        """Append documents: ``ids`` is the flat id array of a batch and ``offsets`` its
        ``n + 1`` document boundaries (exactly what ``Tokenizer.encode_batch(...,
        return_flat=True)`` returns). Without ``offsets``, ``ids`` is one document."""
        self._check_open()
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise InputError(f"ids must be a flat 1-d array, got shape {ids.shape}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"ids must be integers, got dtype {ids.dtype}")
        offsets = np.array([0, len(ids)], dtype=np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids):
            raise InputError(
                f"offsets must start at 0 and end at len(ids)={len(ids)} (as returned by encode_batch(..., "
                f"return_flat=True)); got {offsets[:3].tolist()}...{offsets[-1:].tolist()}"
            )
        if len(offsets) > 1 and np.any(np.diff(offsets) < 0):
            raise InputError("offsets must be non-decreasing")
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= self.vocab_size:
                bad = lo if lo < 0 else hi
                raise InputError(f"token id {bad} is outside the vocabulary (0..{self.vocab_size - 1})")
        self._bin.write(ids.astype(self.dtype, copy=False).tobytes())
        self._idx.write((offsets[1:] + self.n_tokens).astype("<i8").tobytes())
        self.n_tokens += len(ids)
        self.n_documents += len(offsets) - 1

    def write_document(self, ids: npt.ArrayLike) -> None:
        """Append one document's ids."""
        self.write(np.asarray(ids, dtype=np.int64))

    def write_documents(self, documents) -> None:
        """Append documents given as id lists (``encode_batch``'s default return value)."""
        lengths = [len(d) for d in documents]
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((i for d in documents for i in d), dtype=np.int64, count=int(offsets[-1]))
        self.write(flat, offsets)

    # -- finishing --------------------------------------------------------------------------
    def sidecar(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "dtype": self.dtype.name,
            "byteorder": "little",
            "vocab_size": self.vocab_size,
            "n_tokens": self.n_tokens,
            "n_documents": self.n_documents,
            "index": {"file": index_path(self.path).name, "dtype": "int64", "entries": self.n_documents + 1},
            "model": self._model_info,
            "metadata": self._metadata,
        }

    def _finish(self) -> None:
        """The sidecar, last: it is what says the set is complete."""
        self._out.write(meta_path(self.path), json.dumps(self.sidecar(), indent=2))

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"BinWriter for {self.path} is already closed")


MAX_SIDECAR_BYTES = 64 << 20
_VERIFY_CHUNK = 1 << 22


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The validated sidecar of ``path`` (``ModelFormatError`` if missing, malformed, or naming
    an index outside the token file's directory)."""
    side = meta_path(path)
    if not os.path.lexists(side):
        raise ModelFormatError(
            f"{side} is missing: {path} is incomplete (writing was interrupted) or not a bytepiece token file"
        )
    data = read_limited(side, limit=MAX_SIDECAR_BYTES, what="token file sidecar", error=ModelFormatError)
    try:
        meta = json.loads(data)
    except ValueError as e:
        raise ModelFormatError(f"{side} is not valid JSON ({e})") from None
    except RecursionError:
        raise ModelFormatError(f"{side} is not a {FORMAT} sidecar (JSON nested too deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f"{side} is not a {FORMAT} sidecar")
    version = meta.get("version", 0)
    if not _is_int(version) or version < 1:
        raise ModelFormatError(f"{side}: version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise ModelFormatError(f"{side} has format version {version}; upgrade bytepiece to read it")
    _check_fields(meta, side)
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(meta: dict[str, Any], side: Path) -> None:
    def bad(field: str, want: str) -> ModelFormatError:
        return ModelFormatError(f"{side}: {field} must be {want}, got {meta.get(field)!r}; the sidecar is damaged, "
                                "re-encode the corpus")

    if meta.get("dtype") not in ("uint16", "uint32"):
        raise bad("dtype", "'uint16' or 'uint32'")
    if meta.get("byteorder", "little") != "little":
        raise bad("byteorder", "'little'")
    limit = 1 << (16 if meta["dtype"] == "uint16" else 32)
    if not (_is_int(meta.get("vocab_size")) and 1 <= meta["vocab_size"] <= limit):
        raise bad("vocab_size", f"an integer from 1 to {limit} for {meta['dtype']} ids")
    for field in ("n_tokens", "n_documents"):
        if not (_is_int(meta.get(field)) and 0 <= meta[field] < 1 << 62):
            raise bad(field, "a non-negative integer")
    index = meta.get("index")
    if not isinstance(index, dict):
        raise bad("index", "an object with the index file name")
    name = index.get("file")
    if not (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and os.path.basename(name) == name):
        raise ModelFormatError(f"{side}: index file {name!r} must be a plain file name beside the token file "
                               "(no directories, no absolute path)")
    if index.get("dtype", "int64") != "int64":
        raise ModelFormatError(f"{side}: index dtype must be 'int64', got {index.get('dtype')!r}")
    entries = index.get("entries", meta["n_documents"] + 1)
    if entries != meta["n_documents"] + 1 or isinstance(entries, bool):
        raise ModelFormatError(f"{side}: index entries {entries!r} do not match n_documents + 1 = "
                               f"{meta['n_documents'] + 1}")


def open_bin(path: str | os.PathLike, *, verify: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens, offsets)`` of a token file: read-only memmaps (plain empty arrays for an
    empty corpus); document ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.

    The sidecar's fields, the sizes of both files and every offset (non-decreasing, from 0 to
    the number of tokens: a damaged index must not make documents overlap or read garbage) are
    always checked; ``verify=True`` also reads every id (below ``vocab_size``), which is what a
    file from an unknown source needs before it drives indexing in a training loop."""
    path = Path(path)
    meta = read_meta(path)
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    n_tokens, n_docs = meta["n_tokens"], meta["n_documents"]
    idx = path.parent / meta["index"]["file"]
    tokens = map_exact(path, dtype, n_tokens, what="token file", listed_in=meta_path(path))
    offsets = map_exact(idx, np.dtype("<i8"), n_docs + 1, what="token index", listed_in=meta_path(path))
    check_offsets(offsets, n_tokens, idx)
    if verify:
        check_ids(tokens, meta["vocab_size"], path)
    return tokens, offsets


def map_exact(path: Path, dtype: np.dtype, count: int, *, what: str, listed_in: Path) -> np.ndarray:
    """``count`` items of ``dtype``: the whole of the regular file ``path`` (read-only memmap,
    mapped from the descriptor whose size was checked), or ``ModelFormatError``."""
    expected = count * dtype.itemsize
    if not os.path.lexists(path):
        raise ModelFormatError(f"{path} is missing (listed in {listed_in})")
    f, st = open_regular(path, what=what, error=ModelFormatError)
    with f:
        if st.st_size != expected:
            raise ModelFormatError(f"{path} has {st.st_size} bytes but {listed_in.name} says {expected}: the files do "
                                   "not belong together; re-encode")
        return map_array(f, dtype, count=count)


def check_offsets(offsets: np.ndarray, n_tokens: int, where: Path) -> None:
    """Offsets start at 0, never decrease and end at ``n_tokens`` (so every document lies inside
    the token array and none overlaps another); read in blocks, in constant memory."""
    if not len(offsets) or offsets[0] != 0 or offsets[-1] != n_tokens:
        first, last = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (None, None)
        raise ModelFormatError(f"{where}: offsets must run from 0 to n_tokens = {n_tokens}, found {first} .. {last}; "
                               "the index is damaged, re-encode")
    for lo in range(0, len(offsets) - 1, _VERIFY_CHUNK):
        step = np.diff(np.asarray(offsets[lo : lo + _VERIFY_CHUNK + 1]))
        if step.size and step.min() < 0:
            i = lo + int(np.argmax(step < 0))
            raise ModelFormatError(f"{where}: offsets decrease at document {i} ({int(offsets[i])} -> "
                                   f"{int(offsets[i + 1])}); the index is damaged, re-encode")


def check_ids(tokens: np.ndarray, vocab_size: int, where: Path, *, first: int = 0) -> None:
    """Every id is below ``vocab_size`` (``tokens`` starts at token ``first`` of ``where``); read
    in blocks, in constant memory."""
    for lo in range(0, len(tokens), _VERIFY_CHUNK):
        chunk = np.asarray(tokens[lo : lo + _VERIFY_CHUNK])
        if chunk.size and int(chunk.max()) >= vocab_size:
            i = lo + int(np.argmax(chunk >= vocab_size))
            raise ModelFormatError(f"{where}: token {first + i} has id {int(tokens[i])}, outside the vocabulary "
                                   f"(0..{vocab_size - 1}); the file is damaged or from another model")
