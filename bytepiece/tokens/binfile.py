"""Binary token files for LM training pipelines, in two layouts that share everything but the
index: ``bytepiece encode --format bin`` (the bytepiece layout, below) and ``--format megatron``
(Megatron's indexed dataset, :mod:`.megatron`: ``corpus.bin`` + ``corpus.idx``, tokens in the
dtype Megatron picks, with the same ``corpus.bin.json`` sidecar beside them).

The bytepiece layout of ``corpus.bin`` (the name is free):

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
    sha256 of the model's pieces and counts, ``bytepiece.model.content_sha256``; the model file's sha256
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

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError, ModelFormatError
from ..io import atomic
from ..io.read import map_array, open_regular, read_limited
from ..model import content_sha256, file_sha256
from ..vocab import token_dtype
from . import megatron

FORMAT = "bytepiece-bin"
VERSION = 1
INDEX_SUFFIX = ".idx"
META_SUFFIX = ".json"
#: the index layouts, and the sidecar format that names each
LAYOUTS = {"bytepiece": FORMAT, "megatron": "bytepiece-megatron"}
_LAYOUT_OF = {v: k for k, v in LAYOUTS.items()}
#: the dtypes each layout may hold
_DTYPES = {"bytepiece": ("uint16", "uint32"), "megatron": ("uint16", "int32")}


def index_path(path: str | os.PathLike, layout: str = "bytepiece") -> Path:
    """The index beside a token file: ``corpus.bin.idx`` (bytepiece) or ``corpus.idx`` (Megatron)."""
    if layout == "megatron":
        return megatron.index_path(path)
    return Path(str(path) + INDEX_SUFFIX)


def layout_dtype(layout: str, vocab_size: int) -> np.dtype:
    """The token dtype of a layout for a vocabulary."""
    token_dtype(vocab_size)  # checks the size
    return megatron.megatron_dtype(vocab_size) if layout == "megatron" else token_dtype(vocab_size)


def meta_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + META_SUFFIX)


class BinWriter(atomic.StagedWriter):
    """Stream token ids into ``path`` (+ its index and ``.json`` sidecar), atomically.

    ``tokenizer`` gives the vocabulary size (hence the dtype) and the model hash; without one,
    pass ``vocab_size``. ``model_path`` adds the model file's sha256 to the sidecar.
    ``metadata`` (JSON-serializable) is stored in the sidecar under ``"metadata"``.
    :class:`MegatronWriter` writes Megatron's layout the same way.

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
            raise InputError(f"{type(self).__name__} needs a tokenizer or a vocab_size (to choose the token dtype)")
        self.vocab_size = int(vocab_size)
        self.dtype = layout_dtype(self.layout, self.vocab_size)
        self.index_path = index_path(self.path, self.layout)
        if self.path.is_dir():
            raise InputError(f"{self.path} is a directory; give a file name such as {self.path / 'corpus.bin'}")
        if atomic.is_stream(self.path):
            raise InputError(f"{self.path} is a device or FIFO; a token file needs a regular file path "
                             f"(its {INDEX_SUFFIX} and {META_SUFFIX} files go beside it)")
        self.n_tokens = 0
        self.n_documents = 0
        self._model_info: dict[str, Any] = {}
        if tokenizer is not None:
            self._model_info["sha256"] = getattr(tokenizer, "model_sha256", None) or content_sha256(tokenizer.model)
            self._model_info["normalization"] = getattr(tokenizer, "normalization", None)
        if model_path is not None:
            self._model_info["file"] = Path(model_path).name
            if Path(model_path).is_file():  # a FIFO model was consumed when it was loaded
                self._model_info["file_sha256"] = file_sha256(model_path)
        self._metadata = dict(metadata or {})
        json.dumps(self._metadata)  # fail now, not after hours of encoding
        # The three files are one atomic set: a kill at any moment leaves the old set or the new.
        self._closed = True
        atomic.check_writable([self.path, self.index_path, meta_path(self.path)], overwrite=overwrite)
        self._out = atomic.OutputSet(overwrite=overwrite)
        self._bin = self._out.open(self.path, "wb")
        self._start_index()
        self._closed = False

    layout = "bytepiece"

    def _start_index(self) -> None:
        self._idx = self._out.open(self.index_path, "wb")
        self._idx.write(np.zeros(1, dtype="<i8").tobytes())

    def _index(self, offsets: npt.NDArray[np.int64]) -> None:
        """Record a batch's document boundaries (``offsets`` relative to the batch)."""
        self._idx.write((offsets[1:] + self.n_tokens).astype("<i8").tobytes())

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
            lo, hi = (int(ids.min()) if ids.dtype.kind == "i" else 0), int(ids.max())
            if lo < 0 or hi >= self.vocab_size:
                bad = lo if lo < 0 else hi
                raise InputError(f"token id {bad} is outside the vocabulary (0..{self.vocab_size - 1})")
        self._bin.write(np.ascontiguousarray(ids, dtype=self.dtype).data)  # the array's bytes, not a copy
        self._index(offsets)
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
            "format": LAYOUTS[self.layout],
            "version": VERSION,
            "dtype": self.dtype.name,
            "byteorder": "little",
            "vocab_size": self.vocab_size,
            "n_tokens": self.n_tokens,
            "n_documents": self.n_documents,
            "index": {"file": self.index_path.name, "dtype": "int64", "entries": self.n_documents + 1},
            "model": self._model_info,
            "metadata": self._metadata,
        }

    def _finish(self) -> None:
        """The sidecar, last: it is what says the set is complete."""
        self._out.write(meta_path(self.path), json.dumps(self.sidecar(), indent=2))

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"{type(self).__name__} for {self.path} is already closed")


