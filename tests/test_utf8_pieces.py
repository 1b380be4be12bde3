"""A long text is decoded and normalized a piece at a time; the result must be exactly that of
the whole text at once (NFC joins nothing across the cuts, invalid UTF-8 is replaced and counted
alike, a strict failure names the same line), and reading one long record must not hold the
text as a whole ``str``."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece.corpus import utf8
from bytepiece.errors import InputError

# characters that compose or reorder under NFC, CJK, ASCII, emoji, and bytes that are not UTF-8
ATOMS = ["a", "e", " ", "\n", "\u0301", "\u0323", "\u0308", "é", "e\u0301", "\u1100", "\u1161", "\u11a8", "中",
         "文", "\U0001f600", "Å", "\u212b", "\u0390", "\u03b9\u0308\u0301"]
RAW_ATOMS = [a.encode() for a in ATOMS] + [b"\xff", b"\xe4\xb8", b"\xc3", b"\x80"]


def _whole(raw: bytes, normalize: bool) -> tuple[bytes, int]:
    text, bad = utf8.decode(raw, "replace", "x")
    return (utf8.nfc_utf8(text, raw) if normalize else utf8.plain_utf8(text)), bad


@settings(deadline=None, max_examples=300)
@given(st.lists(st.sampled_from(RAW_ATOMS), max_size=400), st.integers(8, 64), st.booleans())
def test_pieces_equal_the_whole(atoms, piece_bytes, normalize):
    raw = b"".join(atoms)
    saved = utf8.PIECE_BYTES
    utf8.PIECE_BYTES = piece_bytes
    try:
        got = utf8.utf8_document(raw, "replace", "x", normalize=normalize)
    finally:
        utf8.PIECE_BYTES = saved
    assert got == _whole(raw, normalize)
    if normalize:
        assert unicodedata.is_normalized("NFC", got[0].decode("utf-8"))


def test_strict_failure_names_the_line_of_a_later_piece(monkeypatch):
    monkeypatch.setattr(utf8, "PIECE_BYTES", 16)
    raw = b"line one\nline two\nline three\n" * 5 + b"bad \xff here\n"
    with pytest.raises(InputError, match="invalid UTF-8 at line 16 "):
        utf8.utf8_document(raw, "strict", "f.txt")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status")
def test_a_long_jsonl_record_is_not_held_as_one_str(tmp_path):
    """A 48 MB record of mostly ASCII with one emoji: as one str it is 4 bytes per character,
    twice (decoded, then normalized), about 400 MB more than the bytes."""
    text = ("plain words and a line\n" * 2_100_000) + "\U0001f600"
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"text": text}) + "\n", encoding="utf-8")
    size = len(text.encode())
    # VmHWM is this process's own peak (ru_maxrss would carry over the forking test process's)
    code = ("import re, sys\n"
            "from bytepiece.corpus import describe_sources, plan_shards, read_shard\n"
            "[shard] = plan_shards(describe_sources([sys.argv[1]], jsonl_field='text'), 1 << 30)\n"
            "n = sum(len(b.data) for b in read_shard(shard, purpose='train'))\n"
            "status = open('/proc/self/status').read()\n"
            "print(n, int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) >> 10)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    n, peak_mib = map(int, done.stdout.split())
    assert n == size
    assert peak_mib < 100 + 7 * size / 2**20, peak_mib  # the bytes several times over (about 16 before)
