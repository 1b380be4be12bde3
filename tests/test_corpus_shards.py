"""Shards read for training: whatever the shard and batch sizes, the texts seen are the file's
lines, including lines far longer than a batch (cut only at chunk boundaries where NFC cannot
join)."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece.corpus import describe_sources, plan_shards, read_shard

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
