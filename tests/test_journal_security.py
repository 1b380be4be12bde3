"""Commit journals found in a directory are acted upon only when this user's bytepiece provably
wrote them there (issue 18, item 1): a planted, copied, renamed, replayed, symlinked or FIFO
journal never renames or deletes anything, whether bytepiece reads a model or token file there
or writes an output into that directory. A genuine interrupted commit still rolls forward."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bytepiece import Tokenizer
from bytepiece.io import atomic, secret
from bytepiece.io import journal as J
from bytepiece_cli.app import app

PRECIOUS = "precious, do not delete\n"


def _victim(directory: Path, name: str = "victim.txt") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(PRECIOUS)
    return path


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    return int(done.stdout)


def _old_style(victim: Path) -> dict:
    """The journal of the issue's reproduction (the format before journals were signed)."""
    return {"format": "bytepiece-commit", "id": "x", "ops": [{"op": "remove", "target": str(victim)}],
            "markers": [str(J.marker_path(victim))]}


def _forged(marker: Path, ops: list[dict]) -> dict:
    """A journal in today's format, right in every field an attacker can know, with a made-up MAC."""
    return {"format": J.FORMAT, "version": J.VERSION, "kind": "journal", "id": "0" * 32, "pid": 1,
            "dir": os.path.realpath(marker.parent), "name": marker.name, "ops": ops, "mac": "ab" * 32}


