"""``bytepiece export --to hf -o DIR/`` that fails (a full disk) leaves no directory it created
(issue 18, item 32), and one that existed before stays as it was."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from bytepiece.io import atomic
from bytepiece_cli.app import app


def _one_line_error(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture()
def disk_full_after_one_file(monkeypatch):
    real_write = atomic.OutputSet.write
    calls = []

    def write(self, path, data, **kwargs):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, path, data, **kwargs)

    monkeypatch.setattr(atomic.OutputSet, "write", write)
    return calls


def test_a_failed_directory_export_removes_the_directories_it_created(runner, tiny_model_file, tmp_path,
                                                                       disk_full_after_one_file):
    out = tmp_path / "new" / "deeper" / "DIR"
    result = runner.invoke(app, ["export", str(tiny_model_file), "--to", "hf", "-o", f"{out}/"])
    _one_line_error(result, "No space left on device")
    assert disk_full_after_one_file and not (tmp_path / "new").exists()


def test_a_failed_export_into_an_existing_directory_keeps_it(runner, tiny_model_file, tmp_path,
                                                             disk_full_after_one_file):
    out = tmp_path / "DIR"
    out.mkdir()
    (out / "README.md").write_text("mine")
    _one_line_error(runner.invoke(app, ["export", str(tiny_model_file), "--to", "hf", "-o", str(out)]),
                    "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]
    empty = tmp_path / "EMPTY"
    empty.mkdir()
    _one_line_error(runner.invoke(app, ["export", str(tiny_model_file), "--to", "hf", "-o", str(empty)]),
                    "No space left on device")
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_export_on_a_really_full_disk(tmp_path, small_tmpfs):
    from bytepiece_data import DEFAULT_MODEL, data_file

    out = small_tmpfs / "DIR"
    done = subprocess.run([sys.executable, "-m", "bytepiece_cli.app", "export", str(data_file(DEFAULT_MODEL)),
                           "--to", "hf", "-o", f"{out}/"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"cannot write {out}/tokenizer.json: No space left on device; nothing was written" in done.stderr
    assert list(small_tmpfs.iterdir()) == []
