"""Shards read for training: whatever the shard and batch sizes, the texts seen are the file's
lines, including lines far longer than a batch (cut only at chunk boundaries where NFC cannot
join)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece.corpus import describe_sources, plan_shards, read_shard
from bytepiece.errors import InputError

_line = st.text(alphabet=st.sampled_from(list("ab c\u00e9\u4e2d\u6587e\u0301\r") + ["\U0001f600"]), max_size=80)


@settings(max_examples=60)
@given(st.lists(st.one_of(_line, _line.map(lambda s: s * 300)), min_size=1, max_size=25), st.booleans(),
       st.integers(4096, 20000), st.integers(64, 3000))
def test_train_shards_cover_the_file_exactly(tmp_path_factory, lines, final_newline, shard_bytes, batch_bytes):
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path = tmp_path_factory.mktemp("c") / "c.txt"
    path.write_bytes(text.encode("utf-8"))
    sources = describe_sources([path])
    seen = []
    texts = 0
    for shard in plan_shards(sources, shard_bytes):
        for batch in read_shard(shard, purpose="train", batch_bytes=batch_bytes):
            assert b"\n" not in batch.data  # lines are documents without their newlines
            seen.append(batch.data)
            texts += batch.texts
    expected = unicodedata.normalize("NFC", text).encode("utf-8").replace(b"\n", b"")
    assert b"".join(seen) == expected
    assert texts == text.count("\n") + (0 if text.endswith("\n") or not text else 1)


@settings(max_examples=40)
@given(st.lists(_line, min_size=1, max_size=40), st.integers(4096, 9000))
def test_encode_shards_yield_each_line_once_in_order(tmp_path_factory, lines, shard_bytes):
    text = "\n".join(lines) + "\n"
    path = tmp_path_factory.mktemp("c") / "c.txt"
    path.write_bytes(text.encode("utf-8"))
    got = []
    for shard in plan_shards(describe_sources([path]), shard_bytes):
        for batch in read_shard(shard, purpose="encode", batch_bytes=100):
            got.extend(batch.data[a:b] for a, b in zip(batch.offsets[:-1].tolist(), batch.offsets[1:].tolist()))
    assert got == [unicodedata.normalize("NFC", line).encode("utf-8") for line in lines]


def _peak_bytes_reading(shard, **kwargs) -> tuple[list[bytes], int]:
    import tracemalloc

    tracemalloc.start()
    try:
        docs = [bytes(b.data[a:z]) for b in read_shard(shard, **kwargs)
                for a, z in zip(b.offsets[:-1].tolist(), b.offsets[1:].tolist())]
        return docs, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_shard_inside_a_long_line_reads_one_block_at_a_time(tmp_path):
    """A shard that starts inside a line owned by an earlier shard skips it a block at a time
    and stops at its own end: it neither holds the line in memory nor reads past itself."""
    path = tmp_path / "long.txt"
    with open(path, "wb") as f:
        f.write(b"first line\n" + b"a" * (24 << 20) + b"\nlast line\n")
    shards = plan_shards(describe_sources([path]), 1 << 20)
    inside = [s for s in shards if 0 < s.start and s.end < (24 << 20)]
    assert len(inside) > 10
    docs, peak = _peak_bytes_reading(inside[5], purpose="encode", batch_bytes=1 << 16)
    assert docs == [] and peak < 4 << 20, peak
    owner = [s for s in shards if s.start <= len(b"first line\n") < s.end][0]
    last = [s for s in shards if s.start <= (24 << 20) + 11 < s.end][0]
    assert b"last line" in b"".join(_peak_bytes_reading(last, purpose="encode", batch_bytes=1 << 16)[0])
    assert owner.start == 0


def test_a_run_of_nul_bytes_is_refused_by_the_shard_that_starts_inside_it(tmp_path):
    path = tmp_path / "nul.txt"
    with open(path, "wb") as f:
        f.write(b"some text\n" * 200_000 + bytes(8 << 20))  # the head is text: only the shards see the NULs
    shards = plan_shards(describe_sources([path]), 1 << 20)
    with pytest.raises(InputError, match="binary data"):
        _peak_bytes_reading(shards[5], purpose="train", batch_bytes=1 << 16)
