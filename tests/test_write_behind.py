"""Atomic outputs are synced in the background as they grow (bytepiece.io.nospace's write-behind):
the file is whole, the syncs happen, a failed background sync still stops the commit (with the
full-disk message when it is one), and a forked child that writes gets a sync thread of its own."""

from __future__ import annotations

import errno
import multiprocessing
import os
import threading

import pytest

from bytepiece import InputError
from bytepiece.io import atomic, nospace

PREVIOUS = b"the previous output\n"


@pytest.fixture
def small_write_behind(monkeypatch):
    """Sync after every 4 KiB, and count the background syncs (on which thread, which file)."""
    calls: list[tuple[str, int]] = []
    real = nospace._datasync

    def datasync(fd):
        calls.append((threading.current_thread().name, os.fstat(fd).st_size))
        real(fd)

    monkeypatch.setattr(nospace, "WRITE_BEHIND_BYTES", 4096)
    monkeypatch.setattr(nospace, "_datasync", datasync)
    return calls


def test_a_growing_output_is_synced_in_the_background_and_written_whole(tmp_path, small_write_behind):
    out = tmp_path / "tokens.bin"
    blocks = [bytes([i]) * 3000 for i in range(40)]
    with atomic.atomic_open(out, "wb") as f:
        for block in blocks:
            f.write(block)
    assert out.read_bytes() == b"".join(blocks)
    assert small_write_behind, "no background sync ran"
    assert all(name.startswith("bytepiece-sync") for name, _ in small_write_behind)
    sizes = [size for _, size in small_write_behind]
    assert sizes == sorted(sizes) and sizes[0] >= 4096  # each after another 4 KiB at least


def test_a_stream_output_is_not_synced(tmp_path, small_write_behind):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = bytearray()

    def drain():
        with open(fifo, "rb") as r:
            while chunk := r.read(1 << 16):
                received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with atomic.atomic_open(fifo, "wb") as f:
        for _ in range(10):
            f.write(b"x" * 5000)
    reader.join(timeout=30)
    assert bytes(received) == b"x" * 50_000 and small_write_behind == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_failed_background_sync_stops_the_commit(tmp_path, monkeypatch, code):
    """The kernel reports a writeback error once: had the background sync swallowed it, the
    commit's own fsync would pass and publish a file that is not on disk."""
    out = tmp_path / "tokens.bin"
    out.write_bytes(PREVIOUS)

    def datasync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(nospace, "WRITE_BEHIND_BYTES", 4096)
    monkeypatch.setattr(nospace, "_datasync", datasync)
    expected = f"cannot write {out}: No space left on device; nothing was written" if code == errno.ENOSPC \
        else os.strerror(code)
    with pytest.raises(OSError, match=expected) as caught:
        with atomic.atomic_open(out, "wb") as f:
            f.write(b"y" * 5000)  # the sync starts
            f.write(b"z" * 10)  # may raise its error, or the commit's close does
    assert isinstance(caught.value, InputError) == (code == errno.ENOSPC)
    assert out.read_bytes() == PREVIOUS and [p.name for p in tmp_path.iterdir()] == ["tokens.bin"]


def _child_writes(path: str, size: int) -> None:
    nospace.WRITE_BEHIND_BYTES = 4096
    with atomic.atomic_open(path, "wb") as f:
        for _ in range(size // 1000):
            f.write(b"c" * 1000)


def test_a_forked_child_syncs_on_a_thread_of_its_own(tmp_path, small_write_behind):
    """A pool inherited through fork has no thread in the child: using it would hang the close."""
    with atomic.atomic_open(tmp_path / "parent.bin", "wb") as f:
        f.write(b"p" * 10_000)  # the parent's sync thread exists and is idle
    assert small_write_behind
    child = multiprocessing.get_context("fork").Process(target=_child_writes, args=(str(tmp_path / "child.bin"), 20_000))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the child hung in its output's close")
    assert child.exitcode == 0 and (tmp_path / "child.bin").read_bytes() == b"c" * 20_000
