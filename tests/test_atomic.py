"""Atomic output sets (bytepiece.io.atomic): what is replaced, pre-flight checks, journals, stale
temporaries, and SIGKILL at every step and at random moments of a commit."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bytepiece import InputError
from bytepiece.io import atomic
from bytepiece.io import journal as J


def _hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory nobody can create files in: /proc for root (permission bits do not bind it)."""
    if os.geteuid() == 0:
        return Path("/proc")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked


def test_set_commits_together_and_abort_keeps_old(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    with atomic.OutputSet() as out:
        out.write(a, "a1")
        out.write(b, "b1")
        assert not a.exists() and not b.exists()  # nothing visible before the commit
    assert (a.read_text(), b.read_text()) == ("a1", "b1")
    with pytest.raises(RuntimeError):
        with atomic.OutputSet() as out:
            out.write(a, "a2")
            raise RuntimeError("boom")
    assert (a.read_text(), b.read_text()) == ("a1", "b1")
    assert _hidden(tmp_path) == []


def test_remove_member_and_overwrite_rules(tmp_path):
    a, sidecar = tmp_path / "m", tmp_path / "m.meta.json"
    a.write_text("old")
    sidecar.write_text("{}")
    with pytest.raises(FileExistsError, match="already exists"):
        atomic.OutputSet(overwrite=False).open(a)
    with atomic.OutputSet(overwrite=False) as out:
        out.write(a, "new", overwrite=True)
        out.remove(sidecar)
    assert a.read_text() == "new" and not sidecar.exists()
    assert _hidden(tmp_path) == []
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    sidecar.symlink_to(elsewhere.name)
    with atomic.OutputSet() as out:
        out.write(a, "newer")
        out.remove(sidecar)  # a symlinked sidecar: the link goes, the file it pointed to stays
    assert not os.path.lexists(sidecar) and elsewhere.read_text() == "{}"


def test_symlink_is_followed_and_kept(tmp_path):
    target = tmp_path / "real.model"
    target.write_text("old")
    link = tmp_path / "link.model"
    link.symlink_to(target.name)
    atomic.atomic_write(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling"
    dangling.symlink_to("created.txt")
    atomic.atomic_write(dangling, "x")
    assert dangling.is_symlink() and (tmp_path / "created.txt").read_text() == "x"


def test_devices_and_fifos_are_streamed_not_replaced(tmp_path, device_node):
    null, full = device_node("null", 3), device_node("full", 7)
    atomic.atomic_write(null, "discarded", overwrite=False)  # not "overwriting" anything
    assert stat.S_ISCHR(null.stat().st_mode)
    with pytest.raises(OSError):
        atomic.atomic_write(full, "x" * 10000)
    assert stat.S_ISCHR(full.stat().st_mode)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic.atomic_write(fifo, "through the pipe")
    reader.join(30)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert atomic.is_stream(fifo) and atomic.is_stream(null) and not atomic.is_stream(tmp_path / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "null", "pipe"]


def test_directories_and_sockets_are_refused(tmp_path):
    import socket

    with pytest.raises(InputError, match="is a directory"):
        atomic.atomic_write(tmp_path, "x")
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(InputError, match="socket"):
            atomic.atomic_write(sock_path, "x")
        with pytest.raises(InputError, match="socket"):
            atomic.check_writable([sock_path], overwrite=True)


def test_check_writable(tmp_path):
    (tmp_path / "exists").write_text("x")
    atomic.check_writable([tmp_path / "new", tmp_path / "exists", "/dev/zero"], overwrite=True)
    with pytest.raises(FileExistsError, match="already exists"):
        atomic.check_writable([tmp_path / "exists"], overwrite=False)
    with pytest.raises(InputError, match="does not exist"):
        atomic.check_writable([tmp_path / "missing" / "m.model"], overwrite=True)
    with pytest.raises(InputError, match="is a directory"):
        atomic.check_writable([tmp_path], overwrite=True)
    with pytest.raises(InputError, match="not a directory"):
        atomic.check_writable([tmp_path / "exists" / "m.model"], overwrite=True)
    with pytest.raises(InputError, match="not writable"):
        atomic.check_writable([_unwritable_dir(tmp_path) / "m.model"], overwrite=True)
    assert _hidden(tmp_path) == []  # the probe leaves nothing


def test_default_mode_reads_the_umask_without_setting_it(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        def no_umask(mask):
            raise AssertionError("os.umask changes the mask of every thread; default_mode must not call it")

        monkeypatch.setattr(os, "umask", no_umask)
        assert atomic.default_mode() == 0o640
        atomic.atomic_write(tmp_path / "f", "x")  # created as open() would: 0666 minus the umask
        assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_replacing_keeps_the_mode_of_the_old_file(tmp_path):
    path = tmp_path / "shared.model"
    path.write_text("old")
    path.chmod(0o604)
    atomic.atomic_write(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o604


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    return int(done.stdout)


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    import fcntl

    dead = _dead_pid()
    stale = tmp_path / f".m.model.bp{dead}-0123abcd.tmp"
    stale.write_text("left by a killed run")
    locked = tmp_path / f".other.bp{dead}-89abcdef.tmp"  # pid gone, but someone holds its lock
    locked.write_text("x")
    live = tmp_path / f".m.model.bp{os.getppid()}-00000000.tmp"  # a running process's
    live.write_text("x")
    foreign = tmp_path / ".m.model.tmp"  # not one of ours
    foreign.write_text("x")
    with open(locked, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        atomic.atomic_write(tmp_path / "m.model", "new")  # a write into the directory cleans up
        assert not stale.exists()
        assert locked.exists() and live.exists() and foreign.exists()
    assert atomic.cleanup(tmp_path) == [locked]


def _pending_commit(tmp_path: Path, stop_at: str) -> tuple[Path, Path]:
    """Old set a=1/b=1, then a commit of a=2/b=2 interrupted at ``stop_at`` (in this process)."""
    a, b = tmp_path / "a", tmp_path / "b"
    with atomic.OutputSet() as out:
        out.write(a, "1")
        out.write(b, "1")

    class Stop(BaseException):
        pass

    def hook(step: str) -> None:
        if step == stop_at:
            raise Stop

    J.fault_hook = hook
    try:
        with pytest.raises(Stop):
            with atomic.OutputSet() as out:
                out.write(a, "2")
                out.write(b, "2")
    finally:
        J.fault_hook = None
    return a, b


def test_recover_rolls_an_interrupted_commit_forward(tmp_path):
    a, b = _pending_commit(tmp_path, "replace")  # first rename done, journal still there
    assert (a.read_text(), b.read_text()) == ("2", "1")  # what a reader sees until a writer recovers
    atomic.recover(b)
    assert (a.read_text(), b.read_text()) == ("2", "2")
    assert _hidden(tmp_path) == []


def test_the_next_write_into_the_directory_rolls_an_interrupted_commit_forward(tmp_path):
    a, b = _pending_commit(tmp_path, "replace")
    atomic.atomic_write(tmp_path / "unrelated.txt", "x")
    assert (a.read_text(), b.read_text()) == ("2", "2")
    assert _hidden(tmp_path) == []


def test_interrupted_before_the_journal_keeps_the_old_set(tmp_path):
    a, b = _pending_commit(tmp_path, "pointer")
    atomic.cleanup(tmp_path)
    assert (a.read_text(), b.read_text()) == ("1", "1")
    assert _hidden(tmp_path) == []


def test_tampered_journals_are_left_alone(tmp_path):
    a, b = _pending_commit(tmp_path, "replace")  # a renamed, b not yet
    marker = J.marker_path(a.resolve())
    genuine = marker.read_text()
    record = json.loads(genuine)
    record["ops"][0]["tmp"] = "../../etc/passwd"
    for text in (json.dumps(record), "[" * 100_000, json.dumps({"format": J.FORMAT, "id": "x", "ops": []})):
        marker.write_text(text)
        with pytest.warns(RuntimeWarning, match="left .* alone"):
            atomic.cleanup(tmp_path)
        assert marker.read_text() == text and (a.read_text(), b.read_text()) == ("2", "1")
    marker.write_text(genuine)
    if os.geteuid() == 0:
        os.chown(marker, 12345, 12345)
        with pytest.warns(RuntimeWarning, match="another user"):
            atomic.recover(a)
        assert marker.exists() and (a.read_text(), b.read_text()) == ("2", "1")
        os.chown(marker, 0, 0)
    atomic.recover(a)  # the genuine journal, untouched: rolled forward
    assert (a.read_text(), b.read_text()) == ("2", "2") and _hidden(tmp_path) == []


SIGKILL_CHILD = r"""
import json, os, random, signal, sys, time
from pathlib import Path
from bytepiece.io import atomic
from bytepiece.io import journal as J
from bytepiece.tokens.binfile import BinWriter, open_bin
from bytepiece.model import Model, load_model

directory, kind, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
random.seed(seed)
base = {bytes([b]): 1 for b in range(256)}

def save(version):
    if kind == "model":  # model + .meta.json
        Model.from_counts({**base, b"ab": version}, {"version": version}).save(directory / "m.model")
    elif kind == "sizes":  # several vocabulary sizes, each with its sidecar (Trainer.save)
        with atomic.OutputSet() as out:
            for size in (1, 2, 3):
                Model.from_counts({**base, b"ab": version, b"c" * (size + 1): size}, {"version": version}).stage(
                    out, directory / f"m.{size}.model")
    else:  # .bin + .idx + .json
        with BinWriter(directory / "c.bin", vocab_size=300, metadata={"version": version}) as w:
            w.write_documents([[version] * version, [1, 2]])

def observe():
    atomic.cleanup(directory)  # what the next write into the directory does first (reading changes nothing)
    if kind == "model":
        m = load_model(directory / "m.model")
        return [int(m.counts[m.pieces.index(b"ab")]), m.metadata.get("version")]
    if kind == "sizes":
        out = []
        for size in (1, 2, 3):
            m = load_model(directory / f"m.{size}.model")
            out += [int(m.counts[m.pieces.index(b"ab")]), m.metadata.get("version")]
        return out
    tokens, offsets = open_bin(directory / "c.bin", verify=True)
    meta = json.loads((directory / "c.bin.json").read_text())
    return [int(tokens[0]), int(offsets[1]), meta["metadata"]["version"]]

def leftovers():
    atomic.cleanup(directory)
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))

def killed_at(k):
    pid = os.fork()
    if pid == 0:
        calls = [0]
        def hook(step):
            calls[0] += 1
            if calls[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
        J.fault_hook = hook
        save(2)
        os._exit(0)
    return os.waitpid(pid, 0)[1]

save(1)
k = 1
while True:  # every step of a commit, one kill each, until a save runs to the end
    status = killed_at(k)
    print(json.dumps({"step": k, "killed": os.WIFSIGNALED(status), "state": observe(), "left": leftovers()}),
          flush=True)
    save(1)
    if not os.WIFSIGNALED(status):
        break
    k += 1
for trial in range(12):  # and at random moments of a writer that saves in a loop
    save(1)
    pid = os.fork()
    if pid == 0:
        v = 2
        while True:
            save(v)
            v = 3 if v == 2 else 2
    time.sleep(random.uniform(0.0, 0.6))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print(json.dumps({"random": trial, "state": observe(), "left": leftovers()}), flush=True)
"""


def _consistent(kind: str, state: list) -> int:
    """The single version a recovered set holds (fails on a mix)."""
    if kind == "bin":
        version = state[2]
        assert state[:2] == [version, version], state
    else:
        versions = set(state)
        assert len(versions) == 1, f"old and new members mixed: {state}"
        version = versions.pop()
    return version


@pytest.mark.parametrize("kind", ["model", "sizes", "bin"])
def test_sigkill_during_save_leaves_old_or_new_set(tmp_path, kind):
    done = subprocess.run([sys.executable, "-c", SIGKILL_CHILD, str(tmp_path), kind, "7"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    steps = [r for r in rows if "step" in r]
    assert len(steps) >= 8 and not steps[-1]["killed"] and all(r["killed"] for r in steps[:-1])
    seen = set()
    for row in rows:
        version = _consistent(kind, row["state"])
        seen.add((version, "step" in row))
        assert row["left"] == [], row  # no temporaries, no journals once a later write has run
    # Kills landed on both sides of the commit point: some left the old set, some the new one.
    assert {(1, True), (2, True)} <= seen
    assert {v for v, by_step in seen if not by_step} <= {1, 2, 3}
