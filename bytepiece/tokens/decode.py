"""``decode_corpus``: token files back to documents, with their boundaries.

Every output of ``encode_corpus`` reads back here: a sharded corpus (its manifest or prefix),
one ``.bin`` of either layout, an ``.npy`` pair, or lines of ids (a file or standard input).
Documents come back in order, a batch at a time, as text (a line per document) or as JSON
Lines (``{"text": ...}`` per document, which keeps documents that hold newlines whole).

Which one ``format="auto"`` writes follows the document model the corpus was encoded with
(recorded in its manifest or sidecar): text when every document was a line of text, JSON Lines
otherwise. Text output never merges documents silently: a document holding a line break is an
error that names it and the option to use.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ..corpus.once import waiting_check
from ..errors import InputError
from ..io import atomic
from ..io.read import open_regular
from ..progress import Progress
from ..tokenizer import Tokenizer
from .binfile import read_meta
from .dataset import TokenDataset, batch_bounds
from .formats import token_file_kind
from .npyfile import open_npy
from .textfile import read_id_lines

DECODE_FORMATS = ("auto", "text", "jsonl")
#: tokens decoded at a time (whole documents; a longer document is one batch)
BATCH_TOKENS = 1 << 20
#: what a text line was when the corpus was encoded (``encode_corpus``'s document model)
LINE_DOCUMENTS = "each line of text, without its newline"


@dataclass
class DecodeSummary:
    """What ``decode_corpus`` wrote."""

    path: Path | None  # None: standard output
    format: str  # "text" or "jsonl"
    n_documents: int
    n_tokens: int
    text_bytes: int
    seconds: float


Batch = tuple[int, npt.NDArray[np.integer], npt.NDArray[np.int64]]  # (first document, ids, offsets)


@dataclass
class TokenInput:
    """One input opened for decoding: its documents in batches of whole documents."""

    label: str
    unit: str  # what a document is called in messages: "document" (numbered from 0) or "line" (from 1)
    n_tokens: int | None  # None: not known before reading (lines of ids)
    multiline: bool | None  # whether its documents may hold newlines (None: not recorded)
    batches: Iterator[Batch]
    special_tokens: dict[str, int] | None = None  # the special tokens it was encoded with, if recorded

    def where(self, document: int) -> str:
        return f"line {document + 1} of {self.label}" if self.unit == "line" else f"document {document} of {self.label}"


def decode_corpus(inputs: Any, model: Any, out: str | os.PathLike | None = None, *, format: str = "auto",
                  errors: str = "replace", overwrite: bool = False, progress: bool | Progress | None = False,
                  special_tokens: Iterable[str] = ()) -> DecodeSummary:
    """Decode every document of ``inputs`` (a path or a list of paths; ``"-"`` is standard
    input, read as lines of ids) with ``model`` into ``out`` (``None``: standard output).

    ``format``: ``"text"`` (a line per document), ``"jsonl"`` (``{"text": ...}`` per document)
    or ``"auto"`` (JSON Lines when the corpus's documents may hold newlines, from its manifest
    or sidecar). A corpus encoded with another model is refused; an id outside the vocabulary
    is an error naming its document. ``errors="strict"`` refuses ids whose bytes are not UTF-8.

    Special tokens added at encoding (``encode_corpus(..., special_tokens=...)``) decode to
    their text: a corpus, ``.bin`` or manifest records them; for lines of ids and ``.npy``
    files, which record nothing, give the same ``special_tokens`` (in the same order) here.
    """
    t0 = time.perf_counter()
    if format not in DECODE_FORMATS:
        raise InputError(f"unknown decode format {format!r}; choose from {', '.join(DECODE_FORMATS)}")
    if errors not in ("strict", "replace"):
        raise InputError(f"errors must be 'strict' or 'replace', got {errors!r}")
    tokenizer = Tokenizer.of(model)
    given = tokenizer.segmenter.special_token_ids(special_tokens)
    if progress is None or isinstance(progress, bool):
        progress = Progress(progress)
    if isinstance(inputs, TokenDataset):
        raise InputError("decode_corpus takes the path of a token file or corpus, not a TokenDataset: pass "
                         "the path it was opened with")
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not paths:
        raise InputError("no inputs to decode; give a token file, a corpus, or '-' for standard input")
    path = None if out is None else Path(out)
    with ExitStack() as stack:
        opened = [open_token_input(p, tokenizer, stack) for p in paths]
        if format == "auto":
            format = "jsonl" if any(o.multiline for o in opened) else "text"
        stream: IO[str] = sys.stdout
        if path is not None:
            stream = stack.enter_context(atomic.OutputSet(overwrite=overwrite)).open(path, "w")
        known = [o.n_tokens for o in opened]
        total = None if None in known else sum(k for k in known if k is not None)
        with progress.phase("decode", total) as advance:
            counts = _write(opened, stream, tokenizer, given, format, errors, advance)
    return DecodeSummary(path, format, *counts, time.perf_counter() - t0)


def _write(opened: list[TokenInput], stream: IO[str], tokenizer: Tokenizer, given: dict[str, int], format: str,
           errors: str, advance: Any) -> tuple[int, int, int]:
    """Every document of every input to ``stream``, a batch at a time; (documents, tokens, text bytes)."""
    n_documents = n_tokens = text_bytes = 0
    for item in opened:
        table = _id_table(tokenizer, given, item)
        lengths = np.fromiter(map(len, table), dtype=np.int64)
        for first, ids, offsets in item.batches:
            texts = _decode_batch(item, first, ids, offsets, table, lengths, len(table), errors)
            stream.write(_render(item, first, texts, format))
            stream.flush()
            n_documents += len(texts)
            n_tokens += int(ids.size)
            text_bytes += sum(map(len, texts))
            advance(int(ids.size))
    return n_documents, n_tokens, text_bytes


def _decode_batch(item: TokenInput, first: int, ids: npt.NDArray[np.integer], offsets: npt.NDArray[np.int64],
                  table: list[bytes], lengths: npt.NDArray[np.int64], vocab_size: int, errors: str) -> list[str]:
    """The text of each document of one batch: one join of the batch's bytes, cut at the
    documents' byte offsets."""
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        at = int(np.flatnonzero((ids < 0) | (ids >= vocab_size))[0])
        document = first + int(np.searchsorted(offsets, at, side="right")) - 1
        hint = ("was it encoded with another model, or with special tokens? Then decode with the same "
                "special_tokens (CLI: --special-token options)" if item.special_tokens is None
                else "was it encoded with another model?")
        raise InputError(f"{item.where(document)}: id {int(ids[at])} is outside this vocabulary "
                         f"(0..{vocab_size - 1}); {hint}")
    flat = ids.tolist()
    data = b"".join([table[i] for i in flat])
    ends = np.zeros(len(flat) + 1, dtype=np.int64)
    np.cumsum(lengths[np.asarray(ids, dtype=np.int64)], out=ends[1:])
    cuts = ends[np.asarray(offsets, dtype=np.int64)].tolist()
    texts = []
    for k, (a, b) in enumerate(zip(cuts, cuts[1:])):
        try:
            texts.append(data[a:b].decode("utf-8", errors))
        except UnicodeDecodeError as e:
            raise InputError(f"{item.where(first + k)}: the ids spell bytes that are not UTF-8 ({e.reason}); "
                             "decode with errors='replace' to see them as U+FFFD") from None
    return texts


