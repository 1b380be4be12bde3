"""``import_sentencepiece`` / ``bytepiece import``: the normalizer warning and files that are not
sentencepiece models at all."""

from __future__ import annotations

import io
import random
import warnings

import pytest

from bytepiece import Tokenizer
from bytepiece.errors import ModelFormatError
from bytepiece.interop import _proto as P
from bytepiece.interop.hf import export_hf
from bytepiece.interop.sentencepiece import (
    NormalizerWarning,
    export_sentencepiece,
    import_sentencepiece,
    sentencepiece_id_map,
)
from bytepiece_cli.app import app

_WORDS = ["alpha", "beta", "gamma", "delta", "tokenizer", "piece", "byte", "data", "token", "model", "Ｆｕｌｌ"]

#: the three settings that make sentencepiece's ids bytepiece's
SAME_IDS = {"normalization_rule_name": "identity", "add_dummy_prefix": False, "remove_extra_whitespaces": False}


def _texts(n: int, seed: int) -> list[str]:
    """Words with single and double spaces, leading and trailing ones, fullwidth letters (which
    NFKC changes)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(1, 8))]
        text = "".join(w + rng.choice([" ", " ", "  "]) for w in words)
        out.append(rng.choice(["", " "]) + text.rstrip(" ") + rng.choice(["", " "]))
    return out


def _train_spm(**options) -> bytes:
    spm = pytest.importorskip("sentencepiece")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_texts(3000, 0)), model_writer=buf, model_type="unigram", vocab_size=400,
        byte_fallback=True, hard_vocab_limit=False, minloglevel=2, num_threads=1, **options)
    return buf.getvalue()


def _agreement(data: bytes, model) -> float:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=data)
    idmap = sentencepiece_id_map(data, model)
    tok = Tokenizer(model, normalization="none")
    texts = _texts(300, 1)
    return sum(tok.encode(t) == [int(idmap[i]) for i in sp.encode(t)] for t in texts) / len(texts)


def _import_quietly(data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        return import_sentencepiece(data)


@pytest.mark.parametrize("change, named", [
    ({}, "'nmt_nfkc'"),  # sentencepiece's defaults: all three
    ({"normalization_rule_name": "nmt_nfkc"}, "'nmt_nfkc'"),
    ({"add_dummy_prefix": True}, "add_dummy_prefix"),
    ({"remove_extra_whitespaces": True}, "remove_extra_whitespaces"),
])
def test_import_warns_exactly_when_sentencepiece_ids_will_differ(change, named):
    """Each of the three settings alone changes ids on ordinary text, and the warning names it;
    with none of them, no warning and the same ids."""
    data = _train_spm(**({**SAME_IDS, **change} if change else {}))
    with pytest.warns(NormalizerWarning, match=named) as record:
        model = import_sentencepiece(data)
    assert len(record) == 1
    message = str(record[0].message)
    assert "add_dummy_prefix=False" in message and "identity" in message  # says what gives the same ids
    assert _agreement(data, model) < 0.9


def test_import_of_an_identity_model_is_silent_and_gives_sentencepiece_ids():
    data = _train_spm(**SAME_IDS)
    model = _import_quietly(data)
    assert _agreement(data, model) == 1.0


@pytest.mark.parametrize("style", ["byte_fallback", "byte_level"])
def test_bytepiece_exports_import_without_a_warning(tmp_path, tiny_tokenizer, style):
    path = export_sentencepiece(tiny_tokenizer, tmp_path / "t.spm.model", style=style)
    assert _import_quietly(path.read_bytes()).pieces == tiny_tokenizer.model.pieces


@pytest.mark.parametrize("options, expected", [
    ({}, "normalizes text with normalization 'nmt_nfkc', add_dummy_prefix"),
    (SAME_IDS, "gives sentencepiece's ids on NFC text, or on any text when encoding with --raw"),
])
def test_cli_import_says_in_one_note_what_gives_sentencepiece_ids(runner, tmp_path, options, expected):
    spm_file = tmp_path / "trained.spm.model"
    spm_file.write_bytes(_train_spm(**options))
    result = runner.invoke(app, ["import", str(spm_file), "-o", str(tmp_path / "out.model")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and expected in notes[0], result.stderr
    assert "Traceback" not in result.output


# -- files that are not sentencepiece models ------------------------------------------------------


def test_import_of_a_bytepiece_model_says_so(runner, tiny_model_file, tmp_path):
    with pytest.raises(ModelFormatError, match="already a bytepiece model"):
        import_sentencepiece(tiny_model_file)
    result = runner.invoke(app, ["import", str(tiny_model_file), "-o", str(tmp_path / "out.model")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {tiny_model_file} is already a bytepiece model; use it directly with -m " \
                                    "(Tokenizer(path) in Python)"
    assert not (tmp_path / "out.model").exists()


def test_import_of_an_hf_tokenizer_json_names_it(tmp_path, tiny_tokenizer):
    path = export_hf(tiny_tokenizer, tmp_path / "tok.json")
    with pytest.raises(ModelFormatError, match="is an HF tokenizer.json, not a sentencepiece model"):
        import_sentencepiece(path)
    broken = tmp_path / "broken.model"
    broken.write_text('{"not": "closed"')
    with pytest.raises(ModelFormatError, match="starts like JSON, but is not valid JSON"):
        import_sentencepiece(broken)


def test_a_model_proto_that_starts_with_a_brace_after_a_newline_still_imports():
    """Field 1 (a piece) is tagged 0x0A, a newline; a piece message 123 bytes long then puts
    ``{`` second: that is binary protobuf, not JSON with leading whitespace."""
    long_piece = P.Piece("a" * 116, -2.0)  # tag, length, 116 bytes, then the score: 123 bytes
    pieces = [P.Piece("<unk>", 0.0, P.UNKNOWN), P.Piece("b", -1.0)]
    normalizer = {"name": "identity", "add_dummy_prefix": False, "remove_extra_whitespaces": False}
    data = P.ModelProto([long_piece, *pieces], {"model_type": P.UNIGRAM}, normalizer).serialize()
    assert data[:2] == b"\n{"
    model = _import_quietly(data)
    assert model.pieces[:2] == [b"a" * 116, b"b"]


def test_json_model_detection_does_not_change_parse_errors(tmp_path):
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"\x0b\xff\xff")
    with pytest.raises(ModelFormatError, match="is not a sentencepiece model"):
        import_sentencepiece(garbage)
    spaced = tmp_path / "spaced.model"
    spaced.write_text('  \n{"YQ==": [3, "a", 1]}')
    with pytest.raises(ModelFormatError, match="already a bytepiece model"):
        import_sentencepiece(spaced)


def test_equal_scores_on_many_pieces_give_a_model_that_saves_and_loads(tmp_path, tiny_tokenizer):
    """Counts proportional to exp(score): 3,000 pieces of one score at 2**53 each would pass
    int64 in total, so the import scales them down (the saved model used to fail to load)."""
    from bytepiece.model import load_model

    proto = P.ModelProto.parse(export_sentencepiece(tiny_tokenizer, tmp_path / "spm.model").read_bytes())
    for p in proto.pieces:
        p.count = None  # no bytepiece counts: import from the scores
        if p.type == P.NORMAL:
            p.score = -0.001
    proto.pieces += [P.Piece(f"w{i:04d}", -0.001) for i in range(3000)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NormalizerWarning)
        model = import_sentencepiece(proto.serialize())
    assert int(model.counts.astype(object).sum()) < 2**63
    assert len(set(model.counts[[model.pieces.index(f"w{i:04d}".encode()) for i in range(3000)]].tolist())) == 1
    model.save(tmp_path / "imported.model")
    assert load_model(tmp_path / "imported.model").pieces == model.pieces
