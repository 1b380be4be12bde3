"""``Model.summary()``, ``len(model)``, its short ``repr``, and ``display_piece`` (how ``inspect``
and ``encode --format pieces`` show a piece)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import Model, load_model
from bytepiece.summary import display_piece
from bytepiece_cli.app import app

_ESCAPE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})|\\n|\\r|\\t|\\\\|▁|.", re.S)


def _parse(shown: str) -> bytes:
    """The inverse of ``display_piece``, written from its documented rules."""
    out = bytearray()
    for m in _ESCAPE.finditer(shown):
        token = m.group()
        if m.group(1):
            out.append(int(m.group(1), 16))
        elif m.group(2) or m.group(3):
            out += chr(int(m.group(2) or m.group(3), 16)).encode("utf-8")
        else:
            out += {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\", "▁": " "}.get(token, token).encode("utf-8")
    return bytes(out)


@given(st.binary(max_size=24) | st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_display_piece_is_visible_and_unambiguous(piece):
    shown = display_piece(piece)
    assert _parse(shown) == piece
    assert not any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in shown), shown


def test_display_piece_escapes_once():
    assert display_piece(b"\xe5") == "\\xe5"  # not '\\\\xe5', not "'\\xe5'"
    assert display_piece("中".encode()) == "中"
    assert display_piece(b" a\\b\n") == "▁a\\\\b\\n"
    assert display_piece("\u00a0▁".encode()) == "\\u00a0\\u2581"


def _model(special=()) -> Model:
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"ab": 50, b"abc": 30, b"\xe5": 20, "中文".encode(): 11})
    return Model.from_counts(counts).with_special_tokens(special)


def test_summary_matches_a_direct_count():
    model = _model()
    s = model.summary(top=3)
    lengths = Counter(len(p) for p in model.pieces)
    total = int(model.counts.sum())
    assert s.vocab_size == model.vocab_size == len(model.pieces) + 3 and s.pieces == len(model.pieces)
    assert s.total_count == total and s.longest_piece == 6
    assert s.mean_piece_length == np.mean([len(p) for p in model.pieces])
    assert [(r.length, r.pieces) for r in s.lengths] == sorted(lengths.items())
    for row in s.lengths:
        share = sum(int(c) for p, c in zip(model.pieces, model.counts) if len(p) == row.length) / total
        assert abs(row.count_share - share) < 1e-12
    assert [(t.piece, t.count) for t in s.top] == [(b"ab", 50), (b"abc", 30), (b"\xe5", 20)]
    assert all(model.pieces[t.id - 3] == t.piece for t in s.top)
    assert s.utf8_pieces == sum(1 for p in model.pieces if p.isascii() or p == "中文".encode())


def test_len_and_repr_are_short():
    model = _model(["<|im_start|>"])
    assert len(model) == model.vocab_size + 1 == model.summary().ids
    text = repr(model)
    assert text == f"Model(vocab_size={model.vocab_size}, pieces={len(model.pieces)}, special_tokens=('<|im_start|>',))"
    assert len(repr(load_model("data/default.model"))) < 60  # 32k pieces, one short line


def test_inspect_shows_the_summary(runner, tmp_path):
    path = tmp_path / "m.model"
    _model(["<sep>"]).save(path)
    result = runner.invoke(app, ["inspect", str(path), "--top", "4"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "263 (259 pieces + 3 reserved + 1 special token)" in out
    assert "<sep>" in out
    top = out.split("most frequent")[1]
    assert "│ \\xe5 " in top and "\\\\xe5" not in top and "'" not in top  # the byte escaped once, no quotes
    assert "│ 中文 " in top and "│ ab " in top
