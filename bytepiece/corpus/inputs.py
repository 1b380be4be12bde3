"""What a user may hand to ``Trainer.train`` or ``encode_corpus``, turned into sources to shard.

- a path (``str`` or ``os.PathLike``), or a list/tuple of ``os.PathLike`` (or of paths given as
  :class:`Files`): files in any supported format; ``"-"`` is standard input; it, a pipe
  (``<(zcat f.gz)``) and a file that reports no size (``/proc/cpuinfo``) are copied to a
  temporary file first, since every pass reads the corpus again;
- :class:`Texts` or any other re-iterable of ``str`` (or UTF-8 ``bytes``), including one-shot
  iterators: each item is one document; they are written once to a temporary JSON Lines file so
  that every pass (and every worker of a local cluster) can read them.

Temporary files are removed by :meth:`CorpusInputs.close` (on success, error and Ctrl-C alike).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import once as once_inputs
from .sources import (PathLike, Source, TextDocument, check_field_names, check_text_document, describe_sources,
                      expand_url_globs, is_url, spool_stdin, spool_stream, spool_texts, stdin_buffer)


class Files:
    """Corpus files with how to read them (``labels`` name them in messages)."""

    def __init__(self, paths: PathLike | Iterable[PathLike], *, jsonl_field: str | None = None,
                 parquet_column: str | None = None, labels: Iterable[str] | None = None,
                 text_document: TextDocument | None = None) -> None:
        self.paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        self.jsonl_field = jsonl_field
        self.parquet_column = parquet_column
        self.labels = None if labels is None else list(labels)
        self.text_document = text_document


class Texts:
    """In-memory documents (``str``, or ``bytes`` holding UTF-8), each one text of the corpus."""

    def __init__(self, texts: Iterable) -> None:
        if isinstance(texts, (str, bytes)):
            raise InputError("pass a list of texts, or a path as pathlib.Path / str to use a file")
        self.texts = texts


@dataclass
class CorpusInputs:
    sources: list[Source]
    temporaries: list[Path] = field(default_factory=list)
    description: str = ""  # the files, or for texts from Python their count ("3 texts")
    spooled_invalid_utf8: int = 0
    from_python: bool = False
    streams: list[str] = field(default_factory=list)  # inputs read once, as they arrive

    def close(self) -> None:
        for path in self.temporaries:
            path.unlink(missing_ok=True)
        self.temporaries = []
        for key in self.streams:
            once_inputs.forget(key)
        self.streams = []

    def __enter__(self) -> CorpusInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_corpus(corpus: Any, *, jsonl_field: str | None = None, parquet_column: str | None = None,
                errors: str = "replace", tmp_dir: str | os.PathLike | None = None,
                text_document: TextDocument = "line", once: bool = False) -> CorpusInputs:
    """Sources for ``corpus`` (see the module docstring); close the result when done.
    ``text_document``: what a document of a plain-text file is, each ``"line"`` (without its
    newline) or the whole ``"file"``. ``once``: the corpus is read once, in this process, so
    standard input and pipes are read as they arrive instead of being copied first."""
    directory = None if tmp_dir is None else os.fspath(tmp_dir)
    if isinstance(corpus, (str, os.PathLike)):
        corpus = Files([corpus], jsonl_field=jsonl_field, parquet_column=parquet_column)
    elif isinstance(corpus, (list, tuple)) and corpus and all(isinstance(p, os.PathLike) for p in corpus):
        corpus = Files(corpus, jsonl_field=jsonl_field, parquet_column=parquet_column)
    if isinstance(corpus, Files):
        return _open_files(corpus, jsonl_field if corpus.jsonl_field is None else corpus.jsonl_field,
                           parquet_column if corpus.parquet_column is None else corpus.parquet_column, directory,
                           check_text_document(corpus.text_document or text_document), once)
    if isinstance(corpus, Texts):
        corpus = corpus.texts
    if isinstance(corpus, (bytes, bytearray)):
        raise InputError("a corpus of bytes is ambiguous; pass a list of texts or a file path")
    try:
        iter(corpus)
    except TypeError:
        raise InputError(f"cannot read a corpus from a {type(corpus).__name__}; pass a file path, a list of paths "
                         "or an iterable of str") from None
    path, count, invalid = spool_texts(corpus, directory, errors=errors)
    try:
        sources = describe_sources([path], labels=[f"{count} texts"])
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return CorpusInputs(sources, [path], f"{count} texts", invalid, from_python=True)


def _open_files(files: Files, jsonl_field: str | None, parquet_column: str | None,
                directory: str | None, text_document: TextDocument, read_once: bool = False) -> CorpusInputs:
    inputs = CorpusInputs([])
    try:
        check_field_names(jsonl_field, parquet_column)
        all_paths: list[PathLike] = []
        labels: list[str] = []
        for given, label in zip(files.paths, files.labels or [os.fspath(p) for p in files.paths]):
            matches = expand_url_globs([given])
            if matches == [given]:
                all_paths.append(given)
                labels.append(label)
            else:  # a URL pattern: the files it matches, each shown under its own URL
                all_paths += matches
                labels += [os.fspath(m) for m in matches]
        if sum(1 for p in all_paths if os.fspath(p) == "-") > 1:
            raise InputError("'-' (standard input) may be given only once")
        labels = ["<stdin>" if os.fspath(p) == "-" else label for p, label in zip(all_paths, labels)]
        paths: list[PathLike] = []
        heads: list[bytes | None] = []
        for p, label in zip(all_paths, labels):
            stream = _stream_once(os.fspath(p), label) if read_once else None
            if stream is not None:
                inputs.streams.append(os.fspath(p))
                paths.append(p)
                heads.append(stream.head)
                continue
            spooled = _spool_if_once(os.fspath(p), label, directory)
            if spooled is not None:
                inputs.temporaries.append(spooled)
            paths.append(p if spooled is None else spooled)
            heads.append(None)
        inputs.sources = describe_sources(paths, jsonl_field=jsonl_field, parquet_column=parquet_column,
                                          labels=labels, names=[os.fspath(p) for p in all_paths],
                                          text_document=text_document, heads=heads)
        inputs.description = ", ".join(labels[:3]) + (f" (+{len(labels) - 3} more)" if len(labels) > 3 else "")
    except BaseException:
        inputs.close()
        raise
    return inputs


def _stream_once(path: str, label: str) -> once_inputs.OnceStream | None:
    """Standard input or a pipe, started (its head read) to be read as it arrives; None for
    anything that can be read again (a file, a URL)."""
    if path == "-":
        return once_inputs.register(path, stdin_buffer(), label)
    if is_url(path):
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None  # describe_source says what is wrong with it
    if not stat.S_ISFIFO(info.st_mode):
        return None
    try:
        return once_inputs.register(path, open(path, "rb"), label)  # noqa: SIM115 - closed with the corpus
    except OSError as e:
        raise InputError(f"cannot read {label}: {e.strerror or e}") from None


def _spool_if_once(path: str, label: str, directory: str | None) -> Path | None:
    """A copy of an input that can be read only once, or that reports no size (standard input,
    a pipe such as ``<(zcat f.gz)``, ``/proc/cpuinfo``), since every pass and every worker
    reads the corpus again; None for an ordinary file (read in place)."""
    if path == "-":
        return spool_stdin(directory=directory)
    if is_url(path):
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None  # describe_source says what is wrong with it
    sizeless = stat.S_ISREG(info.st_mode) and info.st_size == 0
    if not (stat.S_ISFIFO(info.st_mode) or sizeless):
        return None
    try:
        if sizeless:
            with open(path, "rb") as f:
                if not f.read(1):
                    return None  # truly empty: read in place (a cluster's workers may read it too)
        with open(path, "rb") as stream:
            return spool_stream(stream, directory, label)
    except OSError as e:
        raise InputError(f"cannot read {label}: {e.strerror or e}") from None
