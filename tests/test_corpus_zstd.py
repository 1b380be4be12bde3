"""zstd input must end where a frame ends (issue 18): a truncated file, or one of only the
magic bytes, is refused instead of read as a shorter corpus; whole multi-frame files, skippable
frames and frames of empty content read fully."""

from __future__ import annotations

import pytest

from bytepiece.corpus import describe_sources, plan_shards, read_shard
from bytepiece.corpus.zstd import FrameWalker, ZstdFormatError
from bytepiece.errors import InputError


def _docs(path, *, batch_bytes=1 << 16, shard_bytes=1 << 30, purpose="encode", **kwargs) -> list[bytes]:
    sources = describe_sources([path], jsonl_field=kwargs.pop("jsonl_field", None))
    out = []
    for shard in plan_shards(sources, shard_bytes):
        for batch in read_shard(shard, purpose=purpose, batch_bytes=batch_bytes, **kwargs):
            out += [batch.data[batch.offsets[i]:batch.offsets[i + 1]] for i in range(batch.n_documents)]
    return out


# -- truncated zstd ------------------------------------------------------------------------------

def _incompressible_lines(n: int, seed: int = 0) -> bytes:
    """Lines that compress poorly, so a compressed file is larger than the reader's first look."""
    import random

    rng = random.Random(seed)
    return b"".join(b"%d %s\n" % (i, rng.randbytes(24).hex().encode()) for i in range(n))


def _frames(zstandard, parts: list[bytes]) -> list[bytes]:
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    return [compressor.compress(part) for part in parts]


def test_truncated_multi_frame_zstd_is_refused_while_reading(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    text = _incompressible_lines(40000)
    frames = _frames(zstandard, [text[:500_000], text[500_000:1_000_000], text[1_000_000:]])
    whole = b"".join(frames)
    cuts = {"inside the last frame": len(whole) - 1000, "inside a block header": len(frames[0]) + len(frames[1]) + 7,
            "after a frame's magic": len(frames[0]) + 4, "mid-way": len(whole) // 2}
    for where, cut in cuts.items():
        path = tmp_path / "cut.txt.zst"
        path.write_bytes(whole[:cut])
        with pytest.raises(InputError, match=r"cut\.txt\.zst: corrupt or truncated zstd data \(it ends inside a "
                                             r"frame, at byte [\d,]+\)"):
            _docs(path)
        assert where


def test_zstd_magic_alone_is_refused(tmp_path):
    pytest.importorskip("zstandard")
    path = tmp_path / "magic.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(InputError, match="magic.zst: corrupt or truncated zstd data"):
        describe_sources([path])


def test_valid_multi_frame_zstd_reads_every_frame(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    text = _incompressible_lines(30000)
    skippable = (0x184D2A50).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"12345"
    parts = _frames(zstandard, [text[:300_000], b"", text[300_000:]])
    path = tmp_path / "multi.zst"
    path.write_bytes(parts[0] + skippable + parts[1] + parts[2])
    assert _docs(path) == text.rstrip(b"\n").split(b"\n")


def test_zstd_frame_of_empty_content_is_an_empty_input(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    path = tmp_path / "empty.txt.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b""))
    assert _docs(path) == []


def test_frame_walker_accepts_exactly_the_frame_boundaries():
    zstandard = pytest.importorskip("zstandard")
    frames = _frames(zstandard, [b"first\n" * 50, b"", b"third frame\n"])
    data = b"".join(frames)
    ends = {len(frames[0]), len(frames[0]) + len(frames[1]), len(data)}
    for cut in range(len(data) + 1):
        walker = FrameWalker()
        for i in range(0, cut, 7):  # fed in odd pieces, as a decoder reads
            walker.feed(data[i:min(i + 7, cut)])
        if cut in ends:
            walker.finish()
        else:
            with pytest.raises(ZstdFormatError):
                walker.finish()
