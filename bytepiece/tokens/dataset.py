"""``TokenDataset``: the shards of an encoded corpus as one memory-mapped token stream.

What a training loop needs from ``bytepiece encode --format bin -o out/corpus``: the total
number of tokens, document ``i``, any contiguous window of the concatenated tokens (across
shard boundaries), and random training windows in the nanoGPT style. Nothing is read into
memory: shards are memory-mapped when first touched (at most ``max_open`` at a time, so a corpus
of thousands of shards does not run out of file descriptors).

Checks, cheapest first: opening reads the manifest, refuses shard paths outside its directory
and compares every file's size with the manifest (one ``stat`` each); the first access to a
shard compares its probe hashes (three small reads per file) and checks every offset of its
index (non-decreasing, from 0 to its token count); ``verify=True`` (or
:meth:`TokenDataset.verify`) hashes every byte and checks every id against the vocabulary.
Every file is opened through :func:`bytepiece.io.read.open_regular` and mapped from that same
descriptor: a FIFO or device in place of a shard is refused, never waited on.

A dataset pickles as its path and options (``max_open``), so it can go to the worker processes
of a data loader that starts them with ``spawn``; unpickling opens it again and refuses a
manifest that changed meanwhile (full verification is not repeated: the probe hashes and index
checks still run when a shard is first used).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..io.read import check_regular, map_array, open_regular
from ..errors import InputError, ModelFormatError
from ..model import content_sha256
from . import megatron
from .formats import token_file_kind
from .binfile import check_ids, check_offsets, map_index, meta_path, open_bin, read_meta
from .manifest import (
    MANIFEST_SUFFIX,
    Manifest,
    ShardEntry,
    manifest_path,
    probe_sha256_of,
    read_manifest,
    resolve_inside,
)

DEFAULT_MAX_OPEN = 64
_HASH_CHUNK = 1 << 22


class TokenDataset:
    """An encoded corpus: ``path`` is its manifest, its prefix (``out/corpus``), a directory
    holding exactly one manifest, or a single token file (``corpus.bin``).

    >>> ds = TokenDataset("out/corpus")                     # doctest: +SKIP
    >>> ds.n_tokens, len(ds), ds.document(0)[:5]            # doctest: +SKIP
    >>> x, y = ds.windows(8, 1024, seed=0)                  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, verify: bool = False, model: Any = None,
                 max_open: int = DEFAULT_MAX_OPEN) -> None:
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
            raise InputError(f"max_open must be a positive integer, got {max_open!r}")
        self.path, self.manifest = _locate(Path(path))
        self.directory = self.path.parent
        self.single_file = not self.path.name.endswith(MANIFEST_SUFFIX)
        self.dtype = np.dtype(self.manifest.dtype).newbyteorder("<")
        self.vocab_size = self.manifest.vocab_size
        self.shards: list[ShardEntry] = self.manifest.shards
        self._paths = [(resolve_inside(self.directory, s.file, str(self.path)),
                        resolve_inside(self.directory, s.index_file(self.manifest.layout), str(self.path)))
                       for s in self.shards]
        self.token_starts = np.zeros(len(self.shards) + 1, dtype=np.int64)
        np.cumsum([s.n_tokens for s in self.shards], out=self.token_starts[1:])
        self.document_starts = np.zeros(len(self.shards) + 1, dtype=np.int64)
        np.cumsum([s.n_documents for s in self.shards], out=self.document_starts[1:])
        self._check_sizes()
        self._open: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._checked: set[int] = set()
        self._lock = threading.Lock()
        self.max_open = max_open
        if model is not None:
            self.check_model(model)
        if verify:
            self.verify()

    # -- sizes and identity ---------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return int(self.token_starts[-1])

    @property
    def n_documents(self) -> int:
        return int(self.document_starts[-1])

    def __len__(self) -> int:
        return self.n_documents

    def __repr__(self) -> str:
        return (f"TokenDataset({str(self.path)!r}, n_tokens={self.n_tokens:,}, n_documents={self.n_documents:,}, "
                f"shards={len(self.shards)}, dtype={self.dtype.name})")

    def check_model(self, model: Any) -> None:
        """Refuse a model other than the one the corpus was encoded with (content hash)."""
        from ..model import Model, load_model

        expected = self.manifest.model.get("sha256")
        if not expected:
            return
        found = getattr(model, "model_sha256", None)  # a Tokenizer's, computed once
        if not isinstance(found, str):
            found = content_sha256(model if isinstance(model, Model) else load_model(model))
        if found != expected:
            raise ModelFormatError(f"{self.path} was encoded with another model (sha256 {expected[:12]}...); "
                                   "decode it with the model named in its manifest")

    def _check_sizes(self) -> None:
        for entry, (bin_path, idx_path) in zip(self.shards, self._paths):
            index_bytes = (megatron.HEADER.size + entry.n_documents * 12 + (entry.n_documents + 1) * 8
                           if self.manifest.layout == "megatron" else (entry.n_documents + 1) * 8)
            for file, expected in ((bin_path, entry.n_tokens * self.dtype.itemsize), (idx_path, index_bytes)):
                try:
                    st = file.stat()
                except FileNotFoundError:
                    raise ModelFormatError(f"{file} is missing (listed in {self.path}); the corpus is incomplete") from None
                check_regular(st, file, what="shard file", error=ModelFormatError)
                self._check_size(file, st.st_size, expected)

    def _check_size(self, file: Path, size: int, expected: int) -> None:
        if size != expected:
            if self.single_file:  # its sidecar gave the expected size
                raise ModelFormatError(f"{file} has {size:,} bytes but its sidecar {meta_path(self.path).name} "
                                       f"records {expected:,}: the file is truncated or does not belong with it; "
                                       "re-encode it")
            raise ModelFormatError(f"{file} has {size:,} bytes but {self.path.name} expects {expected:,}: "
                                   "the file does not belong to this corpus; re-encode it")

    def verify(self) -> None:
        """Hash every shard file completely and compare with the manifest, check every offset,
        and every id against the vocabulary (a single token file: its offsets and ids)."""
        if self.single_file:
            open_bin(self._paths[0][0], verify=True)
            return
        for k, (entry, (bin_path, idx_path)) in enumerate(zip(self.shards, self._paths)):
            self._check_hash(bin_path, entry.sha256, self.dtype)
            self._check_hash(idx_path, entry.index_sha256)
            self._shard(k)  # maps it and checks every offset

    def _check_hash(self, file: Path, expected: str, ids: np.dtype | None = None) -> None:
        """Hash ``file`` in blocks (constant memory) and, for token ids (``ids`` their dtype),
        check each block's ids against the vocabulary on the way (one read; a changed file is
        reported as such before any bad id in it)."""
        h = hashlib.sha256()
        done = 0
        bad_id: ModelFormatError | None = None
        f, _ = open_regular(file, what="shard file", error=ModelFormatError)
        with f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
                if ids is not None and bad_id is None:
                    try:
                        check_ids(np.frombuffer(chunk, ids, count=len(chunk) // ids.itemsize), self.vocab_size, file,
                                  first=done // ids.itemsize)
                    except ModelFormatError as e:
                        bad_id = e
                done += len(chunk)
        if h.hexdigest() != expected:
            raise ModelFormatError(f"{file} does not match the sha256 in {self.path.name}: it was modified or "
                                   "replaced; re-encode the corpus")
        if bad_id is not None:
            raise bad_id

    # -- shards ---------------------------------------------------------------------------------
    def _shard(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, offsets) of shard ``k``, memory-mapped on first use."""
        with self._lock:
            arrays = self._open.get(k)
            if arrays is not None:
                self._open.move_to_end(k)
                return arrays
            arrays = self._map(k)
            self._open[k] = arrays
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
            return arrays

    def _map(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        entry = self.shards[k]
        bin_path, idx_path = self._paths[k]
        if self.single_file:
            return open_bin(bin_path)
        first = k not in self._checked
        tokens = self._map_file(bin_path, self.dtype, entry.n_tokens, entry.probe_sha256 if first else None)
        if self.manifest.layout == "megatron":
            if first:
                self._probe(idx_path, entry.index_probe_sha256)
            offsets = map_index(idx_path, "megatron", entry.n_documents, entry.n_tokens, self.dtype,
                                listed_in=self.path)
        else:
            offsets = self._map_file(idx_path, np.dtype("<i8"), entry.n_documents + 1,
                                     entry.index_probe_sha256 if first else None)
            if first:
                check_offsets(offsets, entry.n_tokens, idx_path)
        self._checked.add(k)
        return tokens, offsets

    def _probe(self, file: Path, probe: str) -> None:
        f, st = open_regular(file, what="shard file", error=ModelFormatError)
        with f:
            if probe_sha256_of(f, st.st_size) != probe:
                raise ModelFormatError(f"{file} does not match {self.path.name} (probe hash): it was modified or "
                                       "replaced; re-encode the corpus")

    def _map_file(self, file: Path, dtype: np.dtype, count: int, probe: str | None) -> np.ndarray:
        """``file`` mapped from the descriptor whose type, size and (when ``probe`` is given)
        probe hash were checked."""
        f, st = open_regular(file, what="shard file", error=ModelFormatError)
        with f:
            self._check_size(file, st.st_size, count * dtype.itemsize)
            if probe is not None and probe_sha256_of(f, st.st_size) != probe:
                raise ModelFormatError(f"{file} does not match {self.path.name} (probe hash): it was modified or "
                                       "replaced; re-encode the corpus")
            return map_array(f, dtype, count=count)

    def close(self) -> None:
        """Drop the memory maps (arrays already handed out stay valid)."""
        with self._lock:
            self._open.clear()

    def __getstate__(self) -> dict[str, Any]:
        """Path and options only: memory maps and the lock stay in this process."""
        return {"path": os.path.abspath(self.path), "max_open": self.max_open, "identity": self._identity()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], max_open=state["max_open"])  # type: ignore[misc]
        if self._identity() != state["identity"]:
            raise ModelFormatError(f"{self.path} changed since this dataset was pickled; open it again")

    def _identity(self) -> str:
        return hashlib.sha256(self.manifest.to_json().encode("utf-8")).hexdigest()

    def __enter__(self) -> TokenDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- documents ------------------------------------------------------------------------------
    def document(self, i: int) -> npt.NDArray[np.unsignedinteger]:
        """The tokens of document ``i`` (negative counts from the end): a read-only view."""
        n = self.n_documents
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise InputError(f"document index must be an integer, got {i!r}")
        if not -n <= i < n:
            raise IndexError(f"document {i} is out of range (the corpus has {n:,})")
        i = int(i) % n
        k = int(np.searchsorted(self.document_starts, i, side="right")) - 1
        tokens, offsets = self._shard(k)
        j = i - int(self.document_starts[k])
        return tokens[int(offsets[j]):int(offsets[j + 1])]

    def __getitem__(self, i: int) -> npt.NDArray[np.unsignedinteger]:
        return self.document(i)

    def documents(self, start: int = 0, stop: int | None = None) -> Iterator[npt.NDArray[np.unsignedinteger]]:
        """Documents ``start..stop-1`` in order, shard by shard; the bounds work as a slice's
        (``documents(-5)``: the last five)."""
        _check_integer(start, "start")
        if stop is not None:
            _check_integer(stop, "stop")
        i, stop, _ = slice(int(start), None if stop is None else int(stop)).indices(self.n_documents)
        return self._documents(i, stop)

    def _documents(self, i: int, stop: int) -> Iterator[npt.NDArray[np.unsignedinteger]]:
        while i < stop:
            k = int(np.searchsorted(self.document_starts, i, side="right")) - 1
            tokens, offsets = self._shard(k)
            base = int(self.document_starts[k])
            end = min(stop, int(self.document_starts[k + 1]))
            bounds = offsets[i - base:end - base + 1].tolist()
            for a, b in zip(bounds[:-1], bounds[1:]):
                yield tokens[a:b]
            i = end

    def batches(self, max_tokens: int = 1 << 20) -> Iterator[tuple[npt.NDArray[np.unsignedinteger], npt.NDArray[np.int64]]]:
        """Every document in order, in batches of whole documents of about ``max_tokens`` tokens
        (a longer document is a batch of its own): ``(tokens, offsets)`` with ``offsets`` from 0."""
        _check_integer(max_tokens, "max_tokens")
        if max_tokens < 1:
            raise InputError(f"max_tokens must be a positive number of tokens, got {max_tokens!r}")
        return self._batches(int(max_tokens))

    def _batches(self, max_tokens: int) -> Iterator[tuple[npt.NDArray[np.unsignedinteger], npt.NDArray[np.int64]]]:
        for k in range(len(self.shards)):
            if not self.shards[k].n_documents:
                continue
            tokens, offsets = self._shard(k)
            for start, stop in batch_bounds(offsets, max_tokens):
                a, b = int(offsets[start]), int(offsets[stop])
                yield tokens[a:b], np.asarray(offsets[start:stop + 1], dtype=np.int64) - a

    # -- the token stream -------------------------------------------------------------------------
    def tokens(self, start: int, stop: int) -> npt.NDArray[np.unsignedinteger]:
        """Tokens ``start..stop-1`` of all documents concatenated in corpus order: a view when
        they lie in one shard, a copy when the window crosses shard boundaries."""
        _check_integer(start, "start")
        _check_integer(stop, "stop")
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n_tokens:
            raise IndexError(f"token window [{start}, {stop}) is outside the corpus (0..{self.n_tokens:,})")
        k = int(np.searchsorted(self.token_starts, start, side="right")) - 1
        pieces = []
        pos = start
        while pos < stop:
            while self.token_starts[k + 1] <= pos:  # skip empty shards
                k += 1
            tokens, _ = self._shard(k)
            base = int(self.token_starts[k])
            end = min(stop, int(self.token_starts[k + 1]))
            pieces.append(tokens[pos - base:end - base])
            pos = end
            k += 1
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.zeros(0, self.dtype)

    def windows(self, batch_size: int, length: int, *, seed: int | np.random.Generator | None = None
                ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``batch_size`` random training windows: inputs ``x`` and next-token targets ``y``
        (``y[b] == x[b]`` shifted by one), each ``(batch_size, length)`` int64, starting at
        positions drawn uniformly from the whole token stream (windows cross documents and shards)."""
        rng = self._window_rng(batch_size, length, seed)
        return self._windows_at(rng.integers(0, self.n_tokens - length, size=batch_size), length)

    def epoch_windows(self, batch_size: int, length: int, *, seed: int | np.random.Generator | None = None
                      ) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
        """One pass over the token stream in training batches: the stream cut into consecutive
        windows of ``length`` inputs (each window's last target is the next window's first
        input), from a random offset below ``length``, shuffled and grouped ``batch_size`` at a
        time; a last partial batch is left out. Unlike :meth:`windows`, which draws starts with
        replacement and so leaves about a third of the tokens unread in as many windows as cover
        the stream once, every token but those of the offset and the partial batch is read once."""
        rng = self._window_rng(batch_size, length, seed)
        offset = int(rng.integers(0, min(length, self.n_tokens - length)))
        starts = offset + length * np.arange((self.n_tokens - 1 - offset) // length, dtype=np.int64)
        rng.shuffle(starts)
        for lo in range(0, len(starts) - batch_size + 1, batch_size):
            yield self._windows_at(starts[lo: lo + batch_size], length)

    def _window_rng(self, batch_size: int, length: int, seed: int | np.random.Generator | None
                    ) -> np.random.Generator:
        for name, value in (("batch_size", batch_size), ("length", length)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if self.n_tokens < length + 1:
            raise InputError(f"windows of {length} tokens need at least {length + 1} tokens; the corpus has {self.n_tokens}")
        return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def _windows_at(self, starts: npt.NDArray[np.int64], length: int
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Inputs and targets of the windows of ``length`` inputs that start at ``starts``."""
        block = np.empty((len(starts), length + 1), dtype=np.int64)
        for row, s in enumerate(starts.tolist()):
            block[row] = self.tokens(s, s + length + 1)
        return block[:, :-1], block[:, 1:]


def batch_bounds(offsets: npt.NDArray[np.integer], max_tokens: int) -> Iterator[tuple[int, int]]:
    """``(first, stop)`` document ranges of about ``max_tokens`` tokens each (at least one
    document each), covering every document of ``offsets`` in order."""
    n = len(offsets) - 1
    start = 0
    while start < n:
        limit = int(offsets[start]) + max_tokens
        stop = int(np.searchsorted(offsets, limit, side="right")) - 1
        stop = min(n, max(stop, start + 1))
        yield start, stop
        start = stop


def _locate(path: Path) -> tuple[Path, Manifest]:
    """(manifest or token file path, manifest) for the forms ``TokenDataset`` accepts."""
    kind = token_file_kind(path)
    if kind == "bin":
        return path, _single_file_manifest(path)
    if kind == "npy":
        raise ModelFormatError(f"{path} is an .npy token file, which TokenDataset does not read (it reads .bin files "
                               "and sharded corpora); load it with numpy.load(path, mmap_mode='r')")
    candidates = [path] if path.name.endswith(MANIFEST_SUFFIX) else [manifest_path(path)]
    if path.is_dir():
        candidates = sorted(path.glob("*" + MANIFEST_SUFFIX))
        if len(candidates) != 1:
            what = "no manifest" if not candidates else f"{len(candidates)} manifests ({', '.join(c.name for c in candidates[:4])})"
            raise ModelFormatError(f"{path} holds {what}; pass the manifest (or the corpus prefix) itself")
    manifest = candidates[0]
    if not os.path.lexists(manifest):
        raise ModelFormatError(f"no encoded corpus at {path}: {manifest} does not exist (an interrupted encoding "
                               "leaves no manifest; encode again)")
    return manifest, read_manifest(manifest)


def _single_file_manifest(path: Path) -> Manifest:
    """A one-shard manifest for a single token file (checked by its sidecar, no hashes)."""
    meta = read_meta(path)
    try:
        entry = ShardEntry(path.name, int(meta["n_tokens"]), int(meta["n_documents"]), "", "", "", "")
        return Manifest(np.dtype(meta["dtype"]).name, int(meta["vocab_size"]), [entry], model=meta.get("model") or {},
                        layout=meta["layout"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(f"{path}.json is not a complete token file sidecar ({e})") from None


def _check_integer(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
