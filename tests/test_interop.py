"""sentencepiece / HF tokenizers export and sentencepiece import, checked with the real libraries.

The exported files are loaded by ``sentencepiece`` and ``tokenizers`` (the ``test`` extra; tests
that need them are skipped when they are missing) and must give bytepiece's ids. Where they
cannot, the difference must be one of the documented, systematic ones (see the interop section
of the README):

- ``byte_fallback`` style: a multi-byte piece that is not valid UTF-8 cannot be a string token,
  so texts whose bytepiece segmentation uses one segment differently;
- sentencepiece stores scores and adds them up in float32: an exact or float32-level tie between
  two segmentations may be broken the other way (same bytes, float64 scores within float32
  rounding of each other);
- sentencepiece has no NFC normalizer: texts are NFC-normalized before sentencepiece sees them.

The HF ``byte_level`` export (the default) is exact on every golden text of all four models.
"""

from __future__ import annotations

import io
import json
import random
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import Tokenizer
from bytepiece.errors import ModelFormatError
from bytepiece.interop import EXTRAS, MissingExtraError
from bytepiece.interop.check import SAMPLE_TEXTS, agreement, load_hf, load_sentencepiece
from bytepiece.interop.hf import export_hf
from bytepiece.interop.sentencepiece import export_sentencepiece, import_sentencepiece, sentencepiece_id_map

