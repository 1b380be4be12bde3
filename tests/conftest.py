"""Shared fixtures. Tests that need ``../shared`` (golden files, corpora, published models) use
the ``shared`` fixture and are skipped cleanly when it is absent (users run the suite without it).
Set ``BYTEPIECE_SHARED`` to point elsewhere."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BYTEPIECE_SHARED", REPO.parent / "shared"))

settings.register_profile("default", max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "100")), deadline=None)
settings.load_profile("default")

# A shell without job control starts a background command (``pytest ... &``) with SIGINT
# ignored, and every process it starts inherits that: the Ctrl-C tests would then fail, since
# nothing gets the interrupt. Python's own handler restores the default here, and ``exec``
# resets a handled signal to the default in the child processes these tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory):
    """Model-array cache entries go to a directory of this run, never to ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BYTEPIECE_CACHE_DIR", str(tmp_path_factory.mktemp("model-cache")))
        yield


@pytest.fixture(autouse=True)
def _stand_ins_for_small_inputs(monkeypatch):
    """Every test starts with small inputs going to the stand-ins (``kernels.stand_ins``): a
    large training run earlier in the same process would otherwise have sent them to the kernels
    for good, and a test of a stand-in would compare a kernel with itself."""
    from bytepiece.kernels import stand_ins

    monkeypatch.setattr(stand_ins, "_kernels_only", False)


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "golden").is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set BYTEPIECE_SHARED)")
    return SHARED


_tokenizers: dict = {}


@pytest.fixture(scope="session")
def load_shared_tokenizer(shared):
    """Tokenizer for a model in ../shared/models, cached across tests."""
    from bytepiece import Tokenizer

    def load(name: str = "bytepiece_80k", **kwargs) -> Tokenizer:
        key = (name, tuple(sorted(kwargs.items())))
        if key not in _tokenizers:
            _tokenizers[key] = Tokenizer(shared / "models" / f"{name}.model", **kwargs)
        return _tokenizers[key]

    return load


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A small vocabulary made in the test itself: all bytes plus a few overlapping pieces."""
    from bytepiece import Tokenizer

    counts = {bytes([b]): 1 + (b % 7) for b in range(256)}
    counts.update({b"ab": 30, b"abc": 12, b"bc": 25, b"abcd": 9, b"cd": 20, b"a": 40, b"\xe4\xb8\xad": 15,
                   b"\xe4\xb8\xad\xe6\x96\x87": 8, b"\n\n": 5, b"  ": 6})
    return Tokenizer.from_counts(counts)


@pytest.fixture()
def tiny_model_file(tmp_path, tiny_tokenizer):
    """``tiny_tokenizer`` saved as a model file."""
    path = tmp_path / "tiny.model"
    tiny_tokenizer.save(path)
    return path


@pytest.fixture()
def runner(monkeypatch):
    """typer's CliRunner with a wide, colourless terminal (rich output stays on one line)."""
    from typer.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    return CliRunner()


@pytest.fixture()
def device_node(tmp_path):
    """``device_node(name, minor)``: a private node of a Linux memory device (1: 3 null, 5 zero,
    7 full) in ``tmp_path``; code that wrongly replaces devices can only destroy this copy, never
    the system's /dev/null. Skips the test where nodes cannot be made (not root)."""
    import stat

    def make(name: str, minor: int) -> Path:
        path = tmp_path / name
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        except (PermissionError, AttributeError, OSError):
            pytest.skip("creating device nodes needs root (mknod)")
        return path

    return make


@pytest.fixture()
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs (needs root and a kernel that allows the mount; skipped otherwise)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("cannot mount a tmpfs here")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30)
