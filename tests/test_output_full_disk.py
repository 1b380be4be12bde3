"""A full disk while writing an output names the output and says what became of the previous
file (issue 18, audit finding N2): ``encode -o`` in every format, ``decode -o``, ``export``, a
model's commit (its fsync and its journal), numpy's short writes, and standard output on
``/dev/full``. Real full file systems (a 1 MiB tmpfs) and a private ``/dev/full`` node; the
injected faults cover what a tmpfs cannot produce on demand."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from bytepiece import InputError, load_model
from bytepiece.io import atomic
from bytepiece.io import journal as J
from bytepiece.model import Model
from bytepiece.tokens.npyfile import NpyWriter
from bytepiece_cli.app import app

PREVIOUS = "the previous output\n"
BASE = {bytes([b]): 1 + b % 5 for b in range(256)}


@pytest.fixture(scope="module")
def big_text(tmp_path_factory):
    """1.2 MB of text: its ids (text or uint16), and its decoded text, outgrow a 1 MiB disk."""
    rng = random.Random(7)
    path = tmp_path_factory.mktemp("text") / "big.txt"
    words = ["alpha", "beta", "gamma", "abcd", "中文", "piece", "token", "data"]
    with open(path, "w", encoding="utf-8") as f:
        while f.tell() < 1_200_000:
            f.write(" ".join(rng.choice(words) for _ in range(12)) + "\n")
    return path


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in result.output, result.stderr
    for needle in needles:
        assert needle in line, line
    return line


def _replaced_message(path) -> tuple[str, str]:
    return f"cannot write {path}: No space left on device", f"any previous {path} is untouched"


@pytest.mark.parametrize("fmt, name", [("ids", "out.ids"), ("pieces", "out.txt"), ("bin", "out.bin"),
                                       ("npy", "out.npy")])
def test_encode_to_a_full_disk_names_the_file(runner, small_tmpfs, big_text, tiny_model_file, fmt, name):
    out = small_tmpfs / name
    out.write_text(PREVIOUS)
    result = runner.invoke(app, ["encode", str(big_text), "-m", str(tiny_model_file), "-f", fmt, "-o", str(out),
                                 "--force"])
    _one_line_error(result, *_replaced_message(out))
    assert out.read_text() == PREVIOUS
    assert [p.name for p in small_tmpfs.iterdir()] == [name]  # no temporaries, no index or sidecar


def test_decode_to_a_full_disk_names_the_file(runner, tmp_path, small_tmpfs, big_text, tiny_model_file):
    ids = tmp_path / "big.ids"
    assert runner.invoke(app, ["encode", str(big_text), "-m", str(tiny_model_file), "-o", str(ids)]).exit_code == 0
    out = small_tmpfs / "decoded.txt"
    out.write_text(PREVIOUS)
    result = runner.invoke(app, ["decode", str(ids), "-m", str(tiny_model_file), "-o", str(out), "--force"])
    _one_line_error(result, *_replaced_message(out))
    assert out.read_text() == PREVIOUS and [p.name for p in small_tmpfs.iterdir()] == ["decoded.txt"]


def test_export_to_a_full_disk_names_the_file(runner, small_tmpfs):
    from bytepiece_data import DEFAULT_MODEL, data_file

    out = small_tmpfs / "tokenizer.json"
    out.write_text(PREVIOUS)
    result = runner.invoke(app, ["export", str(data_file(DEFAULT_MODEL)), "--to", "hf", "-o", str(out), "--force"])
    _one_line_error(result, *_replaced_message(out))
    assert out.read_text() == PREVIOUS and [p.name for p in small_tmpfs.iterdir()] == ["tokenizer.json"]


def test_a_sharded_encoding_keeps_naming_its_directory(runner, small_tmpfs, big_text, tiny_model_file):
    """Shards stage their files through the same atomic writers; their full disk is still the
    sharded encoding's own message (a NoSpaceError is an OSError with errno ENOSPC)."""
    result = runner.invoke(app, ["encode", str(big_text), "-m", str(tiny_model_file), "-f", "bin", "-o",
                                 str(small_tmpfs / "corpus")])
    _one_line_error(result, f"no space left on the device of {small_tmpfs} while writing token shards")
    assert list(small_tmpfs.iterdir()) == []


