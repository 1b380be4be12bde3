"""Spill directories under SIGTERM, SIGKILL and a full disk (issue 18, items 11 and 13): SIGTERM
runs the same cleanup as Ctrl-C (exit status 143), a directory left by SIGKILL is removed by the
next run on the host, and a full ``--tmp-dir`` is one line naming the directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from bytepiece.training import spill as spill_module
from bytepiece.training.spill import SpillDir
from bytepiece.io.stale import SPILL_PREFIX, host_name, remove_stale_spills
from bytepiece.errors import TrainingError
from bytepiece_cli.app import app

# ``bytepiece train`` whose counting phase spills ``argv[1]`` bytes, prints the spill directory
# and then waits (for a signal to arrive while the directory exists).
SPILLING_TRAIN = textwrap.dedent("""
    import sys, time
    import numpy as np
    from bytepiece.training import trainer
    from bytepiece_cli.app import main

    size = int(sys.argv.pop(1))

    def run(self, engine, shards, plan, spill, *rest):
        spill.write(np.zeros(size, np.uint8), "probe")
        print(spill.path, flush=True)
        time.sleep(300)

    trainer.Trainer._run = run
    sys.argv = ["bytepiece", *sys.argv[1:]]
    main()
""")


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abc abd abe hello world\n" * 40)
    return corpus


def _spilling_train(tmp_path: Path, tmp_dir: Path, size: int = 1 << 16) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", SPILLING_TRAIN, str(size), "train", str(_corpus(tmp_path)),
                             "-v", "300", "-o", str(tmp_path / "m.model"), "--tmp-dir", str(tmp_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(300, proc.kill)  # a regression fails the test instead of hanging it
    watchdog.start()
    try:
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        watchdog.cancel()
    assert line, proc.stderr.read() if proc.poll() is not None else "no spill directory reported"  # type: ignore[union-attr]
    spill_dir = Path(line)
    assert spill_dir.is_dir() and spill_dir.parent == tmp_dir
    return proc, spill_dir


def test_sigterm_removes_the_spill_directory_and_exits_143(tmp_path):
    tmp_dir = tmp_path / "spill"
    tmp_dir.mkdir()
    proc, spill_dir = _spilling_train(tmp_path, tmp_dir)
    assert spill_dir.name.startswith(f"{SPILL_PREFIX}{host_name()}-{proc.pid}-")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip() == "error: terminated", err
    assert list(tmp_dir.iterdir()) == []


def test_a_spill_directory_left_by_sigkill_is_removed_by_the_next_run(tmp_path, runner):
    tmp_dir = tmp_path / "spill"
    tmp_dir.mkdir()
    proc, spill_dir = _spilling_train(tmp_path, tmp_dir)
    proc.kill()
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert spill_dir.is_dir()  # nothing can clean up after SIGKILL
    result = runner.invoke(app, ["train", str(_corpus(tmp_path)), "-v", "300", "-o", str(tmp_path / "next.model"),
                                 "--tmp-dir", str(tmp_dir)])
    assert result.exit_code == 0, result.output
    assert list(tmp_dir.iterdir()) == []


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    return int(done.stdout)


def test_only_our_dead_runs_spill_directories_are_removed(tmp_path):
    import fcntl

    dead, live = _dead_pid(), os.getppid()
    ours = f"{SPILL_PREFIX}{host_name()}"
    stale = tmp_path / f"{ours}-{dead}-abcd_123"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "run-00001").write_bytes(b"x" * 100)
    kept = {
        "running": tmp_path / f"{ours}-{live}-abcdefgh",
        "other host": tmp_path / f"{SPILL_PREFIX}not-{host_name()}-{dead}-abcdefgh",
        "locked": tmp_path / f"{ours}-{dead}-lockedxx",
        "old name": tmp_path / f"{SPILL_PREFIX}abcdefgh",
        "not ours": tmp_path / f"other-{dead}-abcdefgh",
    }
    for path in kept.values():
        path.mkdir()
        (path / "data").write_text("keep")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data").write_text("keep")
    link = tmp_path / f"{ours}-{dead}-symlinkx"
    link.symlink_to(victim)
    with open(kept["locked"] / "lock", "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # a process in another pid namespace still uses it
        assert remove_stale_spills(tmp_path) == [stale]
    assert all((path / "data").read_text() == "keep" for path in kept.values())
    assert link.is_symlink() and (victim / "data").read_text() == "keep"
    if os.geteuid() == 0:
        foreign = tmp_path / f"{ours}-{dead}-foreignx"
        foreign.mkdir()
        os.chown(foreign, 12345, 12345)
        remove_stale_spills(tmp_path)
        assert foreign.is_dir()


def test_a_spill_directory_in_use_survives_another_run(tmp_path):
    with SpillDir(tmp_path) as first:
        first.write(np.arange(10, dtype=np.uint64), "run")
        assert first.path is not None
        with SpillDir(tmp_path) as second:  # another run starting beside it
            second.write(np.arange(10, dtype=np.uint64), "run")
        assert first.path.is_dir()
    assert list(tmp_path.iterdir()) == []


# -- a full --tmp-dir ------------------------------------------------------------------------------
def test_a_short_write_is_a_clear_no_space_error(tmp_path, monkeypatch):
    real_open = open

    class Full:
        """A file on a disk with 1000 bytes left: the kernel writes what fits, then nothing."""

        def __init__(self, f):
            self.f, self.room = f, 1000

        def write(self, data):
            n = min(len(data), self.room)
            self.room -= n
            return self.f.write(data[:n]) if n else 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(spill_module, "open", lambda *a, **k: Full(real_open(*a, **k)), raising=False)
    with pytest.raises(TrainingError, match=f"no space left on the device of {tmp_path} .*--tmp-dir"):
        with SpillDir(tmp_path) as spill:
            spill.write(np.zeros(100_000, np.uint8), "run")
    assert list(tmp_path.iterdir()) == []


def test_train_with_a_full_tmp_dir_names_it(tmp_path, small_tmpfs):
    proc = subprocess.run([sys.executable, "-c", SPILLING_TRAIN, str(3 << 20), "train", str(_corpus(tmp_path)),
                           "-v", "300", "-o", str(tmp_path / "m.model"), "--tmp-dir", str(small_tmpfs)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    expected = (f"error: no space left on the device of {small_tmpfs} while spilling counts to disk; free some "
                "space or pass --tmp-dir on a larger disk (or raise --max-memory)")
    assert proc.stderr.strip().splitlines() == [expected]
    assert list(small_tmpfs.iterdir()) == []  # the spill directory went, with what fitted of the file