def _remove_op(victim: Path) -> dict:
    st = victim.lstat()
    return {"op": "remove", "dir": os.path.realpath(victim.parent), "target": victim.name, "ino": st.st_ino,
            "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _plant(marker: Path, record: dict) -> str:
    text = json.dumps(record)
    marker.write_text(text)
    return text


def _planted_journals(directory: Path, victims: list[Path]) -> dict[Path, str]:
    """Old-style and forged journals in ``directory`` that remove each victim (absolute and ``../`` paths)."""
    planted = {}
    for i, victim in enumerate(victims):
        old = _old_style(victim)
        relative = {**old, "ops": [{"op": "remove", "target": os.path.relpath(victim, directory)}]}
        for j, record in enumerate((old, relative)):
            marker = directory / f".planted{i}{j}.bytepiece-commit"
            planted[marker] = _plant(marker, record)
        marker = directory / f".forged{i}.bytepiece-commit"
        planted[marker] = _plant(marker, _forged(marker, [_remove_op(victim)]))
    return planted


def _intact(victims: list[Path], planted: dict[Path, str]) -> None:
    for victim in victims:
        assert victim.read_text() == PRECIOUS, victim
    for marker, text in planted.items():
        assert marker.read_text() == text, f"{marker} was changed or deleted"


# -- the reproductions of the issue --------------------------------------------------------------
def test_decode_of_a_token_file_with_a_planted_journal(runner, tiny_model_file, tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("abc abd\nhello\n")
    evil = tmp_path / "evil"
    evil.mkdir()
    result = runner.invoke(app, ["encode", str(docs), "-m", str(tiny_model_file), "-f", "bin",
                                 "-o", str(evil / "corpus.bin")])
    assert result.exit_code == 0, result.output
    victims = [_victim(tmp_path), _victim(tmp_path / "elsewhere", "notes.md")]
    planted = _planted_journals(evil, victims)
    marker = evil / ".corpus.bin.bytepiece-commit"
    planted[marker] = _plant(marker, _old_style(victims[0]))
    result = runner.invoke(app, ["decode", str(evil / "corpus.bin"), "-m", str(tiny_model_file)])
    assert result.exit_code == 0, result.output
    assert "abc abd" in result.stdout
    _intact(victims, planted)


def test_tokenizer_on_a_cold_cache_with_a_planted_journal(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(tmp_path / "cold-cache"))
    directory = tmp_path / "dir"
    directory.mkdir()
    tiny_tokenizer.save(directory / "m.model")
    victims = [_victim(tmp_path, "victim2.txt")]
    marker = directory / ".m.model.bytepiece-commit"
    planted = {marker: _plant(marker, {**_old_style(victims[0]), "ops": [{"op": "remove", "target": "../victim2.txt"}],
                                       "markers": ["../.victim2.txt.bytepiece-commit"]})}
    planted.update(_planted_journals(directory, victims))
    assert Tokenizer(directory / "m.model").encode("abc") == tiny_tokenizer.encode("abc")
    _intact(victims, planted)


def test_encode_into_a_directory_with_planted_journals(runner, tiny_model_file, tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("abc abd\n")
    evil = tmp_path / "evil3"
    evil.mkdir()
    victims = [_victim(tmp_path), _victim(evil, "inside.txt")]
    planted = _planted_journals(evil, victims)
    result = runner.invoke(app, ["encode", str(docs), "-m", str(tiny_model_file), "-o", str(evil / "out.ids")])
    assert result.exit_code == 0, result.output
    assert (evil / "out.ids").read_text().split() == [str(i) for i in
                                                      Tokenizer(tiny_model_file).encode("abc abd")]
    _intact(victims, planted)
    assert "alone" in result.stderr and "Traceback" not in result.output  # said, once per journal
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == len(planted) and result.stderr.strip().splitlines()[-1].startswith("wrote 4 tokens")


def test_output_sets_written_into_a_directory_with_planted_journals(tmp_path):
    evil = tmp_path / "evil"
    victims = [_victim(tmp_path), _victim(evil, "inside.txt")]
    planted = _planted_journals(evil, victims)
    with pytest.warns(RuntimeWarning, match="alone"):
        with atomic.OutputSet() as out:
            out.write(evil / "a.bin", b"a")
            out.write(evil / "a.bin.json", "{}")
    atomic.atomic_write(evil / "single.txt", "x")
    atomic.recover(victims[1])
    assert atomic.cleanup(evil) == []
    _intact(victims, planted)
    assert (evil / "a.bin").read_bytes() == b"a"


# -- what else could be planted --------------------------------------------------------------------
def test_a_planted_temporary_with_a_journal_renaming_it_over_a_victim(tmp_path):
    directory = tmp_path / "d"
    victim = _victim(directory)
    tmp = directory / f".victim.txt.bp{_dead_pid()}-deadbeef.tmp"
    tmp.write_text("overwritten by an attacker\n")
    old = directory / ".victim.txt.bytepiece-commit"
    replace = {"op": "replace", "target": "victim.txt", "tmp": tmp.name}
    planted = {old: _plant(old, {"format": J.FORMAT, "id": "x", "ops": [replace], "markers": []})}
    forged = directory / ".forged.bytepiece-commit"
    planted[forged] = _plant(forged, _forged(forged, [{**replace, "dir": os.path.realpath(directory),
                                                       "ino": tmp.stat().st_ino}]))
    with pytest.warns(RuntimeWarning):
        atomic.atomic_write(directory / "other.txt", "x")
    _intact([victim], planted)
    assert not tmp.exists()  # named as bytepiece names its temporaries, writer gone: a leftover


def test_a_journal_copied_from_another_directory_is_not_followed(tmp_path):
    a_dir = tmp_path / "a"
    a_dir.mkdir()
    model, notes = a_dir / "m.model", a_dir / "notes.txt"
    model.write_text("1")
    notes.write_text("1")
    _interrupt(lambda out: (out.write(model, "2"), out.remove(notes)), at="replace")  # notes still there
    copy = tmp_path / "copy"
    shutil.copytree(a_dir, copy)  # hidden files, temporaries and journal included (cp -a, tar, rsync)
    with pytest.warns(RuntimeWarning, match="another place"):
        atomic.atomic_write(copy / "x.txt", "x")
    assert (copy / "notes.txt").read_text() == "1" and (copy / ".m.model.bytepiece-commit").exists()
    atomic.atomic_write(a_dir / "x.txt", "x")  # where it was written, the same journal is honoured
    assert model.read_text() == "2" and not notes.exists()
    assert sorted(p.name for p in a_dir.iterdir()) == ["m.model", "x.txt"]


def test_a_renamed_journal_is_not_followed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("1")
    b.write_text("1")
    _interrupt(lambda out: (out.write(a, "2"), out.remove(b)), at="replace")
    os.rename(tmp_path / ".a.bytepiece-commit", tmp_path / ".c.bytepiece-commit")
    with pytest.warns(RuntimeWarning, match="another place"):
        atomic.cleanup(tmp_path)
    assert b.read_text() == "1" and (tmp_path / ".c.bytepiece-commit").exists()


def test_a_replayed_journal_does_not_remove_a_newer_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("1")
    b.write_text("1")
    _interrupt(lambda out: (out.write(a, "2"), out.remove(b)), at="replace")
    saved = {p: p.read_bytes() for p in tmp_path.iterdir() if p.name.endswith(J.MARKER_SUFFIX)}
    atomic.cleanup(tmp_path)
    assert not b.exists()
    b.write_text("a newer b, written after the commit\n")
    for path, data in saved.items():  # a backup of the directory restored over it
        path.write_bytes(data)
    atomic.cleanup(tmp_path)
    assert b.read_text() == "a newer b, written after the commit\n"


def test_fifo_symlink_and_directory_markers_are_left_alone(tmp_path, tiny_model_file):
    genuine = tmp_path / "genuine"
    genuine.mkdir()
    (genuine / "a").write_text("1")
    (genuine / "b").write_text("1")
    _interrupt(lambda out: (out.write(genuine / "a", "2"), out.write(genuine / "b", "2")), at="replace")
    evil = tmp_path / "evil"
    victim = _victim(evil)
    docs = tmp_path / "docs.txt"
    docs.write_text("abc\n")
    bytepiece = [sys.executable, "-m", "bytepiece_cli.app"]
    done = subprocess.run([*bytepiece, "encode", str(docs), "-m", str(tiny_model_file), "-f", "bin",
                           "-o", str(evil / "out.bin")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    os.mkfifo(evil / ".out.bin.bytepiece-commit")
    os.symlink(genuine / ".a.bytepiece-commit", evil / ".a.bytepiece-commit")
    (evil / ".dir.bytepiece-commit").mkdir()
    (evil / ".dir.bytepiece-commit" / "inside").write_text("x")
    done = subprocess.run([*bytepiece, "decode", str(evil / "out.bin"), "-m", str(tiny_model_file),
                           "-o", str(evil / "out.txt")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (evil / "out.txt").read_text() == "abc\n"
    assert stat.S_ISFIFO((evil / ".out.bin.bytepiece-commit").lstat().st_mode)
    assert (evil / ".a.bytepiece-commit").is_symlink() and (evil / ".dir.bytepiece-commit" / "inside").exists()
    assert victim.read_text() == PRECIOUS
    assert ((genuine / "a").read_text(), (genuine / "b").read_text()) == ("2", "1")  # not followed from evil/


def test_things_named_like_temporaries_that_are_not_files_stay(tmp_path):
    dead = _dead_pid()
    directory = tmp_path / f".x.bp{dead}-00000000.tmp"
    directory.mkdir()
    (directory / "data").write_text("x")
    fifo = tmp_path / f".y.bp{dead}-00000000.tmp"
    os.mkfifo(fifo)
    link = tmp_path / f".z.bp{dead}-00000000.tmp"
    victim = _victim(tmp_path / "v")
    link.symlink_to(victim)
    atomic.atomic_write(tmp_path / "out.txt", "x")
    assert (directory / "data").exists() and stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()
    assert victim.read_text() == PRECIOUS


def test_a_planted_pointer_is_not_deleted(tmp_path):
    pointer = tmp_path / ".victim.txt.bytepiece-commit"
    records = [{"format": J.FORMAT, "id": "x", "primary": ".gone.bytepiece-commit"},
               {"format": J.FORMAT, "version": J.VERSION, "kind": "pointer", "id": "x", "pid": 1,
                "dir": os.path.realpath(tmp_path), "name": pointer.name,
                "primary": str(tmp_path / ".gone.bytepiece-commit"), "mac": None}]
    for record in records:
        text = _plant(pointer, record)
        atomic.atomic_write(tmp_path / "out.txt", "x")
        assert pointer.read_text() == text


# -- the key ---------------------------------------------------------------------------------------
def test_a_journal_of_another_key_is_left_alone_and_the_key_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(tmp_path / "cache-1"))
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("1")
    b.write_text("1")
    _interrupt(lambda out: (out.write(a, "2"), out.write(b, "2")), at="replace")
    key = tmp_path / "cache-1" / secret.KEY_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size == secret.KEY_BYTES
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(tmp_path / "cache-2"))  # another user, another machine
    with pytest.warns(RuntimeWarning, match="signature does not verify"):
        atomic.cleanup(tmp_path)
    assert (a.read_text(), b.read_text()) == ("2", "1")
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(tmp_path / "cache-1"))
    atomic.cleanup(tmp_path)
    assert (a.read_text(), b.read_text()) == ("2", "2")


@pytest.mark.parametrize("broken", ["readable by others", "symlink", "truncated", "no directory"])
def test_without_a_usable_key_writes_work_and_nothing_is_recovered(tmp_path, monkeypatch, broken):
    cache = tmp_path / "cache"
    cache.mkdir()
    key = cache / secret.KEY_NAME
    if broken == "readable by others":
        key.write_bytes(b"k" * secret.KEY_BYTES)
        key.chmod(0o644)
    elif broken == "truncated":
        key.write_bytes(b"k" * 5)
        key.chmod(0o600)
    elif broken == "symlink":
        real = tmp_path / "elsewhere.key"
        real.write_bytes(b"k" * secret.KEY_BYTES)
        real.chmod(0o600)
        key.symlink_to(real)
    else:
        cache = tmp_path / "a-file"
        cache.write_text("")
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(cache))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    a, b = out_dir / "a", out_dir / "b"
    with atomic.OutputSet() as out:
        out.write(a, "1")
        out.write(b, "1")
    assert sorted(p.name for p in out_dir.iterdir()) == ["a", "b"]  # the writer finishes its own commit
    _interrupt(lambda out: (out.write(a, "2"), out.write(b, "2")), at="replace")
    with pytest.warns(RuntimeWarning, match="cannot prove"):
        atomic.atomic_write(out_dir / "c", "x")
    assert (a.read_text(), b.read_text()) == ("2", "1")


# -- a genuine interrupted commit ------------------------------------------------------------------
@pytest.mark.parametrize("cleaned", ["first", "second"])
def test_a_set_across_two_directories_is_rolled_forward_from_either(tmp_path, cleaned):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    a, b, c = one / "a", two / "b", two / "c"
    for path in (a, b, c):
        path.write_text("1")
    _interrupt(lambda out: (out.write(a, "2"), out.write(b, "2"), out.remove(c)), at="replace")
    assert (a.read_text(), b.read_text(), c.exists()) == ("2", "1", True)
    atomic.cleanup(one if cleaned == "first" else two)
    assert (a.read_text(), b.read_text(), c.exists()) == ("2", "2", False)
    assert sorted(p.name for p in [*one.iterdir(), *two.iterdir()]) == ["a", "b"]


KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from bytepiece.io import journal as J
    from bytepiece.model import Model

    path = Path(sys.argv[1])
    base = {bytes([b]): 1 for b in range(256)}
    Model.from_counts({**base, b"ab": 1}, {"version": 1}).save(path)

    def hook(step):
        if step == "replace":  # the model renamed, its sidecar not yet
            os.kill(os.getpid(), signal.SIGKILL)

    J.fault_hook = hook
    Model.from_counts({**base, b"ab": 2}, {"version": 2}).save(path)
""")


def test_a_killed_commit_is_rolled_forward_by_the_next_write(tmp_path, runner, tiny_model_file):
    path = tmp_path / "m.model"
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    sidecar = json.loads((tmp_path / "m.model.meta.json").read_text())
    assert sidecar["version"] == 1  # mixed: new model, old sidecar
    docs = tmp_path / "docs.txt"
    docs.write_text("abc\n")
    result = runner.invoke(app, ["encode", str(docs), "-m", str(tiny_model_file), "-o", str(tmp_path / "ids.txt")])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("wrote ") and len(result.stderr.splitlines()) == 1  # the closing line only
    assert json.loads((tmp_path / "m.model.meta.json").read_text())["version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _interrupt(stage, *, at: str) -> None:
    """Run an OutputSet commit of ``stage(out)`` in this process, stopped at step ``at`` as a kill would."""
    class Stop(BaseException):
        pass

    def hook(step: str) -> None:
        if step == at:
            raise Stop

    J.fault_hook = hook
    try:
        with pytest.raises(Stop):
            with atomic.OutputSet() as out:
                stage(out)
    finally:
        J.fault_hook = None