def _id_table(tokenizer: Tokenizer, given: dict[str, int], item: TokenInput) -> list[bytes]:
    """The bytes of each id for ``item``: the model's, then the special tokens the input records
    (or, where it records none, those given to ``decode_corpus``), each at its id."""
    table = list(tokenizer.segmenter.id_bytes)
    extra = item.special_tokens if item.special_tokens is not None else given
    if given and item.special_tokens is not None and given != item.special_tokens:
        warnings.warn(f"{item.label} records the special tokens it was encoded with, so the special_tokens "
                      "(CLI: --special-token options) given are not used for it", stacklevel=3)
    for token, token_id in sorted(extra.items(), key=lambda kv: kv[1]):
        text = token.encode("utf-8")
        if token_id < len(table):
            if table[token_id] != text:
                shown = table[token_id].decode("utf-8", "replace")
                raise InputError(f"{item.label} gives id {token_id} to special token {token!r}, but this model has "
                                 f"{shown!r} there; decode it with the model and special tokens it was encoded with")
        elif token_id == len(table):
            table.append(text)
        else:
            raise InputError(f"{item.label}: special token {token!r} has id {token_id}, but this model's ids end at "
                             f"{len(table) - 1}; decode it with the model it was encoded with")
    return table


def _recorded_specials(options: Any, label: str) -> dict[str, int] | None:
    """The ``special_tokens`` an encoded corpus records (token -> id); None when it records none."""
    if not isinstance(options, dict) or "special_tokens" not in options:
        return None
    value = options["special_tokens"]
    if not (isinstance(value, dict) and all(isinstance(k, str) and k and type(v) is int and v >= 0
                                            for k, v in value.items())):
        raise InputError(f"{label}: its record of special tokens is malformed (expected token -> id)")
    return dict(value)


def _render(item: TokenInput, first: int, texts: list[str], format: str) -> str:
    if format == "jsonl":
        return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    for k, text in enumerate(texts):
        if "\n" in text or "\r" in text:
            raise InputError(f"{item.where(first + k)} holds a line break, so text output (a line per document) "
                             "would split it; decode to JSON Lines instead: format='jsonl' (CLI: --format jsonl)")
    return "".join(t + "\n" for t in texts)


