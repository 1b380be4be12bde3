"""One call for an export and what it produced (``bytepiece export`` prints the report).

The export is built once and its report comes from the same object that is written, so the
numbers describe the file on disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, get_args

from ..errors import InputError
from ._vocab import PLACEHOLDER_PREFIX, Style, check_style

if TYPE_CHECKING:
    from .check import Agreement

Target = Literal["sentencepiece", "hf"]
TARGETS: tuple[str, ...] = get_args(Target)
#: the style each library is used with by default (see :mod:`.sentencepiece` and :mod:`.hf`)
DEFAULT_STYLE: dict[str, Style] = {"sentencepiece": "byte_fallback", "hf": "byte_level"}
#: the module that loads an export, and the pip extra that provides it
RUNTIME = {"sentencepiece": ("sentencepiece", "sentencepiece.SentencePieceProcessor(model_file=...)"),
           "hf": ("tokenizers", "tokenizers.Tokenizer.from_file(...)")}
#: how to load each HF export form with transformers so that pad/bos/eos have their roles
TRANSFORMERS_LOAD = {"file": "bytepiece.interop.check.load_transformers(...)",
                     "directory": "transformers.AutoTokenizer.from_pretrained(...)"}


@dataclass(frozen=True)
class ExportReport:
    path: Path  # the model file written (tokenizer.json inside a directory export)
    target: str
    style: str
    vocab_size: int  # bytepiece ids 0..vocab_size-1, the same in the export
    tokens_in_file: int  # may exceed vocab_size: <unk> and byte tokens the library requires
    unusable_pieces: int  # pieces that are not valid UTF-8, kept as placeholders (byte_fallback)
    load_with: str
    verified: Agreement | None = None  # with ``verify``: how many of its texts the export gave bytepiece's ids


def output_files(target: str, path: str | os.PathLike) -> list[Path]:
    """The files an export to ``path`` replaces (checked before anything is built)."""
    path = Path(path)
    if target == "hf":
        from .hf import DIRECTORY_FILES, is_directory_target

        if is_directory_target(path):
            return [path / name for name in DIRECTORY_FILES] if path.is_dir() else []
    return [path]


def require_runtime(target: str) -> None:
    """Fail now (``MissingExtraError``) unless the library that loads ``target`` exports is
    installed: ``--verify`` must not write a file and then find it cannot check it."""
    from . import require

    module, _ = RUNTIME[_check_target(target)]
    require(module, f"verifying a {target} export")


def export_model(tokenizer, path: str | os.PathLike, *, target: str, style: str | None = None,
                 overwrite: bool = True, verify: Iterable[str] | None = None) -> ExportReport:
    """Write ``tokenizer`` for ``target`` ("sentencepiece" or "hf") and describe the result.

    ``verify``: texts on which the export, loaded by its library, must be compared with
    bytepiece first (see :func:`.check.content_agreement`). The comparison runs on the exact
    bytes to be written and before they are, so an export that cannot be checked (its library
    missing, no texts) is an error that leaves nothing behind; the result is the report's
    ``verified``."""
    target = _check_target(target)
    chosen = _check_style(style or DEFAULT_STYLE[target])
    if verify is not None:
        require_runtime(target)
    verified = None
    if target == "sentencepiece":
        from ..io import atomic
        from ._proto import UNUSED
        from .sentencepiece import build_proto

        proto = build_proto(tokenizer, style=chosen)
        content = proto.serialize()
        if verify is not None:
            verified = _verified(tokenizer, content, target, verify)
        written = atomic.atomic_write(path, content, overwrite=overwrite)
        total = len(proto.pieces)
        unusable = sum(1 for p in proto.pieces[: tokenizer.vocab_size] if p.type == UNUSED)
        load_with = RUNTIME[target][1]
    else:
        from .hf import build_hf_json, dumps, is_directory_target, write_hf

        data = build_hf_json(tokenizer, style=chosen)
        if verify is not None:  # dumps(data) is the tokenizer.json that write_hf writes
            verified = _verified(tokenizer, dumps(data), target, verify)
        form = "directory" if is_directory_target(path) else "file"
        written = write_hf(data, path, overwrite=overwrite)
        vocab = data["model"]["vocab"]
        total = len(vocab)
        unusable = sum(1 for token, _ in vocab[: tokenizer.vocab_size] if token.startswith(PLACEHOLDER_PREFIX))
        load_with = f"{RUNTIME[target][1]}; transformers: {TRANSFORMERS_LOAD[form]}"
    return ExportReport(written, target, chosen, tokenizer.vocab_size, total, unusable, load_with, verified)


def _verified(tokenizer, content: bytes | str, target: str, texts: Iterable[str]) -> Agreement:
    from .check import content_agreement

    return content_agreement(tokenizer, content, target, texts)


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise InputError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    return target


def _check_style(style: str) -> Style:
    check_style(style)
    return cast(Style, style)
