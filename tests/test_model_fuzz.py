"""Mutated model files: every load either gives a model that encodes correctly or raises
ModelFormatError (never TypeError, OverflowError, RecursionError, a NaN score or a hang)."""

from __future__ import annotations

import base64
import json
import math
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bytepiece import ModelFormatError, Tokenizer, load_model

PIECES = {**{bytes([b]): 1 + b % 7 for b in range(256)}, b"ab": 40, b"abc": 12, "中文".encode(): 8, b"  ": 6}
TEXTS = ["abcab  中文", "", "\x00\xff", "naïve café 中文字"]


def _valid() -> dict:
    ordered = sorted(PIECES, key=lambda p: (len(p), p))
    return {base64.b64encode(p).decode(): [i + 3, p.decode("utf-8", "ignore"), PIECES[p]] for i, p in enumerate(ordered)}


VALID = _valid()
KEYS = sorted(VALID)

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1.0, 1e30, -0.0, 5.0]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                           max_leaves=12)


@st.composite
def mutated(draw) -> object:
    data = {k: list(v) for k, v in VALID.items()}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["count", "field", "entry", "drop", "add", "rename", "swap-ids", "nest", "whole"]))
        key = draw(st.sampled_from(KEYS))
        if key not in data:
            continue
        if kind in ("field", "count") and isinstance(data[key], list) and len(data[key]) == 3:
            index = 2 if kind == "count" else draw(st.integers(0, 2))
            data[key][index] = draw(numbers if kind == "count" else json_values)
        elif kind == "entry":
            data[key] = draw(json_values)
        elif kind == "drop":
            del data[key]
        elif kind == "add":
            data[draw(st.one_of(st.text(max_size=12), st.sampled_from(["_meta", "YWJj", "YQ==", "", "_"])))] = \
                draw(json_values)
        elif kind == "rename":
            data[draw(st.text(max_size=12))] = data.pop(key)
        elif kind == "swap-ids":
            other = draw(st.sampled_from(KEYS))
            if other in data and all(isinstance(data[k], list) and len(data[k]) == 3 for k in (key, other)):
                data[key][0], data[other][0] = data[other][0], data[key][0]
        elif kind == "nest":
            depth = draw(st.integers(1, 2000))
            value: object = data[key]
            for _ in range(depth):
                value = [value]
            data[key] = value
        else:
            return draw(st.one_of(json_values, st.just([data]), st.just({"model": data})))
    return data


def _check_loaded(model) -> None:
    tok = Tokenizer(model)
    assert all(math.isfinite(s) for s in tok.scores[3:])
    for text in TEXTS:
        ids = tok.encode(text)
        assert all(3 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == unicodedata.normalize("NFC", text)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_model_dicts_load_validly_or_raise_model_format_error(raw):
    try:
        model = load_model(raw) if isinstance(raw, dict) else load_model(_as_file(raw))
    except ModelFormatError:
        return
    _check_loaded(model)


def _as_file(raw: object):
    import io

    try:
        return io.StringIO(json.dumps(raw))
    except (ValueError, RecursionError):
        return io.StringIO("[" * 5000)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_model_text_loads_validly_or_raises_model_format_error(tmp_path_factory, data):
    text = json.dumps(VALID)
    kind = data.draw(st.sampled_from(["truncate", "insert", "replace", "nest", "numbers"]))
    at = data.draw(st.integers(0, len(text)))
    if kind == "truncate":
        text = text[:at]
    elif kind == "insert":
        text = text[:at] + data.draw(st.text(max_size=6)) + text[at:]
    elif kind == "replace":
        text = text[:at] + data.draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "9" * 30, "true",
                                                      "null", "[", "]", "{", "}", ",", '"'])) + text[at + 1:]
    elif kind == "nest":
        depth = data.draw(st.integers(1000, 200_000))
        text = "[" * depth + text + "]" * depth
    else:
        text = text.replace(", 40]", f", {data.draw(st.sampled_from(['40.0', '40.5', '4e1', '1e19', '-40', '0']))}]")
    path = tmp_path_factory.mktemp("fuzz") / "m.model"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        model = load_model(path)
    except ModelFormatError:
        return
    _check_loaded(model)
