"""Hugging Face ``tokenizer.json`` export (``Tokenizer.to_hf``).

The file is plain JSON written here (no ``tokenizers`` needed to write it); load it with
``tokenizers.Tokenizer.from_file(path)`` or
``transformers.PreTrainedTokenizerFast(tokenizer_file=path)`` (the ``hf`` extra).

Pipeline: normalizer ``NFC`` (omitted for ``normalization="none"`` tokenizers) -> pre-tokenizer
``Split("\\n+", merged_with_previous)``, which reproduces bytepiece's chunking after newline runs
-> model ``Unigram`` with the bytepiece scores (float64, as bytepiece uses them).

- ``style="byte_level"`` (default, exact): the pre-tokenizer sequence ends with HF's standard
  ``ByteLevel`` (GPT-2 byte-to-character table, no prefix space, no regex) and the decoder is
  ``ByteLevel``; every bytepiece piece is a token (its bytes mapped to characters), the lattice
  runs over bytes and ids equal bytepiece ids on every golden text.
- ``style="byte_fallback"``: readable tokens, the sentencepiece-style layout of :mod:`._vocab`
  with ``byte_fallback`` on and decoders ``ByteFallback`` + ``Fuse``. Same differences from
  bytepiece as the sentencepiece export (unusable non-UTF-8 pieces, unknown-character penalty).

Ids 0-2 (``<pad>``, ``<bos>``, ``<eos>``) are registered as special added tokens, so HF maps
those literal strings in the input to ids 0-2 where bytepiece encodes them as text; set
``tokenizer.encode_special_tokens = True`` (tokenizers) or ``split_special_tokens=True``
(transformers) to treat them as text too. No post-processor: like ``bytepiece encode``,
``encode`` adds no ``<bos>``/``<eos>``. A tokenizer's own special tokens (``<|im_start|>``, ...)
follow the pieces with their bytepiece ids, as special added tokens too: HF matches them in the
text as bytepiece does with ``allowed_special="all"``. :func:`import_hf` reads an export back
(:mod:`bytepiece.interop.hf_import`: any file, however crafted, gives a ``Model`` or one
``ModelFormatError``).

transformers gives special tokens their roles (``pad_token``, ``bos_token``, ...) only from
``tokenizer_config.json`` or keyword arguments, never from a ``tokenizer.json``: a directory
export writes the config (:func:`special_token_roles`), and
:func:`bytepiece.interop.check.load_transformers` passes the roles for a lone file. The file has
no ``padding`` section, the one place transformers would take ``pad_token`` from: ``tokenizers``
would then pad every ``encode_batch`` result to the longest.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ..io import atomic
from ..model import BOS_ID, EOS_ID, FIRST_PIECE_ID, PAD_ID
from ._proto import NORMAL
from ._vocab import Style, byte_level_tokens, bytes_to_unicode, check_style, fallback_entries, special_names
from .hf_import import import_hf as import_hf  # where it always was

#: Score of tokens the lattice must never prefer (special and byte-fallback tokens are in HF's
#: piece trie, so their literal text in the input would otherwise match them).
NEVER_SCORE = -1.0e6


def build_hf_json(tokenizer, *, style: Style = "byte_level") -> dict[str, Any]:
    check_style(style)
    model: dict[str, Any]
    pre: dict[str, Any]
    decoder: dict[str, Any]
    nfc = getattr(tokenizer, "normalization", "nfc") == "nfc"
    split = {"type": "Split", "pattern": {"Regex": "\n+"}, "behavior": "MergedWithPrevious", "invert": False}
    scores = tokenizer.scores
    # user special tokens: ids after the pieces, added tokens HF matches in the raw text
    specials = list(getattr(tokenizer, "special_tokens", ()))
    if style == "byte_level":
        tokens = byte_level_tokens(tokenizer.model.pieces, bytes_to_unicode())
        names = special_names(set(tokens))
        vocab = [[n, NEVER_SCORE] for n in names]
        vocab += [[t, float(scores[i + FIRST_PIECE_ID])] for i, t in enumerate(tokens)]
        vocab += [[t, NEVER_SCORE] for t in specials]
        model = {"type": "Unigram", "unk_id": None, "vocab": vocab, "byte_fallback": False}
        pre = {"type": "Sequence", "pretokenizers": [
            split,
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        ]}
        decoder = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    else:
        entries, extras = fallback_entries(tokenizer)
        names = [e.token for e in entries[:FIRST_PIECE_ID]]
        # HF has no unused/byte token types: every vocabulary string is in its piece trie, so
        # only normal pieces keep their score. (HF's unknown-character score is the lowest
        # score minus 10, here NEVER_SCORE - 10: a character no piece covers is taken alone only
        # when no longer piece covers it; the sentencepiece export charges lowest score - 10.)
        vocab = [[e.token, e.score if e.type == NORMAL else NEVER_SCORE] for e in entries]
        vocab += [[t, NEVER_SCORE] for t in specials] + [[extras[0].token, NEVER_SCORE]]
        model = {"type": "Unigram", "unk_id": len(vocab) - 1, "vocab": vocab, "byte_fallback": True}
        pre = split
        decoder = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}
    added = [
        {"id": i, "content": n, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, n in enumerate(names)
    ]
    first_special = tokenizer.model.vocab_size
    added += [{"id": first_special + k, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True} for k, t in enumerate(specials)]
    if style == "byte_fallback":
        unk_id = model["unk_id"]
        added.append({"id": unk_id, "content": vocab[unk_id][0], "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"} if nfc else None,
        "pre_tokenizer": pre,
        "post_processor": None,
        "decoder": decoder,
        "model": model,
    }


def special_token_roles(data: dict[str, Any]) -> dict[str, Any]:
    """The role transformers gives each special token of an export (a ``build_hf_json`` result,
    or a ``tokenizer.json`` bytepiece wrote): ``pad_token``, ``bos_token`` and ``eos_token`` are
    ids 0-2, ``unk_token`` the ``byte_fallback`` style's unknown token, and
    ``additional_special_tokens`` the tokenizer's own special tokens. transformers takes the
    roles from ``tokenizer_config.json`` (a directory export writes it) or from keyword
    arguments, never from a ``tokenizer.json``: see :func:`bytepiece.interop.check.load_transformers`."""
    from ..errors import InputError

    try:
        added = [(int(t["id"]), str(t["content"])) for t in data["added_tokens"] if t.get("special")]
        unk_id = data["model"].get("unk_id")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"not an HF tokenizer.json written by bytepiece (no special added tokens: {e!r})") from None
    by_id = dict(added)
    if any(i not in by_id for i in (PAD_ID, BOS_ID, EOS_ID)):
        raise InputError("not an HF tokenizer.json written by bytepiece (ids 0-2 are not its pad, bos and eos tokens)")
    roles: dict[str, Any] = {"pad_token": by_id[PAD_ID], "bos_token": by_id[BOS_ID], "eos_token": by_id[EOS_ID]}
    if unk_id is not None and unk_id in by_id:
        roles["unk_token"] = by_id[unk_id]
    extra = [content for i, content in added if i not in (PAD_ID, BOS_ID, EOS_ID, unk_id)]
    if extra:
        roles["additional_special_tokens"] = extra
    return roles


#: What a directory export writes (``transformers.AutoTokenizer.from_pretrained(directory)``).
DIRECTORY_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def is_directory_target(path: str | os.PathLike) -> bool:
    """An existing directory, or a new path without an extension, receives the directory layout."""
    path = Path(path)
    return path.is_dir() or (not path.suffix and not os.path.lexists(path))


def export_hf(tokenizer, path: str | os.PathLike, *, style: Style = "byte_level", overwrite: bool = True) -> Path:
    """Write ``tokenizer`` as an HF ``tokenizer.json`` (atomically). ``path`` may be a directory,
    which receives ``tokenizer.json`` plus ``tokenizer_config.json`` / ``special_tokens_map.json``
    so that ``transformers.AutoTokenizer.from_pretrained(path)`` works; the three files are one
    atomic set and, without ``overwrite``, none of them may exist yet. Returns the json path."""
    return write_hf(build_hf_json(tokenizer, style=style), path, overwrite=overwrite)


def write_hf(data: dict, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write a ``build_hf_json`` result as :func:`export_hf` does; returns the json path. A
    directory created for the export is removed again if the export fails (a full disk must
    not leave an empty ``DIR`` behind)."""
    path = Path(path)
    created: list[Path] = []
    try:
        with atomic.OutputSet(overwrite=overwrite) as out:
            if is_directory_target(path):
                _make_dirs(path, created)
                special = special_token_roles(data)
                config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 30,
                          "clean_up_tokenization_spaces": False, "split_special_tokens": True, **special}
                directory, path = path, path / DIRECTORY_FILES[0]
                out.write(path, dumps(data))
                out.write(directory / DIRECTORY_FILES[1], json.dumps(config, indent=2))
                out.write(directory / DIRECTORY_FILES[2], json.dumps(special, indent=2))
            else:
                out.write(path, dumps(data))
    except BaseException:
        for directory in reversed(created):  # deepest first; one that holds anything stays
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    return path