STYLES = ("byte_fallback", "byte_level")
MODELS = ("bytepiece_80k", "bytepiece.plus.40k", "bytepiece.plus.160k", "bytepiece.zh.id.eu.80k")
TINY_TEXTS = ["abcd", "abcabcd cd", "中文中", "中文 ab\n\n\ncd\n", "é ü 👩‍💻", "  \t  ", "", "<bos>ab<eos>", "a\x00b"]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _golden(shared: Path, name: str) -> list[dict]:
    with open(shared / "golden" / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# -- files written without the libraries: round trips through our own codec ------------------------


@pytest.mark.parametrize("style", STYLES)
def test_sentencepiece_roundtrip_tiny(tmp_path, tiny_tokenizer, style):
    path = export_sentencepiece(tiny_tokenizer, tmp_path / "tiny.model", style=style)
    model = import_sentencepiece(path)
    assert model.pieces == tiny_tokenizer.model.pieces
    assert model.counts.tolist() == tiny_tokenizer.model.counts.tolist()
    assert model.metadata["sentencepiece"]["counts"].startswith("exact")
    assert import_sentencepiece(path.read_bytes()).pieces == model.pieces
    ids = sentencepiece_id_map(path, model)
    assert ids[: tiny_tokenizer.vocab_size].tolist() == list(range(tiny_tokenizer.vocab_size))


@pytest.mark.parametrize("style", STYLES)
def test_sentencepiece_roundtrip_published_model(tmp_path, load_shared_tokenizer, style):
    tok = load_shared_tokenizer("bytepiece_80k")
    model = import_sentencepiece(export_sentencepiece(tok, tmp_path / "80k.model", style=style))
    assert model.pieces == tok.model.pieces
    assert np.array_equal(model.counts, tok.model.counts)
    assert np.array_equal(Tokenizer(model).scores, tok.scores)


def test_exported_files_are_world_readable_like_open(tmp_path, tiny_tokenizer):
    import os

    mask = os.umask(0o022)
    try:
        sp = export_sentencepiece(tiny_tokenizer, tmp_path / "t.model")
        hf = export_hf(tiny_tokenizer, tmp_path / "t.json")
    finally:
        os.umask(mask)
    assert sp.stat().st_mode & 0o777 == 0o644
    assert hf.stat().st_mode & 0o777 == 0o644


def test_import_rejects_garbage_and_missing(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(ModelFormatError):
        import_sentencepiece(bad)
    with pytest.raises(ModelFormatError, match="does not exist"):
        import_sentencepiece(tmp_path / "missing.model")
    with pytest.raises(ModelFormatError, match="directory"):
        import_sentencepiece(tmp_path)


# -- the real libraries on the tiny vocabulary ---------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_sentencepiece_loads_and_agrees_tiny(tmp_path, tiny_tokenizer, style):
    pytest.importorskip("sentencepiece")
    path = export_sentencepiece(tiny_tokenizer, tmp_path / "tiny.model", style=style)
    sp = load_sentencepiece(path)
    assert sp.get_piece_size() >= tiny_tokenizer.vocab_size
    assert (sp.pad_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
    ties = 0
    for text in TINY_TEXTS + SAMPLE_TEXTS:
        ours = tiny_tokenizer.encode(text)
        theirs = sp.encode(_nfc(text))
        if theirs != ours:  # e.g. "\n\n\n": "\n" + "\n\n" and "\n\n" + "\n" score the same
            assert _explain(tiny_tokenizer, ours, theirs, float32=True, utf8_only=False) == "float32 tie", text
            ties += 1
        assert sp.decode(ours) == _nfc(text)
    assert ties <= 2


@pytest.mark.parametrize("style", STYLES)
def test_hf_loads_and_agrees_tiny(tmp_path, tiny_tokenizer, style):
    pytest.importorskip("tokenizers")
    path = export_hf(tiny_tokenizer, tmp_path / "tokenizer.json", style=style)
    hf = load_hf(path)
    for text in TINY_TEXTS + SAMPLE_TEXTS:
        ours = tiny_tokenizer.encode(text)
        assert hf.encode(text).ids == ours, text
        assert hf.decode(ours, skip_special_tokens=False) == _nfc(text)
    # Without encode_special_tokens, HF maps the literal text "<bos>" to the special id (documented).
    assert 1 in load_hf(path, text_specials=False).encode("<bos>ab").ids


def test_hf_directory_export_has_configs(tmp_path, tiny_tokenizer):
    pytest.importorskip("tokenizers")
    out = export_hf(tiny_tokenizer, tmp_path / "hfdir")
    assert out == tmp_path / "hfdir" / "tokenizer.json"
    config = json.loads((tmp_path / "hfdir" / "tokenizer_config.json").read_text())
    assert config["split_special_tokens"] is True and config["bos_token"] == "<bos>"
    assert load_hf(out).encode("abcd").ids == tiny_tokenizer.encode("abcd")


@given(st.text(alphabet="abcd 中文é\n\t<>", max_size=40))
def test_hf_byte_level_equals_bytepiece_on_any_text(tiny_tokenizer, hf_tiny_byte_level, text):
    assert hf_tiny_byte_level.encode(text).ids == tiny_tokenizer.encode(text)


@pytest.fixture(scope="module")
def hf_tiny_byte_level(tmp_path_factory, tiny_tokenizer):
    pytest.importorskip("tokenizers")
    return load_hf(export_hf(tiny_tokenizer, tmp_path_factory.mktemp("hf") / "t.json", style="byte_level"))


# -- golden texts of the published models -------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_hf_byte_level_exact_on_golden(tmp_path, shared, load_shared_tokenizer, name):
    """The default HF export gives bytepiece's (= the original's) ids on every golden text."""
    pytest.importorskip("tokenizers")
    hf = load_hf(export_hf(load_shared_tokenizer(name), tmp_path / "tokenizer.json"))
    rows = _golden(shared, name)
    wrong = [row["text"][:40] for row in rows if hf.encode(row["text"]).ids != row["ids"]]
    assert not wrong


def _explain(tok: Tokenizer, ours: list[int], theirs: list[int], *, float32: bool, utf8_only: bool) -> str | None:
    """Why ``theirs`` may differ from bytepiece's ``ours``; None when no documented reason applies."""
    vocab = tok.vocab_size
    if utf8_only:
        for i in ours:
            piece = tok.id_to_piece(i)
            if len(piece) > 1:
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError:
                    return "non-UTF-8 piece"
    if float32 and all(3 <= i < vocab for i in theirs):
        if tok.decode_bytes(theirs) == tok.decode_bytes(ours):
            s_ours = float(sum(tok.scores[i] for i in ours))
            s_theirs = float(sum(tok.scores[i] for i in theirs))
            # float32 addition error bound: ~ one float32 ulp of each partial sum
            tolerance = 2.0**-23 * float(sum(abs(tok.scores[i]) for i in theirs)) + 1e-9
            if s_theirs <= s_ours + 1e-9 and s_ours - s_theirs <= tolerance:
                return "float32 tie"
    return None


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", ["bytepiece_80k", "bytepiece.zh.id.eu.80k"])
def test_sentencepiece_golden_differences_are_explained(tmp_path, shared, load_shared_tokenizer, name, style):
    pytest.importorskip("sentencepiece")
    tok = load_shared_tokenizer(name)
    sp = load_sentencepiece(export_sentencepiece(tok, tmp_path / "x.model", style=style))
    reasons: dict[str, int] = {}
    for row in _golden(shared, name):
        theirs = sp.encode(_nfc(row["text"]))
        if theirs == row["ids"]:
            continue
        why = _explain(tok, row["ids"], theirs, float32=True, utf8_only=style == "byte_fallback")
        assert why is not None, row["text"][:60]
        reasons[why] = reasons.get(why, 0) + 1
    assert reasons.get("float32 tie", 0) <= 10  # 3 + 3 for bytepiece_80k, 2 for zh.id.eu.80k


@pytest.mark.parametrize("name", ["bytepiece_80k", "bytepiece.zh.id.eu.80k"])
def test_hf_byte_fallback_golden_differences_are_explained(tmp_path, shared, load_shared_tokenizer, name):
    pytest.importorskip("tokenizers")
    tok = load_shared_tokenizer(name)
    hf = load_hf(export_hf(tok, tmp_path / "t.json", style="byte_fallback"))
    for row in _golden(shared, name):
        theirs = hf.encode(row["text"]).ids
        if theirs != row["ids"]:
            assert _explain(tok, row["ids"], theirs, float32=False, utf8_only=True) == "non-UTF-8 piece", row["text"][:60]


def test_agreement_helper_reports_rate(tmp_path, load_shared_tokenizer):
    pytest.importorskip("tokenizers")
    tok = load_shared_tokenizer("bytepiece.plus.40k")
    path = export_hf(tok, tmp_path / "t.json")
    result = agreement(tok, path, "hf", SAMPLE_TEXTS)
    assert result.exact == result.texts == len(SAMPLE_TEXTS) and result.rate == 1.0
    with pytest.raises(ValueError):
        agreement(tok, path, "fairseq", SAMPLE_TEXTS)


# -- importing models trained by sentencepiece ---------------------------------------------------------

_WORDS = ["alpha", "beta", "gamma", "delta", "tokenizer", "piece", "byte", "中文", "分词", "模型", "data", "token"]


def _train_spm(model_type: str, vocab_size: int, n_lines: int) -> bytes:
    spm = pytest.importorskip("sentencepiece")
    rng = random.Random(0)
    lines = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n_lines)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type=model_type, vocab_size=vocab_size,
        byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=False, split_by_whitespace=False,
        remove_extra_whitespaces=False, minloglevel=2, num_threads=1,
    )
    return buf.getvalue()


def test_import_sentencepiece_trained_unigram_reproduces_its_ids():
    spm = pytest.importorskip("sentencepiece")
    data = _train_spm("unigram", 330, 3000)
    model = import_sentencepiece(data)
    info = model.metadata["sentencepiece"]
    assert info["counts"].startswith("exp(score)") and abs(info["probability_mass"] - 1) < 0.05
    tok = Tokenizer(model, normalization="none")
    idmap = sentencepiece_id_map(data, model)
    sp = spm.SentencePieceProcessor(model_proto=data)
    rng = random.Random(1)
    texts = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 9))) for _ in range(200)]
    texts += ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz 中文分词模型!") for _ in range(rng.randint(1, 30)))
              for _ in range(200)]
    for text in texts:
        assert tok.encode(text) == [int(idmap[i]) for i in sp.encode(text)], text


def test_import_rejects_bpe_model():
    data = _train_spm("bpe", 300, 600)
    with pytest.raises(ModelFormatError, match="BPE"):
        import_sentencepiece(data)


# -- missing optional packages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, loader, extra",
    [("sentencepiece", load_sentencepiece, "sentencepiece"), ("tokenizers", load_hf, "hf")],
)
def test_missing_extra_names_the_extra(monkeypatch, tmp_path, module, loader, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes ``import module`` raise ImportError
    with pytest.raises(MissingExtraError, match=re.escape(f'bytepiece-tk[{extra}]')) as info:
        loader(tmp_path / "whatever")
    assert isinstance(info.value, ImportError)


def test_extras_named_in_messages_exist_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for module, extra in EXTRAS.items():
        assert extra in extras, module
        package = "protobuf" if module.startswith("google.") else module
        assert any(dep.startswith(package) for dep in extras[extra]), module
