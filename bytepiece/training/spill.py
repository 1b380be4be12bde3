"""Counts under a memory budget: sorted runs merged in memory and spilled to disk when they outgrow it.

A reducer adds the sorted runs that tasks return (:class:`KeyRun` for packed keys, :class:`PieceRun`
for byte strings ordered by hash) to a :class:`RunStore`. Runs of similar size are merged as they
arrive (a binary counter: every count is merged O(log n) times), and while the runs held exceed
the store's limit the largest one is written to the spill directory. At the end the key space is
cut into *partitions*, ranges of the runs' sort keys small enough to load (a range of hash values
is a hash partition of the pieces); each partition is read back from every run, merged and
handed to the caller, so no step ever holds more than a partition plus the runs kept in memory.

Temporary files live in one directory, created on the first spill and removed by
:meth:`SpillDir.close` on success, error and Ctrl-C alike (the CLI turns SIGTERM into the same
interruption); a full disk is a one-line error naming the directory. The directory's name
carries the host and pid of its process (``bytepiece-spill-<host>-<pid>-<random>``) and the
process holds a lock inside it, so a run that was killed outright (SIGKILL, power loss) is
recognised by the next run on that host, which removes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar, Union, cast

import numpy as np
import numpy.typing as npt

from ..errors import TrainingError
from ..kernels.runs import merge_counts, merge_pieces
from ..io.stale import SPILL_PREFIX, remove_stale_spills, run_dir


class KeyRun(NamedTuple):
    keys: npt.NDArray[np.uint64]  # strictly increasing
    counts: npt.NDArray[np.int64]

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.counts.nbytes

    @property
    def order(self) -> npt.NDArray[np.uint64]:
        return self.keys

    def merge(self, other: KeyRun) -> KeyRun:
        return KeyRun(*merge_counts(self.keys, self.counts, other.keys, other.counts))

    @property
    def size(self) -> int:
        """Number of distinct keys."""
        return len(self.keys)

    def slice(self, lo: int, hi: int) -> KeyRun:
        return KeyRun(self.keys[lo:hi], self.counts[lo:hi])

    @staticmethod
    def empty() -> KeyRun:
        return KeyRun(np.zeros(0, np.uint64), np.zeros(0, np.int64))


class PieceRun(NamedTuple):
    hashes: npt.NDArray[np.uint64]  # non-decreasing; equal hashes ordered by bytes
    counts: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]  # n + 1 offsets into arena
    arena: npt.NDArray[np.uint8]

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.counts.nbytes + self.offsets.nbytes + self.arena.nbytes

    @property
    def order(self) -> npt.NDArray[np.uint64]:
        return self.hashes

    def merge(self, other: PieceRun) -> PieceRun:
        return PieceRun(*merge_pieces(*self, *other))

    @property
    def size(self) -> int:
        """Number of distinct pieces."""
        return len(self.hashes)

    def slice(self, lo: int, hi: int) -> PieceRun:
        offsets = self.offsets[lo:hi + 1]
        return PieceRun(self.hashes[lo:hi], self.counts[lo:hi], offsets - offsets[0],
                        self.arena[offsets[0]:offsets[-1]])

    def piece(self, i: int) -> bytes:
        return self.arena[self.offsets[i]:self.offsets[i + 1]].tobytes()

    @staticmethod
    def empty() -> PieceRun:
        return PieceRun(np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.uint8))


Run = Union[KeyRun, PieceRun]
#: the kind of run a caller asks a store for (a store holds runs of one kind)
R = TypeVar("R", KeyRun, PieceRun)


def _merge(a: Run, b: Run) -> Run:
    if isinstance(a, KeyRun) and isinstance(b, KeyRun):
        return a.merge(b)
    if isinstance(a, PieceRun) and isinstance(b, PieceRun):
        return a.merge(b)
    raise TypeError(f"cannot merge a {type(a).__name__} with a {type(b).__name__}")


def _write_array(f, array: np.ndarray) -> None:
    """Write all of ``array``; a write that stops short (a full disk) is ENOSPC, not numpy's
    ``"N requested and M written"``."""
    view = np.ascontiguousarray(array).data.cast("B")
    while view:
        n = f.write(view)
        if not n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def check_tmp_dir(parent: str | os.PathLike[str] | None) -> None:
    """Refuse a ``tmp_dir`` that is missing, not a directory or not writable, before anything is
    written there (texts given as a list are copied there first, then counts are spilled there:
    found at the first spill, a read-only one cost a whole pass)."""
    if parent is None:
        return
    if not Path(parent).is_dir():
        if Path(parent).exists():
            raise TrainingError(f"tmp_dir {parent} is not a directory; pass a directory to spill counts into")
        raise TrainingError(f"temporary directory {parent} does not exist; create it or pass another --tmp-dir")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".bytepiece-probe-", dir=parent))
    except OSError as e:
        raise TrainingError(f"cannot write to tmp_dir (CLI: --tmp-dir) {parent} ({e.strerror or e}); pass a directory "
                            "bytepiece can write to") from None


class SpillDir:
    """A temporary directory for spilled runs: created on first use, removed by ``close()``.
    Creating one removes the spill directories of killed runs in the same place."""

    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        self.parent = None if parent is None else Path(parent)
        self.path: Path | None = None
        self.bytes_written = 0
        self._count = 0
        self._lock_fd = -1
        check_tmp_dir(parent)
        remove_stale_spills(self.parent)

    def new_path(self, stem: str) -> Path:
        if self.path is None:
            self.path, self._lock_fd = run_dir(self.parent, SPILL_PREFIX)
        self._count += 1
        return self.path / f"{stem}-{self._count:05d}"

    def _no_space(self) -> TrainingError:
        where = self.path.parent if self.path is not None else (self.parent or tempfile.gettempdir())
        return TrainingError(f"no space left on the device of {where} while spilling counts to disk; "
                             "free some space or pass --tmp-dir on a larger disk (or raise --max-memory)")

    def write(self, array: np.ndarray, stem: str) -> Path:
        try:
            path = self.new_path(stem)
            with open(path, "wb", buffering=0) as f:
                _write_array(f, array)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._no_space() from None
            raise
        self.bytes_written += array.nbytes
        return path

    def close(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None

    def __enter__(self) -> SpillDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OnDisk:
    """A run written column by column; slices are read back with plain reads (no memory map, so
    the bytes read count against the process only while the caller holds them)."""

    def __init__(self, run: Run, spill: SpillDir) -> None:
        self.kind = type(run)
        self.length = run.size
        self.nbytes = run.nbytes
        self.paths = [spill.write(np.ascontiguousarray(column), f"{self.kind.__name__.lower()}-{i}")
                      for i, column in enumerate(run)]
        self.dtypes = [column.dtype for column in run]

    def _read(self, column: int, lo: int, hi: int) -> np.ndarray:
        dtype = self.dtypes[column]
        with open(self.paths[column], "rb") as f:
            f.seek(lo * dtype.itemsize)
            return np.fromfile(f, dtype=dtype, count=max(0, hi - lo))

    def bounds(self, lo_key: int, hi_key: int | None) -> tuple[int, int]:
        order = np.memmap(self.paths[0], dtype=np.uint64, mode="r", shape=(self.length,)) if self.length else np.zeros(0, np.uint64)
        lo = int(np.searchsorted(order, np.uint64(lo_key), side="left")) if lo_key else 0
        hi = self.length if hi_key is None else int(np.searchsorted(order, np.uint64(hi_key), side="left"))
        del order
        return lo, hi

    def sample(self, n: int) -> np.ndarray:
        if not self.length:
            return np.zeros(0, np.uint64)
        order = np.memmap(self.paths[0], dtype=np.uint64, mode="r", shape=(self.length,))
        picked = np.array(order[np.linspace(0, self.length - 1, min(n, self.length)).astype(np.int64)])
        del order
        return picked

    def load(self, lo: int, hi: int) -> Run:
        if self.kind is KeyRun:
            return KeyRun(self._read(0, lo, hi), self._read(1, lo, hi))
        offsets = self._read(2, lo, hi + 1)
        arena = self._read(3, int(offsets[0]), int(offsets[-1])) if len(offsets) else np.zeros(0, np.uint8)
        return PieceRun(self._read(0, lo, hi), self._read(1, lo, hi), offsets - offsets[0], arena)


class RunStore:
    """Sorted runs of one kind, held under ``limit`` bytes of memory (see the module docstring)."""

    def __init__(self, limit: int, spill: SpillDir) -> None:
        self.limit = max(1, int(limit))
        self.spill = spill
        self.memory: list[Run] = []
        self.disk: list[OnDisk] = []
        self.spilled_bytes = 0

    @property
    def nbytes(self) -> int:
        return sum(run.nbytes for run in self.memory)

    def add(self, run: Run) -> None:
        if not run.size:
            return
        self.memory.append(run)
        while len(self.memory) >= 2 and 2 * self.memory[-1].size >= self.memory[-2].size:
            b = self.memory.pop()
            a = self.memory.pop()
            self.memory.append(_merge(a, b))
        while self.memory and self.nbytes > self.limit:
            largest = max(range(len(self.memory)), key=lambda i: self.memory[i].nbytes)
            run = self.memory.pop(largest)
            self.disk.append(OnDisk(run, self.spill))
            self.spilled_bytes += run.nbytes

    def spill_all(self) -> None:
        """Write every run held in memory to disk (to make room for something else)."""
        while self.memory:
            run = self.memory.pop()
            self.disk.append(OnDisk(run, self.spill))
            self.spilled_bytes += run.nbytes

    @property
    def spilled(self) -> bool:
        return bool(self.disk)

    def total_bytes(self) -> int:
        """Bytes of all runs, in memory and on disk."""
        return self.nbytes + self.spilled_bytes

    def _entries(self) -> int:
        return sum(run.size for run in self.memory) + sum(d.length for d in self.disk)

    def single(self, kind: type[R]) -> R:
        """Everything merged into one in-memory run (only when nothing was spilled)."""
        runs = list(self.memory)
        self.memory = []
        if not runs:
            return kind.empty()
        while len(runs) > 1:
            b = runs.pop()
            a = runs.pop()
            runs.append(_merge(a, b))
        return cast(R, runs[0])  # a store holds runs of the one kind its caller names

    def partitions(self, max_bytes: int, align_mask: int = (1 << 64) - 1) -> list[tuple[int, int | None]]:
        """Ranges ``[lo, hi)`` of sort keys (``hi is None``: to the end) holding about
        ``max_bytes`` each; every bound is ``key & align_mask`` (so partitions never separate
        keys that agree on the masked bits)."""
        total = self.total_bytes()
        n = max(1, -(-total // max(1, max_bytes)))
        if n == 1:
            return [(0, None)]
        # Samples in proportion to each run's size, so the cuts follow where the keys really are.
        per = lambda size: max(1, int(8192 * size / max(1, self._entries())))  # noqa: E731
        samples = [run.order[np.linspace(0, run.size - 1, min(per(run.size), run.size)).astype(np.int64)]
                   for run in self.memory if run.size]
        samples += [d.sample(per(d.length)) for d in self.disk]
        pooled = np.sort(np.concatenate(samples)) if samples else np.zeros(0, np.uint64)
        if not len(pooled):
            return [(0, None)]
        cuts = pooled[np.linspace(0, len(pooled) - 1, n + 1).astype(np.int64)[1:-1]] & np.uint64(align_mask)
        bounds = [0] + sorted({int(c) for c in cuts.tolist() if c}) + [None]
        return list(zip(bounds[:-1], bounds[1:]))  # type: ignore[arg-type]

    def load(self, lo_key: int, hi_key: int | None, kind: type[R]) -> R:
        """Every run's part of ``[lo_key, hi_key)``, merged into one run."""
        parts: list[Run] = []
        for run in self.memory:
            order = run.order
            lo = int(np.searchsorted(order, np.uint64(lo_key), side="left")) if lo_key else 0
            hi = run.size if hi_key is None else int(np.searchsorted(order, np.uint64(hi_key), side="left"))
            if hi > lo:
                parts.append(run.slice(lo, hi))
        for d in self.disk:
            lo, hi = d.bounds(lo_key, hi_key)
            if hi > lo:
                parts.append(d.load(lo, hi))
        if not parts:
            return kind.empty()
        while len(parts) > 1:
            parts.sort(key=lambda r: r.size, reverse=True)
            b = parts.pop()
            a = parts.pop()
            parts.append(_merge(a, b))
        return cast(R, parts[0])  # a store holds runs of the one kind its caller names

    def close(self) -> None:
        """Forget every run and remove the spilled ones from disk."""
        self.memory = []
        for d in self.disk:
            for path in d.paths:
                path.unlink(missing_ok=True)
        self.disk = []

    def iter_partitions(self, max_bytes: int, kind: type[R], align_mask: int = (1 << 64) - 1) -> Iterator[R]:
        for lo, hi in self.partitions(max_bytes, align_mask):
            yield self.load(lo, hi, kind)