# -- inputs ---------------------------------------------------------------------------------------

def open_token_input(path: str | os.PathLike, tokenizer: Tokenizer, stack: ExitStack) -> TokenInput:
    """An input of any token format, found by what is on disk: a manifest or corpus prefix, a
    ``.bin`` with its sidecar, an ``.npy`` with its offsets, else lines of ids."""
    name = str(path)
    if name == "-":
        return TokenInput("stdin", "line", None, None, _id_line_batches(sys.stdin.buffer, "stdin"))
    path = Path(path)
    kind = token_file_kind(path)
    if kind == "corpus":
        dataset = stack.enter_context(TokenDataset(path, model=tokenizer))
        multiline = _multiline(dataset.manifest.options.get("documents"))
        return TokenInput(name, "document", dataset.n_tokens, multiline, _dataset_batches(dataset),
                          _recorded_specials(dataset.manifest.options, name))
    if kind == "npy":
        tokens, offsets = open_npy(path)
        return TokenInput(name, "document", len(tokens), None, _array_batches(tokens, offsets))
    if kind == "bin":
        dataset = stack.enter_context(TokenDataset(path, model=tokenizer))
        metadata = read_meta(path).get("metadata") or {}
        return TokenInput(name, "document", dataset.n_tokens, _multiline(metadata.get("documents")),
                          _dataset_batches(dataset), _recorded_specials(metadata, name))
    if not os.path.lexists(path):
        raise InputError(f"cannot read {path}: no such file or corpus (decode reads a corpus prefix or manifest, "
                         "a .bin, an .npy, or lines of ids)")
    f, _ = open_regular(path, what="file of token ids", error=InputError)
    stack.enter_context(f)
    return TokenInput(name, "line", None, None, _id_line_batches(f, name))


def _multiline(documents: Any) -> bool | None:
    if not isinstance(documents, dict) or not documents:
        return None
    return any(kind != LINE_DOCUMENTS for kind in documents.values())


def _dataset_batches(dataset: TokenDataset) -> Iterator[Batch]:
    first = 0
    for tokens, offsets in dataset.batches(BATCH_TOKENS):
        yield first, tokens, offsets
        first += len(offsets) - 1


def _array_batches(tokens: np.ndarray, offsets: np.ndarray) -> Iterator[Batch]:
    for start, stop in batch_bounds(offsets, BATCH_TOKENS):
        a, b = int(offsets[start]), int(offsets[stop])
        yield start, tokens[a:b], np.asarray(offsets[start:stop + 1], dtype=np.int64) - a


def _id_line_batches(stream: IO[bytes], name: str, batch_tokens: int = BATCH_TOKENS) -> Iterator[Batch]:
    """Lines of ids, a batch of lines at a time (a line is a document). From a terminal or a
    pipe, a batch also ends where the next line has not arrived yet: a line is decoded as it
    comes."""
    chunk: list[np.ndarray] = []
    first = size = 0
    more_waiting = waiting_check(stream)
    lines = stream if more_waiting is None else _ArrivingLines(stream)
    for _, ids in read_id_lines(lines, name):
        chunk.append(ids)
        size += len(ids) + 1
        if size >= batch_tokens or (isinstance(lines, _ArrivingLines) and not lines.line_ready()
                                    and more_waiting is not None and not more_waiting()):
            yield first, *_concatenate(chunk)
            first += len(chunk)
            chunk, size = [], 0
    if chunk:
        yield first, *_concatenate(chunk)


class _ArrivingLines:
    """Lines of a stream that data arrives on, read a block at a time as :func:`read_id_lines`
    asks for them, telling whether the next line is already here (so that asking the system
    whether more has arrived costs a call per block, not per line). A line longer than a block
    is kept as its blocks and joined once, each block searched once."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.block = b""  # the unread part of the last block read starts at ``pos``
        self.pos = 0
        self.ended = False

    def line_ready(self) -> bool:
        return self.ended or self.block.find(b"\n", self.pos) >= 0

    def readline(self, limit: int = -1) -> bytes:
        limit = limit if limit >= 0 else 1 << 62
        parts: list[bytes] = []
        size = 0
        while True:
            k = self.block.find(b"\n", self.pos, self.pos + (limit - size))
            if k >= 0 or len(self.block) - self.pos >= limit - size:
                stop = k + 1 if k >= 0 else self.pos + (limit - size)
                parts.append(self.block[self.pos:stop])
                self.pos = stop
                return b"".join(parts)
            parts.append(self.block[self.pos:])
            size += len(self.block) - self.pos
            read1 = getattr(self.stream, "read1", None) or self.stream.read
            self.block, self.pos = read1(1 << 16), 0
            if not self.block:
                self.ended = True
                return b"".join(parts)


def _concatenate(chunk: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(chunk) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in chunk], out=offsets[1:])
    return np.concatenate(chunk), offsets
