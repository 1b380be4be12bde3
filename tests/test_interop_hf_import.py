"""``import_hf`` on crafted ``tokenizer.json`` files (issue 18, item 25): every file gives a valid
``Model`` or one ``ModelFormatError`` that names the file and the entry and field at fault,
never another exception and never a warning. Explicit cases for each defect the audit found,
then a property test that mutates real exports (both styles) in many ways."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bytepiece import Tokenizer, load_model
from bytepiece.errors import ModelFormatError
from bytepiece.interop import hf_import
from bytepiece.interop.hf import build_hf_json, dumps, export_hf, import_hf
from bytepiece.model import MAX_TOTAL_COUNT, Model
from bytepiece_cli.app import app

SPECIALS = ["<|im_start|>", "<|中文|>"]


@pytest.fixture(scope="module")
def tok():
    counts = {bytes([b]): 1 + (b % 7) for b in range(256)}
    counts.update({b"ab": 30, b"abc": 12, b"bc": 25, b"\xe4\xb8\xad": 15, b"\xe4\xb8": 4, b"\n\n": 5, b"  ": 6})
    return Tokenizer(Model.from_counts(counts), special_tokens=SPECIALS)


@pytest.fixture(scope="module")
def exports(tok) -> dict[str, dict]:
    """Both export styles as written by bytepiece's own exporter, parsed."""
    return {style: build_hf_json(tok, style=style) for style in ("byte_level", "byte_fallback")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf_import")


def _import(path) -> Model:
    """``import_hf`` with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return import_hf(path)


def _write(directory: Path, data, name: str = "tokenizer.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(data, allow_nan=True), encoding="ascii")  # a lone surrogate as its \\u escape
    return path


def _check_valid(model: Model) -> None:
    """A model every bytepiece reader accepts: it survives a full load of its own file content."""
    assert isinstance(model, Model)
    assert int(model.counts.sum()) <= MAX_TOTAL_COUNT and int(model.counts.min()) > 0
    again = load_model(model.to_json_dict())
    assert again.pieces == model.pieces and again.special_tokens == model.special_tokens


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["byte_level", "byte_fallback"])
def test_an_export_imports_back(tmp_path, tok, style):
    back = _import(export_hf(tok, tmp_path / "tokenizer.json", style=style))
    assert back.pieces == tok.model.pieces and back.special_tokens == tuple(SPECIALS)
    _check_valid(back)


def test_a_byte_level_piece_that_spells_a_placeholder_is_that_piece(tmp_path):
    """``<bytes:HEX>`` placeholders exist only in the byte_fallback style: in a byte_level export
    the piece ``<bytes:41>`` is those ten bytes (it used to be read as ``A`` and dropped)."""
    counts = {**{bytes([b]): 2 for b in range(256)}, b"<bytes:41>": 9}
    original = Tokenizer(Model.from_counts(counts))
    back = _import(export_hf(original, tmp_path / "tokenizer.json", style="byte_level"))
    assert back.pieces == original.model.pieces


def test_scores_too_far_apart_or_too_many_equal_ones_still_give_a_model(workdir, exports):
    data = copy.deepcopy(exports["byte_level"])
    vocab = data["model"]["vocab"]
    vocab[5][1], vocab[6][1] = 1.7e308, -1.7e308  # their difference overflows float64
    _check_valid(_import(_write(workdir, data)))
    for entry in vocab:  # 2**53 each would pass int64 in total
        entry[1] = 0.0
    vocab += [["Ā" * 3 + str(i), 0.0] for i in range(3000)]
    model = _import(_write(workdir, data))
    _check_valid(model)
    assert len(set(model.counts.tolist())) == 1  # still equal probabilities


# -- each defect of the audit ------------------------------------------------------------------------


def _set(*path_and_value):
    *path, value = path_and_value

    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(*path):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


V = ("model", "vocab")
CASES = [
    ("string score", _set(*V, 5, 1, "1.5"), r"the score of model\.vocab\[5\] is the string '1\.5', not a number"),
    ("null score", _set(*V, 5, 1, None), r"the score of model\.vocab\[5\] is null, not a number"),
    ("boolean score", _set(*V, 5, 1, True), r"the score of model\.vocab\[5\] is true, not a number"),
    ("NaN score", _set(*V, 5, 1, math.nan), r"the score of model\.vocab\[5\] is NaN; scores must be finite"),
    ("inf score", _set(*V, 7, 1, math.inf), r"the score of model\.vocab\[7\] is Infinity; scores must be finite"),
    ("-inf score", _set(*V, 7, 1, -math.inf), r"model\.vocab\[7\] is -Infinity; scores must be finite"),
    ("huge integer score", _set(*V, 7, 1, 10**400), r"model\.vocab\[7\] is Infinity; scores must be finite"),
    ("short entry", _set(*V, 5, ["x"]), r"model\.vocab\[5\] is a list of 1 items; each entry must be a \[token, score\]"),
    ("long entry", _set(*V, 5, ["x", 1, 2]), r"model\.vocab\[5\] is a list of 3 items; each entry must be"),
    ("integer entry", _set(*V, 5, 7), r"model\.vocab\[5\] is the number 7; each entry must be a \[token, score\]"),
    ("integer token", _set(*V, 5, 0, 7), r"the token of model\.vocab\[5\] is the number 7, not a string"),
    ("empty token", _set(*V, 5, 0, ""), r"the token of model\.vocab\[5\] is empty"),
    ("non-ByteLevel character", _set(*V, 5, 0, "中"),
     r"the token of model\.vocab\[5\] \('中'\) has the character '中' \(U\+4E2D\), which the ByteLevel"),
    ("vocab as object", _set(*V, {"a": 1}), r"model\.vocab is an object; it must be a non-empty list"),
    ("vocab as string", _set(*V, "abc"), r"model\.vocab is the string 'abc'; it must be a non-empty list"),
    ("null vocab", _set(*V, None), r"model\.vocab is null; it must be a non-empty list"),
    ("empty vocab", _set(*V, []), r"model\.vocab is a list of 0 items; it must be a non-empty list"),
    ("only reserved tokens", lambda d: d["model"].__setitem__("vocab", d["model"]["vocab"][:3]),
     r"model\.vocab has no pieces after the 3 reserved tokens"),
    ("a missing single byte", lambda d: d["model"]["vocab"].pop(10),
     r"every single byte must be a piece so any text can be encoded; missing 0x07"),
    ("added_tokens as integer", _set("added_tokens", 5), r"added_tokens is the number 5; it must be a list of objects"),
    ("null added_tokens", _set("added_tokens", None), r"added_tokens is null; it must be a list of objects"),
    ("added token as string", _set("added_tokens", ["<s>"]),
     r"added_tokens\[0\] is the string '<s>', not an object with an id and a content"),
    ("added token without id", _delete("added_tokens", 1, "id"), r'added_tokens\[1\] has no "id"'),
    ("added token with list id", _set("added_tokens", 0, "id", [1]),
     r'the "id" of added_tokens\[0\] is a list of 1 items, not an integer'),
    ("added token with boolean id", _set("added_tokens", 0, "id", False), r'the "id" of added_tokens\[0\] is false'),
    ("added token without content", _delete("added_tokens", 2, "content"), r'added_tokens\[2\] has no "content"'),
    ("special flag as string", _set("added_tokens", 0, "special", "yes"),
     r'the "special" of added_tokens\[0\] is the string \'yes\', not true or false'),
    ("empty special token", lambda d: d["added_tokens"][3].__setitem__("content", ""),
     r"added_tokens\[3\] \(id \d+\): a special token cannot be the empty string"),
    ("null model", _set("model", None), r"its model is null, not an object; it is not an HF tokenizer\.json"),
    ("no model", _delete("model"), r"it has no model; it is not an HF tokenizer\.json"),
    ("model type as number", _set("model", "type", 5), r'model\.type is the number 5, not "Unigram"'),
    ("empty object", lambda d: d.clear(), r"it has no model"),
]


@pytest.mark.parametrize("change, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_defect_is_one_model_format_error_naming_file_and_field(workdir, exports, change, expected):
    data = copy.deepcopy(exports["byte_level"])
    change(data)
    path = _write(workdir, data)
    with pytest.raises(ModelFormatError, match=expected) as caught:
        _import(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and message.endswith("or check that this is such a file"), message


def test_a_lone_surrogate_token_of_the_byte_fallback_style(workdir, exports):
    data = copy.deepcopy(exports["byte_fallback"])
    data["model"]["vocab"][260][0] = "a\ud800"
    with pytest.raises(ModelFormatError, match=r"model\.vocab\[260\] \('a\\ud800'\) holds a lone surrogate"):
        _import(_write(workdir, data))


@pytest.mark.parametrize("content, expected", [
    (b"[" * 100_000, "it is nested too deeply to be a tokenizer.json"),
    (b'{"model": {"type": "Unigram", "vocab": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}}", "nested too deeply"),
    (b'{"model": ', "it is not valid JSON"),
    (b'{"model": {"vocab": [["a", 1' + b"0" * 5000 + b"]]}}", "it is not valid JSON"),  # past int's digit limit
    (b"\xff\xfe\x00garbage", "it is not valid JSON"),
    (b"\x80{}", "it is not valid JSON"),
    (b"", "it is not valid JSON"),
    (b"[1, 2]", "it holds a list of 2 items, not a JSON object with a model"),
    (b'"tokenizer"', "it holds the string 'tokenizer', not a JSON object"),
], ids=["deep", "deep vocab", "cut", "long number", "utf-16 garbage", "not utf-8", "empty", "list", "string"])
def test_files_that_are_not_tokenizer_json(workdir, content, expected):
    path = workdir / "odd.json"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError, match=expected):
        _import(path)


def test_other_model_types_are_refused_by_name(workdir, exports):
    data = copy.deepcopy(exports["byte_level"])
    data["model"]["type"] = "BPE"
    with pytest.raises(ModelFormatError, match="holds a BPE model; only Unigram tokenizer.json files can be imported"):
        _import(_write(workdir, data))


# -- the file is read through the guarded reader ------------------------------------------------------


def test_the_file_is_read_through_the_guarded_reader(tmp_path, device_node, monkeypatch, tok):
    with pytest.raises(ModelFormatError, match="is a directory, not a regular file"):
        _import(tmp_path)
    with pytest.raises(ModelFormatError, match="does not exist"):
        _import(tmp_path / "missing.json")
    path = export_hf(tok, tmp_path / "tokenizer.json")
    monkeypatch.setattr(hf_import, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(ModelFormatError, match=f"tokenizer.json {path} is .* KiB, more than the 1,000 B a tokenizer.json can be"):
        _import(path)
    zero = device_node("zero", 5)  # endless: read whole, it would never end
    with pytest.raises(ModelFormatError, match="is a character device, not a regular file"):
        _import(zero)


# -- the command line ----------------------------------------------------------------------------------


def test_cli_import_of_a_crafted_tokenizer_json_is_one_line(runner, workdir, exports, tmp_path):
    """``bytepiece import`` reads sentencepiece models; any tokenizer.json, however damaged, is
    named as one (it used to say "already a bytepiece model" when its model was not an object)."""
    for change in (_set("model", None), _set(*V, None), _set("added_tokens", 5)):
        data = copy.deepcopy(exports["byte_level"])
        change(data)
        path = _write(workdir, data, "crafted.json")
        result = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "out.model")])
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == (f"error: {path} is an HF tokenizer.json, not a sentencepiece model; "
                                         "bytepiece.interop.hf.import_hf reads the ones bytepiece exported")
        assert not (tmp_path / "out.model").exists()


# -- property test: mutated exports -----------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6)
    | st.sampled_from(["Unigram", "ByteLevel", "<pad>", "<unk>", "<0x41>", "<0xZZ>", "<bytes:>", "<bytes:4142>",
                       "Ā", "\ud800", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["id", "content", "special", "type", "vocab", "model", "x"]), inner, max_size=3),
    max_leaves=6,
)


def _pick_container(data, draw_index):
    """A random list or object inside ``data`` (any depth) and a key or index in it."""
    node, key = data, None
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return node, None
        key = keys[draw_index(len(keys))]
        child = node[key]
        if not isinstance(child, (dict, list)) or not child or draw_index(3) == 0:
            return node, key
        node = child


def _mutate(data, draw) -> None:
    """One structural change at a random place: replace, delete, duplicate, swap, wrap, or
    insert a random JSON value."""
    node, key = _pick_container(data, lambda n: draw(st.integers(0, n - 1)))
    op = draw(st.sampled_from(["replace", "delete", "duplicate", "wrap", "insert", "swap"]))
    if key is None:
        if isinstance(node, list):
            node.append(draw(JSON_VALUES))
        return
    if op == "replace":
        node[key] = draw(JSON_VALUES)
    elif op == "delete":
        del node[key]
    elif op == "duplicate" and isinstance(node, list):
        node.insert(key, copy.deepcopy(node[key]))
    elif op == "wrap":
        node[key] = [node[key]]
    elif op == "insert" and isinstance(node, list):
        node.insert(key, draw(JSON_VALUES))
    elif op == "swap" and isinstance(node, list) and len(node) > 1:
        other = draw(st.integers(0, len(node) - 1))
        node[key], node[other] = node[other], node[key]
    else:
        node[key] = draw(JSON_VALUES)


def _expect_model_or_format_error(path) -> None:
    try:
        model = _import(path)
    except ModelFormatError as e:
        assert str(e).startswith(str(path)), e
        event("refused")
        return
    _check_valid(model)
    event("imported")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), style=st.sampled_from(["byte_level", "byte_fallback"]), changes=st.integers(1, 4))
def test_structurally_mutated_exports_give_a_model_or_one_format_error(workdir, exports, data, style, changes):
    document = copy.deepcopy(exports[style])
    for _ in range(changes):
        _mutate(document, data.draw)
    _expect_model_or_format_error(_write(workdir, document, "mutated.json"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), style=st.sampled_from(["byte_level", "byte_fallback"]))
def test_textually_mutated_exports_give_a_model_or_one_format_error(workdir, exports, data, style):
    """Byte-level damage to the file as written (truncation, flipped, inserted and removed bytes,
    numbers replaced by JSON's NaN and Infinity or by huge ones)."""
    text = dumps(exports[style]).encode("utf-8")
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete", "number"]))
        if op == "truncate":
            text = text[:at]
        elif op == "flip" and at < len(text):
            text = text[:at] + bytes([text[at] ^ data.draw(st.integers(1, 255))]) + text[at + 1:]
        elif op == "insert":
            text = text[:at] + data.draw(st.binary(min_size=1, max_size=4)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 8)):]
        else:
            start = text.find(b",-", at)
            if start > 0:
                end = text.find(b"]", start)
                number = data.draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400",
                                                    b"1" + b"0" * 400, b"true", b"null", b'"-1.5"']))
                text = text[:start + 1] + number + text[end:]
    path = workdir / "damaged.json"
    path.write_bytes(text)
    _expect_model_or_format_error(path)


def test_harmless_changes_still_import(workdir, exports):
    """Not every change is a defect: another score, a non-special added token, a missing
    ``special`` flag or no added tokens at all still give a model."""
    data = copy.deepcopy(exports["byte_fallback"])
    data["model"]["vocab"][4][1] = -0.5
    data["added_tokens"].append({"id": 5, "content": "x", "special": False})
    del data["added_tokens"][3]["special"]
    model = _import(_write(workdir, data))
    _check_valid(model)
    assert model.special_tokens == tuple(SPECIALS[1:])
    del data["added_tokens"]
    _check_valid(_import(_write(workdir, data)))
