"""The JSON Lines kernel (``bytepiece.kernels.jsonl``) against ``json.loads``, and the reader's
kernel path against its Python path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bytepiece.corpus.read as read_module  # the kernel path is off when field_key gives None
from bytepiece.corpus import describe_sources, plan_shards, read_shard
from bytepiece.errors import InputError
from bytepiece.kernels.jsonl import BLANK, OK, PYTHON, jsonl_field_values

KEY = np.frombuffer(b"text", np.uint8)

# every character class the kernel treats differently: ASCII, escapes, 2-4 byte UTF-8, lone surrogates
chars = st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF)
texts = st.text(chars, max_size=30) | st.sampled_from(["", "a\nb", 'q"uote', "back\\slash", "\t\x00\x1f", "😀é中"])
scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | texts
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                      max_leaves=8)
records = st.dictionaries(st.sampled_from(["text", "id", "meta", "te", "textx"]) | texts, values, max_size=4)


def _dump(obj, ensure_ascii: bool, compact: bool) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(obj, ensure_ascii=ensure_ascii, separators=separators).encode("utf-8", "surrogatepass")


def _python(line: bytes):
    """What the Python path makes of a line: ("blank",), ("ok", utf8) or ("error",)."""
    if not line.strip():
        return ("blank",)
    try:
        value = json.loads(line.decode("utf-8"))["text"]
        if not isinstance(value, str):
            return ("error",)
        return ("ok", value.encode("utf-8"))
    except (ValueError, KeyError, TypeError, UnicodeError, RecursionError):
        return ("error",)


def _kernel(lines: list[bytes], final_newline: bool = True):
    blob = b"\n".join(lines) + (b"\n" if final_newline else b"")
    status, starts, bounds, ascii_flags, out = jsonl_field_values(np.frombuffer(blob, np.uint8), KEY)
    assert len(status) == len(lines)
    assert starts.tolist() == np.cumsum([0] + [len(x) + 1 for x in lines[:-1]]).tolist()
    return [(int(status[j]), out[bounds[j]:bounds[j + 1]].tobytes(), bool(ascii_flags[j])) for j in range(len(lines))]


def _agrees(line: bytes, result) -> None:
    status, value, is_ascii = result
    expected = _python(line)
    if status == BLANK:
        assert expected == ("blank",), line
    elif status == OK:
        assert expected == ("ok", value), line
        assert is_ascii == value.isascii()
    else:
        assert status == PYTHON
        assert expected != ("blank",), line


@given(st.lists(st.tuples(records, st.booleans(), st.booleans()), min_size=1, max_size=6))
def test_valid_records_match_json_loads(items):
    lines = [_dump(obj, a, c) for obj, a, c in items]
    for line, result, (obj, _, _) in zip(lines, _kernel(lines), items):
        _agrees(line, result)
        value = obj.get("text")
        plain = isinstance(value, str) and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
        nan_free = "NaN" not in line.decode("utf-8", "replace") and "Infinity" not in line.decode("utf-8", "replace")
        surrogate_free = not any(0xD800 <= ord(ch) <= 0xDFFF for ch in json.dumps(obj, ensure_ascii=False))
        if plain and nan_free and surrogate_free and _depth(obj) < 200:
            assert result[0] == OK, line  # ordinary records never take the slow path


def _depth(obj) -> int:
    if isinstance(obj, dict):
        return 1 + max(map(_depth, obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max(map(_depth, obj), default=0)
    return 0


@given(records, st.booleans(), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=3),
       st.sampled_from(["replace", "insert", "delete"]))
def test_damaged_records_are_never_misread(obj, ensure_ascii, edits, how):
    line = bytearray(_dump({"text": "abc", **obj}, ensure_ascii, False))
    for pos, byte in edits:
        pos %= len(line) + 1
        if how == "insert":
            line[pos:pos] = bytes([byte])
        elif pos < len(line):
            if how == "replace":
                line[pos] = byte
            else:
                del line[pos]
    line = bytes(line).replace(b"\n", b" ")
    _agrees(line, _kernel([line])[0])


@pytest.mark.parametrize("line", [
    b'{"text": NaN}', b'{"text": "a", "x": Infinity}', b'{"text": "\\ud800"}', b'{"text": "\\udc00x"}',
    b'{"text": "a\tb"}', b'{"text": "\xff"}', b'{"text": "\xed\xa0\x80"}', b'{"text": "\xc0\x80"}', b'\x0b{"text": "a"}',
    b'{"text": "a"} x', b'{"text": "a",}', b'{"text": "a" "b"}', b'{"te\\u0078t": "escaped key"}', b'{"text": 01}',
    b'{"text": "a", "n": 1.}', b'{"text": "a", "n": -}', b'{"text": "a", "n": 1e}', b'[1, 2]', b'"text"', b'{"text": ',
    b'{"text": "a", "text": 3}', b'{"text": 3, "text": "b"}', b'{"x": [' * 300 + b']' * 300 + b', "text": "deep"}',
    b'\xef\xbb\xbf{"text": "bom"}', b' \t\r', b'\x0c', b'', b'{}', b'{"text": "a\\u0000b\\/\\b\\f\\n\\r\\t\\"\\\\"}',
    b'{"text": "\\uD83D\\uDE00 \\u00E9 \\u4e2d", "a": {"b": [true, false, null, -0.5E+3, {}]}}  \r',
])
def test_hand_picked_lines(line):
    _agrees(line, _kernel([line])[0])


def test_last_line_without_newline_and_duplicate_keys():
    lines = [b'{"text": "one"}', b'{"text": "x", "text": "two"}', b'{"te\\u0078t": "three", "\\u00e9": 1}',
             b'{"text": "x", "t\\u0065xt": "four", "\\"": "q"}']
    results = _kernel(lines, final_newline=False)
    assert [r[:2] for r in results] == [(OK, b"one"), (OK, b"two"), (OK, b"three"), (OK, b"four")]


def test_non_finite_numbers_elsewhere_fall_back():
    line = b'{"text": "t", "score": NaN}'
    assert _kernel([line])[0][0] == PYTHON
    assert math.isnan(json.loads(line)["score"])  # json.loads accepts it, so the Python path must run


# -- the reader: kernel path == Python path ----------------------------------------------------------

def _read_all(path, *, kernel: bool, monkeypatch, **kwargs):
    if not kernel:
        monkeypatch.setattr(read_module, "field_key", lambda field: None)
    try:
        shards = plan_shards(describe_sources([path], jsonl_field=kwargs.pop("field", None)), 1 << 12)
        batches = [b for s in shards for b in read_shard(s, purpose="encode", batch_bytes=256, **kwargs)]
    finally:
        monkeypatch.undo()
    docs = [b.data[b.offsets[i]:b.offsets[i + 1]] for b in batches for i in range(b.n_documents)]
    return docs, sum(b.invalid_utf8 for b in batches), sum(b.texts for b in batches)


@given(st.lists(st.tuples(texts, st.booleans(), st.sampled_from(["", "blank", "latin1", "extra"]),
                          st.sampled_from(["e\u0301", "\u00e9", ""])), min_size=1, max_size=12), st.booleans())
def test_reader_kernel_path_equals_python_path(tmp_path_factory, items, normalize):
    """Blocks mix documents NFC changes (spliced in), non-ASCII ones it leaves and ASCII ones."""
    monkeypatch = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("jsonl") / "c.jsonl"
    lines = []
    for text, ensure_ascii, twist, tail in items:
        text = "".join(ch for ch in text if not 0xD800 <= ord(ch) <= 0xDFFF) + tail  # "e\u0301": not NFC
        line = _dump({"id": 1, "text": text}, ensure_ascii, False)
        if twist == "blank":
            line = b"  "
        elif twist == "latin1":
            line = line.replace(b'"id"', b'"\xe9d"')  # invalid UTF-8 outside the text: replaced, counted
        elif twist == "extra":
            line = line + b" \r"
        lines.append(line)
    path.write_bytes(b"\n".join(lines) + b"\n")
    fast = _read_all(path, kernel=True, monkeypatch=monkeypatch, normalize=normalize)
    slow = _read_all(path, kernel=False, monkeypatch=monkeypatch, normalize=normalize)
    assert fast == slow


@pytest.mark.parametrize("content, message", [
    (b'{"text": "a"}\n{"body": "b"}\n', "line 2 has no field 'text'"),
    (b'{"text": "a"}\n\n{"text": 5}\n', "line 3: field 'text' holds a int"),
    (b'{"text": "a"}\n{"text": "b"\n', "line 2 is not valid JSON"),
])
def test_reader_errors_are_the_same_on_both_paths(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    monkeypatch = pytest.MonkeyPatch()
    for kernel in (True, False):
        with pytest.raises(InputError, match=message):
            _read_all(path, kernel=kernel, monkeypatch=monkeypatch)


@pytest.mark.parametrize("field", ['quo"te', "back\\slash", "tab\tand\nnewline", "中文", "é"])
def test_field_names_that_json_escapes(tmp_path, field):
    path = tmp_path / "c.jsonl"
    records = [{field: "value one", "text": "not this"}, {"x": 1, field: "two\nlines"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=i == 0) + "\n" for i, r in enumerate(records)), encoding="utf-8")
    monkeypatch = pytest.MonkeyPatch()
    fast = _read_all(path, kernel=True, monkeypatch=monkeypatch, field=field)
    assert fast[0] == [b"value one", b"two\nlines"]
    assert fast == _read_all(path, kernel=False, monkeypatch=monkeypatch, field=field)
