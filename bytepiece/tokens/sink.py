"""Where a task's tokens go: one or more shard files in the run's staging directory.

A task (one range of the input) writes its documents, in order, into ``part-TTTTT-KKK.bin``
files of the single-file bin layout (:class:`~bytepiece.tokens.binfile.BinWriter`), starting a
new part when the next document would take the current one past the shard limit. Part names
depend only on the task and the limit, so a task that Dask retries rewrites the same files, and
the client renames the parts into their final names (``corpus-00000.bin``, ...) in corpus order
once every task has finished.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .binfile import BinWriter, MegatronWriter, index_path
from .manifest import ShardEntry, file_sha256, probe_sha256


class ShardSink:
    """Documents in, shard parts out; ``limit`` tokens per part (``None``: one part)."""

    def __init__(self, directory: Path, task_index: int, tokenizer: Any, *, limit: int | None,
                 metadata: dict[str, Any], layout: str = "bytepiece") -> None:
        self.directory = directory
        self.layout = layout
        self.task_index = task_index
        self.tokenizer = tokenizer
        self.limit = limit
        self.metadata = metadata
        self.dtype: np.dtype | None = None
        self.parts: list[ShardEntry] = []  # ``file``: the part's name in the staging directory
        self._writer: BinWriter | None = None
        self._hash = hashlib.sha256()

    def _open(self) -> BinWriter:
        name = f"part-{self.task_index:05d}-{len(self.parts):03d}.bin"
        kind = MegatronWriter if self.layout == "megatron" else BinWriter
        writer = kind(self.directory / name, self.tokenizer, metadata=self.metadata)
        self.dtype = writer.dtype
        self._hash = hashlib.sha256()
        self._writer = writer
        return writer

    def write(self, ids: npt.NDArray[np.integer], offsets: npt.NDArray[np.int64]) -> None:
        """Append documents ``ids[offsets[i]:offsets[i + 1]]``."""
        n_docs = len(offsets) - 1
        first = 0
        while first < n_docs:
            writer = self._writer or self._open()
            if self.limit is None:
                last = n_docs
            else:
                room = self.limit - writer.n_tokens
                # documents first..last-1 fit in the room left; one that does not starts a new
                # part, unless the part is empty (a document longer than the limit stays whole)
                last = int(np.searchsorted(offsets, offsets[first] + room, side="right")) - 1
                if last <= first:
                    if writer.n_tokens:
                        self._finish()
                        continue
                    last = first + 1
            lo, hi = int(offsets[first]), int(offsets[last])
            chunk = np.ascontiguousarray(ids[lo:hi], dtype=writer.dtype)
            writer.write(chunk, offsets[first:last + 1] - lo)
            self._hash.update(chunk.data)
            first = last
            if self.limit is not None and writer.n_tokens >= self.limit:
                self._finish()

    def _finish(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        path = writer.close()
        idx = index_path(path, self.layout)
        self.parts.append(ShardEntry(path.name, writer.n_tokens, writer.n_documents, self._hash.hexdigest(),
                                     file_sha256(idx), probe_sha256(path), probe_sha256(idx)))

    def close(self) -> list[ShardEntry]:
        """Finish the current part; the parts written, in order (none for a task without
        documents, unless ``keep_empty`` was called)."""
        self._finish()
        return self.parts

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
