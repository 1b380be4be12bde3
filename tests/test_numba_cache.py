"""A read-only installation still caches compiled kernels (in the user cache directory), so a
second process does not recompile.

Root ignores permission bits, so the test makes the package tree unwritable for numba the way
it sees it: ``__pycache__`` is a plain file, so numba's in-tree cache directory cannot exist and
it falls back to ``$XDG_CACHE_HOME/numba``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bytepiece

SCRIPT = """
from bytepiece import Tokenizer
counts = {bytes([b]): 1 for b in range(256)}
counts[b"ab"] = 5
t = Tokenizer.from_counts(counts)
assert t.decode(t.encode("abab")) == "abab"
print("ok")
"""


@pytest.mark.slow
def test_second_process_loads_cached_kernels_from_user_cache(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(Path(bytepiece.__file__).parent, site / "bytepiece", ignore=shutil.ignore_patterns("__pycache__"))
    for package_dir in (site / "bytepiece", site / "bytepiece" / "kernels"):
        (package_dir / "__pycache__").write_text("not a directory")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"), NUMBA_DEBUG_CACHE="1", PYTHONDONTWRITEBYTECODE="1")

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip().endswith("ok")
        return done.stdout

    first = run()
    assert "data saved to" in first and str(tmp_path / "cache") in first
    second = run()
    assert "data loaded from" in second
    assert "data saved to" not in second, "the second process recompiled a kernel"