def test_the_library_error_is_an_input_error_and_an_oserror(small_tmpfs):
    out = small_tmpfs / "blob.bin"
    out.write_text(PREVIOUS)
    with pytest.raises(InputError, match="any previous .*blob.bin is untouched") as caught:
        atomic.atomic_write(out, b"x" * (2 << 20))
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert str(caught.value).startswith(f"cannot write {out}: No space left on device")
    assert out.read_text() == PREVIOUS and [p.name for p in small_tmpfs.iterdir()] == ["blob.bin"]


def test_numpys_short_write_of_npy_offsets_is_a_full_disk(small_tmpfs):
    """``np.save`` into the offsets file reports a short write without an error number."""
    writer = NpyWriter(small_tmpfs / "t.npy", vocab_size=1000)
    writer.write(np.zeros(100, dtype=np.int64), np.arange(101))
    writer.write(np.zeros(200_000, dtype=np.int64), np.arange(200_001))  # ids fit, their offsets do not
    with pytest.raises(InputError, match=f"cannot write {small_tmpfs / 't.offsets.npy'}: No space left on device"):
        writer.close()
    assert list(small_tmpfs.iterdir()) == []


def test_a_full_disk_in_the_commits_fsync_names_the_file(tmp_path, monkeypatch):
    out = tmp_path / "notes.txt"
    out.write_text(PREVIOUS)

    def fsync(fd):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(InputError, match=f"cannot write {out}: {os.strerror(errno.EDQUOT)}; nothing was written"):
        atomic.atomic_write(out, "new")
    assert out.read_text() == PREVIOUS and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_no_room_for_the_temporary_names_the_file(tmp_path, monkeypatch):
    """Creating the temporary can fail too (no inode left, a quota on files)."""
    out = tmp_path / "m.model"
    out.write_text(PREVIOUS)

    def create_temp(target, mode=0o666):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(J, "create_temp", create_temp)
    with pytest.raises(InputError, match=f"cannot write {out}: No space left on device; nothing was written"):
        atomic.atomic_write(out, "new")
    assert out.read_text() == PREVIOUS


def test_a_full_disk_while_writing_the_journal_names_the_output(tmp_path, monkeypatch):
    path = tmp_path / "m.model"
    Model.from_counts({**BASE, b"ab": 1}, {"version": 1}).save(path)
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())

    def write_journal(ops):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(J, "write_journal", write_journal)
    with pytest.raises(InputError, match=r"cannot write .*m\.model.*: No space left on device; nothing was written"):
        Model.from_counts({**BASE, b"ab": 2}, {"version": 2}).save(path)
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == before
    assert load_model(path).metadata["version"] == 1


def test_a_full_device_given_as_output_is_named(runner, device_node, big_text, tiny_model_file):
    full = device_node("full", 7)
    result = runner.invoke(app, ["encode", str(big_text), "-m", str(tiny_model_file), "-o", str(full)])
    _one_line_error(result, f"cannot write {full}: No space left on device; the output is incomplete")


def _run_into_full(args: list[str], stdout_path, *, unbuffered: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    with open(stdout_path, "wb") as stdout:
        return subprocess.run([sys.executable, "-m", "bytepiece_cli.app", *args], stdout=stdout,
                              stderr=subprocess.PIPE, text=True, timeout=300, env=env)


@pytest.mark.parametrize("command", ["encode", "decode", "encode -o /dev/stdout", "inspect"])
def test_standard_output_on_a_full_device_is_named(tmp_path, device_node, tiny_model_file, command):
    full = device_node("full", 7)
    text = tmp_path / "t.txt"
    text.write_text("abcd alpha beta\n" * 5000)
    ids = tmp_path / "t.ids"
    ids.write_text("10 11 12\n" * 5000)
    args = {"encode": ["encode", str(text), "-m", str(tiny_model_file)],
            "decode": ["decode", str(ids), "-m", str(tiny_model_file)],
            "encode -o /dev/stdout": ["encode", str(text), "-m", str(tiny_model_file), "-o", "/dev/stdout"],
            "inspect": ["inspect", str(tiny_model_file)]}[command]
    done = _run_into_full(args, full)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write standard output: No space left on device; "
                                                   "the output is incomplete"), done.stderr


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "PYTHONUNBUFFERED"])
def test_standard_output_into_a_full_file_system_is_named(small_tmpfs, big_text, tiny_model_file, unbuffered):
    done = _run_into_full(["encode", str(big_text), "-m", str(tiny_model_file)], small_tmpfs / "redirected.ids",
                          unbuffered=unbuffered)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write standard output: No space left on device"), \
        done.stderr
