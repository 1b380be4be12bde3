"""Special tokens: ids, leftmost-longest matching (against ``reference.leftmost_longest``),
encode / encode_batch, the model file, and the CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import InputError, ModelFormatError, Tokenizer, load_model
from reference import leftmost_longest

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
ORIGINAL_PYTHON = Path("/work/orig/bin/python")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer("data/default.model", special_tokens=SPECIALS)


def _reference_encode(tok, text, tokens):
    out, pos = [], 0
    for start, end, t in leftmost_longest(text, tokens):
        if start > pos:
            out += tok.encode(text[pos:start])
        out.append(tok.piece_to_id(t))
        pos = end
    if pos < len(text) or not out:
        out += tok.encode(text[pos:])
    return out


def test_ids_follow_the_pieces(tok):
    base = Tokenizer("data/default.model")
    assert tok.vocab_size == base.vocab_size + 3
    assert [tok.piece_to_id(t) for t in SPECIALS] == list(range(base.vocab_size, base.vocab_size + 3))
    assert [tok.id_to_piece(i) for i in range(base.vocab_size, tok.vocab_size)] == SPECIALS
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.special_tokens == tuple(SPECIALS)


def test_default_encodes_them_as_text(tok):
    text = "<|im_start|>user\nhello<|im_end|>"
    assert tok.encode(text) == Tokenizer("data/default.model").encode(text)
    assert tok.encode(text, allowed_special=()) == tok.encode(text)


def test_allowed_special_matches_them(tok):
    text = "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(text, allowed_special="all")
    assert ids == _reference_encode(tok, text, SPECIALS)
    assert ids.count(tok.piece_to_id("<|im_start|>")) == 2
    assert tok.decode(ids) == text
    only_end = tok.encode(text, allowed_special={"<|im_end|>"})
    assert only_end == _reference_encode(tok, text, ["<|im_end|>"])
    assert tok.encode(text, allowed_special="all", add_bos=True, add_eos=True) == [1, *ids, 2]


def test_unknown_or_malformed_allowed_special(tok):
    with pytest.raises(InputError, match="not a special token"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(InputError, match="must be 'all' or a set"):
        tok.encode("x", allowed_special="<|im_end|>")


tokens_strategy = st.lists(st.text("ab<>", min_size=1, max_size=4), min_size=1, max_size=5, unique=True)


@given(tokens_strategy, st.text("ab<>x中", max_size=30))
def test_matching_is_leftmost_longest(tokens, text):
    tok = Tokenizer.from_counts({bytes([b]): 1 + b % 3 for b in range(256)}, special_tokens=tokens)
    # matched in the UTF-8 bytes, at the places leftmost-longest matching of the text finds
    data = text.encode()
    found = tok.segmenter.specials.find(data, frozenset(tokens))
    spans = [(len(data[:s].decode()), len(data[:e].decode()), tok.id_to_piece(i))
             for s, e, i in zip(found.starts.tolist(), found.ends.tolist(), found.ids.tolist())]
    assert spans == leftmost_longest(text, tokens)
    ids = tok.encode(text, allowed_special="all")
    assert ids == _reference_encode(tok, text, tokens)
    assert tok.decode(ids) == text


@given(st.lists(st.text("ab<|>", max_size=20), max_size=6), st.sampled_from([1, 2]))
def test_batch_equals_single(texts, threads):
    tok = Tokenizer.from_counts({bytes([b]): 1 + b % 3 for b in range(256)} | {b"ab": 9, b"<|": 4},
                                special_tokens=["<|>", "|>"])
    expected = [tok.encode(t, allowed_special="all") for t in texts]
    assert tok.encode_batch(texts, allowed_special="all", num_threads=threads) == expected
    flat, offsets = tok.encode_batch(texts, allowed_special="all", return_flat=True, add_bos=True, add_eos=True)
    assert flat.dtype == np.int32 and offsets[-1] == len(flat)
    assert [flat[offsets[i]:offsets[i + 1]].tolist() for i in range(len(texts))] == [[1, *e, 2] for e in expected]


def test_sampling_with_special_tokens_is_reproducible(tok):
    texts = ["<|im_start|>hello world<|im_end|> and more"] * 20
    a = tok.encode_batch(texts, allowed_special="all", alpha=0.5, seed=3, num_threads=1)
    assert a == tok.encode_batch(texts, allowed_special="all", alpha=0.5, seed=3, num_threads=2)
    assert all(tok.decode(ids) == texts[0] for ids in a)
    assert len({tuple(ids) for ids in a}) > 1


def test_bad_special_tokens():
    base = "data/default.model"
    with pytest.raises(InputError, match="empty"):
        Tokenizer(base, special_tokens=[""])
    with pytest.raises(InputError, match="reserved"):
        Tokenizer(base, special_tokens=["<eos>"])
    with pytest.raises(InputError, match="not a str"):
        Tokenizer(base, special_tokens=[b"<x>"])
    with pytest.raises(InputError, match="list of strings"):
        Tokenizer(base, special_tokens="<x>")


def test_adding_is_idempotent_and_duplicates_collapse():
    tok = Tokenizer("data/default.model", special_tokens=["<a>", "<b>", "<a>"])
    assert tok.special_tokens == ("<a>", "<b>")
    assert tok.add_special_tokens(["<b>", "<c>"]) == 1
    assert tok.special_tokens == ("<a>", "<b>", "<c>")
    assert tok.encode("<c><a>", allowed_special="all") == [tok.piece_to_id("<c>"), tok.piece_to_id("<a>")]


def test_special_token_that_is_also_a_piece():
    tok = Tokenizer("data/default.model")
    word = next(p for p in tok.pieces() if p == b"the")
    piece_id = tok.piece_to_id(word)
    tok.add_special_tokens(["the"])
    special_id = tok.piece_to_id("the")  # a str names the special token first
    assert special_id != piece_id and tok.piece_to_id(b"the") == piece_id
    assert tok.encode("the", allowed_special="all") == [special_id]
    assert tok.encode("the") == [piece_id]


def test_saved_with_the_model(tmp_path, tok):
    path = tmp_path / "special.model"
    tok.save(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["_special_tokens"] == [[tok.model.vocab_size + k, t] for k, t in enumerate(SPECIALS)]
    again = Tokenizer(path)
    assert again.special_tokens == tuple(SPECIALS)
    text = "<|endoftext|>x"
    assert again.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    assert pickle.loads(pickle.dumps(tok)).special_tokens == tuple(SPECIALS)


def test_file_without_special_tokens_is_unchanged(tmp_path, tiny_model_file):
    before = Path(tiny_model_file).read_bytes()
    tok = Tokenizer(tiny_model_file)
    out = tmp_path / "again.model"
    tok.save(out)
    assert out.read_bytes() == before
    assert "_special_tokens" not in json.loads(before)


@pytest.mark.skipif(not ORIGINAL_PYTHON.exists(), reason="the original BytePiece venv is not installed")
def test_original_bytepiece_loads_a_saved_model_without_special_tokens(tmp_path, tiny_tokenizer):
    path = tmp_path / "plain.model"
    tiny_tokenizer.save(path)
    script = "import sys; from bytepiece import Tokenizer; t = Tokenizer(sys.argv[1]); print(t.encode('abcd'))"
    done = subprocess.run([str(ORIGINAL_PYTHON), "-I", "-c", script, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == tiny_tokenizer.encode("abcd")


@pytest.mark.parametrize("bad", [
    [[5, "<x>"]],            # id not right after the pieces
    [["x", "<x>"]],
    [[None]],
    "<x>",
])
def test_malformed_special_tokens_in_file(tmp_path, tiny_tokenizer, bad):
    path = tmp_path / "bad.model"
    tiny_tokenizer.save(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["_special_tokens"] = bad
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ModelFormatError, match="_special_tokens|special token"):
        load_model(path)


def test_duplicate_or_empty_special_tokens_in_file(tmp_path, tiny_tokenizer):
    n = tiny_tokenizer.vocab_size
    for bad in ([[n, "<x>"], [n + 1, "<x>"]], [[n, ""]]):
        raw = tiny_tokenizer.model.to_json_dict()
        raw["_special_tokens"] = bad
        with pytest.raises(ModelFormatError):
            load_model(raw)


def test_cli_encode_allow_special(runner, tmp_path, tiny_model_file):
    from bytepiece_cli.app import app

    src = tmp_path / "in.txt"
    src.write_text("<s>ab</s>\nab<s>\n", encoding="utf-8")
    args = ["encode", str(src), "-m", str(tiny_model_file), "--special-token", "<s>", "--special-token", "</s>"]
    tok = Tokenizer(tiny_model_file, special_tokens=["<s>", "</s>"])
    result = runner.invoke(app, [*args, "--allow-special"])
    assert result.exit_code == 0, result.output
    assert [list(map(int, line.split())) for line in result.stdout.splitlines()] == [
        tok.encode("<s>ab</s>", allowed_special="all"), tok.encode("ab<s>", allowed_special="all")]
    pieces = runner.invoke(app, [*args, "--allow-special", "--format", "pieces"])
    assert pieces.stdout.splitlines()[0].split() == ["<s>", "ab", "</s>"]
    plain = runner.invoke(app, args)
    assert plain.stdout.splitlines()[0].split() == list(map(str, tok.encode("<s>ab</s>")))


def test_cli_encode_bin_honors_special_tokens(runner, tmp_path, tiny_model_file):
    from bytepiece.tokens.binfile import open_bin
    from bytepiece_cli.app import app

    src = tmp_path / "in.txt"
    src.write_text("<s>ab\nabc<s>\n", encoding="utf-8")
    out = tmp_path / "out.bin"
    result = runner.invoke(app, ["encode", str(src), "-m", str(tiny_model_file), "--special-token", "<s>",
                                 "--allow-special", "--format", "bin", "-o", str(out)])
    assert result.exit_code == 0, result.output
    tokens, offsets = open_bin(out)
    tok = Tokenizer(tiny_model_file, special_tokens=["<s>"])
    assert tokens[offsets[0]:offsets[1]].tolist() == tok.encode("<s>ab", allowed_special="all")
    assert tokens[offsets[1]:offsets[2]].tolist() == tok.encode("abc<s>", allowed_special="all")


def test_cli_train_reserves_special_tokens(runner, tmp_path):
    from bytepiece_cli.app import app

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world, hello tokens\n" * 200, encoding="utf-8")
    out = tmp_path / "m.model"
    result = runner.invoke(app, ["train", str(corpus), "-o", str(out), "-v", "300", "--special-token", "<|im_start|>",
                                 "--special-token", "<|im_end|>", "-w", "1"])
    assert result.exit_code == 0, result.output
    tok = Tokenizer(out)
    assert tok.special_tokens == ("<|im_start|>", "<|im_end|>")
    assert tok.piece_to_id("<|im_end|>") == tok.vocab_size - 1


def test_cli_rejects_bad_special_token(runner, tmp_path, tiny_model_file):
    from bytepiece_cli.app import app

    src = tmp_path / "in.txt"
    src.write_text("ab\n", encoding="utf-8")
    result = runner.invoke(app, ["encode", str(src), "-m", str(tiny_model_file), "--special-token", "<bos>"])
    assert result.exit_code == 1
    assert "reserved" in result.output


@given(st.lists(st.sampled_from(["<a>", "<b>", "<c>", "<d>"]), max_size=4),
       st.lists(st.sampled_from(["<a>", "<b>", "<c>", "<d>", "<e>"]), max_size=5))
def test_special_token_ids_are_the_ids_add_special_tokens_would_give(known, asked):
    tok = Tokenizer.from_counts({bytes([b]): 1 + b for b in range(256)}, special_tokens=known)
    before = tok.vocab_size
    ids = tok.segmenter.special_token_ids(asked)
    assert tok.vocab_size == before  # nothing added
    tok.add_special_tokens(asked)
    assert ids == {t: tok.piece_to_id(t) for t in dict.fromkeys(asked)}


def test_tokenizer_of_keeps_a_tokenizer_and_its_special_tokens(tiny_model_file):
    tok = Tokenizer(tiny_model_file, special_tokens=["<s1>"])
    assert Tokenizer.of(tok) is tok and Tokenizer.of(tok, normalization="nfc") is tok
    raw = Tokenizer.of(tok, normalization="none")
    assert raw.normalization == "none" and raw.special_tokens == ("<s1>",)
    assert raw.encode("ab<s1>", allowed_special="all") == tok.encode("ab<s1>", allowed_special="all")
    loaded = Tokenizer.of(tiny_model_file, normalization="none")
    assert loaded.normalization == "none" and loaded.pieces() == tok.pieces()