def _make_dirs(path: Path, created: list[Path]) -> None:
    """``mkdir -p path``, appending each directory this call creates to ``created`` (parents first)."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        created.append(directory)


def dumps(data: dict) -> str:
    """JSON text of a tokenizer dict whose Unigram scores parse back to the exact float64.

    ``tokenizers`` parses JSON numbers with serde_json's fast path (``significand as f64``, then
    one multiplication or division by a power of ten), which is off by one ulp for about a
    quarter of Python's shortest ``repr`` strings; a one-ulp change flips exact Viterbi ties.
    Each score is therefore written as a decimal that both serde_json and Python read exactly.
    """
    vocab = data["model"]["vocab"]
    shell = {**data, "model": {**data["model"], "vocab": "\0VOCAB\0"}}
    text = json.dumps(shell, ensure_ascii=False)
    rows = ",".join(f"[{json.dumps(token, ensure_ascii=False)},{exact_float_text(score)}]" for token, score in vocab)
    return text.replace(json.dumps("\0VOCAB\0"), f"[{rows}]", 1)


def _serde_f64(significand: int, decimals: int) -> float:
    """What serde_json (without float_roundtrip) makes of ``significand * 10**-decimals``."""
    return float(significand) / 10.0**decimals


def exact_float_text(x: float) -> str:
    """A decimal string that serde_json and Python both parse to exactly ``x``."""
    from fractions import Fraction

    x = float(x)
    text = repr(x)
    if not math.isfinite(x):
        raise ValueError(f"score {x} is not finite")
    if "e" not in text and "inf" not in text:
        digits = text.lstrip("-").replace(".", "")
        decimals = len(text.partition(".")[2])
        if int(digits) < 1 << 64 and _serde_f64(int(digits), decimals) == abs(x):
            return text
    ax = abs(x)
    sign = "-" if x < 0 else ""
    fallback = None
    for k in range(22, -1, -1):
        center = int(Fraction(ax) * 10**k)
        if center >= 1 << 64:
            continue
        for significand in sorted(range(max(center - 4, 0), center + 6), key=lambda v: abs(v - center)):
            if significand < 1 << 64 and _serde_f64(significand, k) == ax:
                padded = str(significand).rjust(k + 1, "0")
                candidate = sign + (f"{padded[:-k]}.{padded[-k:]}" if k else padded)
                if float(candidate) == x:
                    return candidate
                fallback = fallback or candidate
    return fallback or text