class MegatronWriter(BinWriter):
    """:class:`BinWriter` for Megatron's layout: ``PREFIX.bin`` (in Megatron's dtype),
    ``PREFIX.idx`` (see :mod:`.megatron`), and the same sidecar, ``PREFIX.bin.json``."""

    layout = "megatron"

    def _start_index(self) -> None:
        self._lengths = megatron.IndexBuilder(self.dtype, self.path.parent)

    def _index(self, offsets: npt.NDArray[np.int64]) -> None:
        self._lengths.add(np.diff(offsets))

    def _finish(self) -> None:
        try:
            with self._out.open(self.index_path, "wb") as f:
                self._lengths.write(f)
        finally:
            self._lengths.close()
        super()._finish()

    def abort(self) -> None:
        lengths = getattr(self, "_lengths", None)
        if lengths is not None:
            lengths.close()
        super().abort()


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
    if not isinstance(meta, dict) or meta.get("format") not in _LAYOUT_OF:
        raise ModelFormatError(f"{side} is not a bytepiece token file sidecar")
    meta["layout"] = _LAYOUT_OF[meta["format"]]
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

    allowed = _DTYPES[meta["layout"]]
    if meta.get("dtype") not in allowed:
        raise bad("dtype", " or ".join(map(repr, allowed)))
    if meta.get("byteorder", "little") != "little":
        raise bad("byteorder", "'little'")
    limit = {"uint16": 1 << 16, "uint32": 1 << 32, "int32": 1 << 31}[meta["dtype"]]
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
    offsets = map_index(idx, meta["layout"], n_docs, n_tokens, dtype, listed_in=meta_path(path))
    if verify:
        check_ids(tokens, meta["vocab_size"], path)
    return tokens, offsets


def map_index(idx: Path, layout: str, n_documents: int, n_tokens: int, dtype: np.dtype, *,
              listed_in: Path) -> Any:
    """The document offsets of a token file from its index, checked: ``n_documents + 1``
    offsets from 0 to ``n_tokens``, never decreasing; for Megatron's layout, an index of that
    many documents, in ``dtype``, whose sequences fill the tokens exactly."""
    if layout == "megatron":
        if not os.path.lexists(idx):
            raise ModelFormatError(f"{idx} is missing (listed in {listed_in})")
        index = megatron.MegatronIndex(idx)
        if index.dtype != dtype or index.n_documents != n_documents or index.n_sequences != n_documents:
            raise ModelFormatError(f"{idx} ({index.n_documents} documents of {index.dtype.name}) does not index the "
                                   f"{n_documents} documents of {dtype.name} that {listed_in.name} lists; re-encode")
        index.check(n_tokens * dtype.itemsize)
        offsets: Any = index.offsets
    else:
        offsets = map_exact(idx, np.dtype("<i8"), n_documents + 1, what="token index", listed_in=listed_in)
    check_offsets(offsets, n_tokens, idx)
    return offsets


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
