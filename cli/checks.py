"""Strict option values and checks done before any work: inputs that exist, outputs that can
be written (existing files only with --force), numbers in plain decimal.

A malformed option value is a usage error (one line, exit status 2, see :mod:`.core`); a missing
input or an output in the way is a failure (one line, exit status 1)."""

from __future__ import annotations

import enum

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .common import UsageError
from .messages import fail, in_cli_words, note

FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
INT = re.compile(r"-?[0-9]+")


def usage_error(message: str, subjects: Mapping[str, str] | None = None) -> Exception:
    """A command line that cannot run as written (exit status 2), to ``raise``; ``subjects``
    as :func:`.messages.in_cli_words` takes them, for a library's message about the command's options."""
    return UsageError(in_cli_words(message, subjects))


def parse_seed(raw: str, option: str = "--seed") -> int:
    """A decimal integer, strictly (``int()`` would also take ``1_0``, ``+5`` and non-ASCII digits)."""
    text = raw.strip()
    if not (text.isascii() and INT.fullmatch(text)):
        raise usage_error(f"{option}: {raw!r} is not an integer")
    return int(text)


def input_paths(values: list[str] | None) -> list[Path | str]:
    """Corpus arguments as paths; URLs (``s3://...``, ``file:///...``) stay strings, since a
    ``Path`` would fold their ``//``."""
    from bytepiece.corpus.sources import is_url

    return [value if is_url(value) else Path(value) for value in values or []]


def check_inputs(paths: Sequence[Path | str]) -> None:
    """Before any work: every local input can be read, by the corpus package's rule; a pipe such
    as ``<(zcat f.gz)`` or a terminal is read once, as it arrives, which the command can do."""
    import contextlib
    import os
    import stat

    from bytepiece.corpus.sources import local_problem

    for path in paths:
        if isinstance(path, str) or str(path) == "-":
            continue
        with contextlib.suppress(OSError):
            mode = os.stat(path).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
                continue
        problem = local_problem(os.fspath(path), os.fspath(path))
        if problem is not None:
            raise fail(problem)


def check_field_names(jsonl_field: str | None, parquet_column: str | None) -> None:
    """``--jsonl-field ""`` names no field (it used to mean the default, silently)."""
    from bytepiece.corpus.sources import check_field_names as check
    from bytepiece.errors import InputError

    try:
        check(jsonl_field, parquet_column)
    except InputError as e:
        raise usage_error(str(e)) from None


def check_cluster(cluster: str | None, workers: int | None, workers_option: str) -> None:
    """Before any work: a ``--cluster`` value that names no cluster, or a local thread count
    (``workers_option``) beside a cluster that brings its own workers, which would be ignored."""
    if cluster is None:
        return
    from bytepiece.engine.make import check_workers_apply, cluster_kind
    from bytepiece.errors import InputError

    try:
        cluster_kind(cluster)
        check_workers_apply(cluster, workers, cli=workers_option)
    except InputError as e:
        raise usage_error(str(e), {"cluster": "--cluster"}) from None


def note_unused_parquet_column(parquet_column: str | None, paths: Sequence[Path | str]) -> None:
    """``--parquet-column`` names the column of Parquet inputs only: given with none, it would
    be ignored without a word. Said only where that is known before the run reads anything
    (local files; standard input, pipes and URLs are described as the run opens them)."""
    if parquet_column is None or not paths:
        return
    import os
    import stat

    from bytepiece.corpus.sources import describe_source
    from bytepiece.errors import InputError

    for path in paths:
        if isinstance(path, str) or str(path) == "-":
            return
        try:
            if not stat.S_ISREG(os.stat(path).st_mode) or describe_source(path).format == "parquet":
                return
        except (OSError, InputError):  # the run reports it, in its own words
            return
    note("--parquet-column has no effect: no input is a Parquet file")


def check_outputs(paths: list[Path], force: bool) -> None:
    """Before any work: existing files need --force; missing or read-only directories fail now."""
    from bytepiece.io.atomic import check_writable, is_stream

    existing = [str(p) for p in paths if p.is_file() and not is_stream(p)]
    if existing and not force:
        raise fail(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; pass --force to overwrite")
    check_writable(paths, overwrite=force)


class TextDocument(str, enum.Enum):
    """What a document of a plain-text input is (``--text-document``)."""

    line = "line"
    file = "file"


TEXT_DOCUMENT_HELP = "Plain text: a document per line (without its newline) or the whole file."
