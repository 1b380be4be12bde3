"""``bytepiece encode``: documents to token ids (lines of ids or pieces, npy, or token files and shards)."""

from __future__ import annotations

import contextlib
import enum
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer

from .checks import (FLOAT, MAX_LINE_BYTES, TEXT_DOCUMENT_HELP, check_field_names, check_inputs, check_outputs,
                     input_paths, limited_lines, parse_seed, TextDocument, usage_error)
from .common import err_console, fail, handle_errors, load_tokenizer, note
from .core import Command


class Format(str, enum.Enum):
    ids = "ids"
    pieces = "pieces"
    npy = "npy"
    bin = "bin"


FORMATS = tuple(f.value for f in Format)


class SampleSpec:
    """Parsed ``--sample`` value: ``alpha=0.1`` or ``alpha=0.1,seed=3`` (a bare number is alpha)."""

    def __init__(self, alpha: float, seed: int | None = None) -> None:
        self.alpha, self.seed = alpha, seed

    def __repr__(self) -> str:
        return f"alpha={self.alpha}" + (f",seed={self.seed}" if self.seed is not None else "")


def parse_sample(value: str | SampleSpec | None) -> SampleSpec | None:
    """``alpha=A[,seed=N]`` (or a bare ``A``); each key at most once, numbers in plain decimal."""
    if value is None or isinstance(value, SampleSpec):
        return value
    expected = "expected alpha=FLOAT[,seed=INT], e.g. --sample alpha=0.1,seed=3"
    given: dict[str, str] = {}
    for part in str(value).split(","):
        key, sep, raw = part.strip().partition("=")
        if not sep:
            key, raw = "alpha", key
        key = key.strip().lower()
        if key not in ("alpha", "seed"):
            raise usage_error(f"--sample: unknown key {key!r} in {value!r}; {expected}")
        if key in given:
            raise usage_error(f"--sample: {key} is given twice in {value!r}; {expected}")
        given[key] = raw.strip()
    if "alpha" not in given:
        raise usage_error(f"--sample: {value!r} gives no alpha; {expected}")
    raw_alpha = given["alpha"]
    if not (raw_alpha.isascii() and FLOAT.fullmatch(raw_alpha)):
        raise usage_error(f"--sample: alpha={raw_alpha!r} is not a number; {expected}")
    alpha = float(raw_alpha)
    if not 0 <= alpha < float("inf"):
        raise usage_error(f"--sample: alpha must be a finite number >= 0 for sampling, got {raw_alpha}")
    seed = parse_seed(given["seed"], "--sample seed") if "seed" in given else None
    return SampleSpec(alpha, seed)


def _sample_and_seed(sample: str | None, seed: str | None) -> tuple[SampleSpec | None, int | None]:
    spec = parse_sample(sample)
    if seed is not None:
        if spec is None:
            raise usage_error("--seed only applies to sampling; add --sample alpha=A (or drop --seed)")
        if spec.seed is not None:
            raise usage_error("the seed is given twice (--sample ...,seed=N and --seed); keep one")
        spec.seed = parse_seed(seed)
    return spec, None if spec is None else spec.seed


def read_lines(paths: list[Path], max_line: int = MAX_LINE_BYTES) -> Iterator[tuple[bytes, int]]:
    """Lines (without their ``\\n``) of each input, or of stdin, with the bytes consumed; a line
    longer than ``max_line`` is an error (``/dev/zero`` or a binary file must not eat memory)."""
    if not paths:
        yield from limited_lines(sys.stdin.buffer, "stdin", max_line)
        return
    for path in paths:
        if str(path) == "-":
            yield from limited_lines(sys.stdin.buffer, "stdin", max_line)
            continue
        with open(path, "rb") as f:
            yield from limited_lines(f, str(path), max_line)


@contextlib.contextmanager
def atomic_output(path: Path | None, binary: bool = False, overwrite: bool = True) -> Iterator[IO]:
    """stdout, or a temporary file beside ``path`` that replaces it only on success (a device
    or FIFO is written directly)."""
    if path is None:
        if binary:
            raise fail("this output format is binary; give an output file with -o")
        yield sys.stdout
        return
    from bytepiece.io.atomic import atomic_open

    with atomic_open(path, "wb" if binary else "w", overwrite=overwrite) as f:
        yield f


def render_pieces(pieces: list[bytes | str]) -> str:
    """Pieces separated by spaces, each spelled by ``bytepiece.summary.display_piece`` (a space
    is '▁', invisibles escaped); special tokens (given as str) appear by name."""
    from bytepiece.summary import display_piece

    return " ".join(p if isinstance(p, str) else display_piece(p) for p in pieces)


Files = Annotated[Optional[list[str]], typer.Argument(
    metavar="FILE", help="Text (a document per line), JSON Lines or Parquet, gzip/zstd allowed; stdin when none "
    "or '-'.", show_default=False)]
ModelOpt = Annotated[Optional[Path], typer.Option("--model", "-m", metavar="MODEL", help="Model file (default: the "
                                                  "model shipped with bytepiece).", show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option("--output", "-o", metavar="PATH", help="Output file, or a shard "
                                                "prefix with -f bin; stdout when omitted.", show_default=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output (or corpus).")]
_INPUT = "Input"
_RUN = "Where and how to run"
_SAMPLING = "Sampling"
_SPECIAL = "Special tokens"


@handle_errors
def encode(
    files: Files = None,
    model: ModelOpt = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Lines of ids or pieces; npy or bin files (need -o).")
                   ] = Format.ids,
    output: OutOpt = None,
    force: ForceOpt = False,
    add_bos: Annotated[bool, typer.Option("--add-bos", help="Start every document with <bos> (id 1).")] = False,
    add_eos: Annotated[bool, typer.Option("--add-eos", help="End every document with <eos> (id 2).")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Skip NFC normalization (byte-exact round trip).")] = False,
    sample: Annotated[Optional[str], typer.Option(
        "--sample", metavar="alpha=A[,seed=N]", help="Sample segmentations (probability ∝ p**alpha) instead of "
        "Viterbi.", show_default=False, rich_help_panel=_SAMPLING)] = None,
    seed: Annotated[Optional[str], typer.Option(metavar="N", help="Seed for --sample (reproducible output).",
                                                show_default=False, rich_help_panel=_SAMPLING)] = None,
    special_token: Annotated[Optional[list[str]], typer.Option(
        "--special-token", metavar="TEXT", help="Add a special token (an id after the model's); repeatable.",
        show_default=False, rich_help_panel=_SPECIAL)] = None,
    allow_special: Annotated[bool, typer.Option("--allow-special", help="Match special tokens in the text and emit "
                                                "their ids.", rich_help_panel=_SPECIAL)] = False,
    jsonl_field: Annotated[Optional[str], typer.Option(metavar="NAME", help="JSON Lines field holding the text "
                                                       "(default: text); given, stdin and unknown names are JSON "
                                                       "Lines.", show_default=False, rich_help_panel=_INPUT)] = None,
    parquet_column: Annotated[Optional[str], typer.Option(metavar="NAME", help="Column of Parquet inputs holding the "
                                                          "text (default: text).", show_default=False,
                                                          rich_help_panel=_INPUT)] = None,
    text_document: Annotated[TextDocument, typer.Option(help=TEXT_DOCUMENT_HELP, rich_help_panel=_INPUT)
                             ] = TextDocument.line,
    strict_utf8: Annotated[bool, typer.Option("--strict-utf8", help="Stop at invalid UTF-8 instead of replacing it.",
                                              rich_help_panel=_INPUT)] = False,
    threads: Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Threads (default: all cores).",
                                                   show_default=False, rich_help_panel=_RUN)] = None,
    shard_size: Annotated[Optional[str], typer.Option(metavar="SIZE", help="Token bytes per shard with -f bin -o "
                                                      "PREFIX (default: 1G).", show_default=False,
                                                      rich_help_panel=_RUN)] = None,
    cluster: Annotated[Optional[str], typer.Option(metavar="ADDR", help="Dask cluster for -f bin: tcp://HOST:PORT "
                                                   "or local:N.", show_default=False, rich_help_panel=_RUN)] = None,
) -> None:
    """Encode documents into token ids, one output line per document, or token files."""
    spec, seed_value = _sample_and_seed(sample, seed)
    corpus_paths = input_paths(files)
    if fmt in ("npy", "bin") and output is None:
        example = "out/corpus for shards" if fmt == "bin" else "ids.npy"
        raise usage_error(f"--format {fmt.value} writes binary files; give an output with -o (e.g. -o {example})")
    check_field_names(jsonl_field, parquet_column)
    check_inputs(corpus_paths)
    sharded = fmt == "bin" and output is not None and output.suffix != ".bin"
    if shard_size is not None and not sharded:
        raise usage_error("--shard-size applies to sharded output: use --format bin with -o PREFIX (a name without "
                          ".bin)")
    if cluster is not None and fmt != "bin":
        raise usage_error("--cluster runs --format bin only (workers write the token files); add --format bin -o "
                          "PREFIX")
    if output is not None:
        from bytepiece.io.atomic import is_stream

        if fmt in ("npy", "bin") and is_stream(output):
            raise usage_error(f"--format {fmt.value} writes files beside {output}; give a regular file path with -o")
        if not sharded:  # a sharded corpus is checked by encode_corpus
            check_outputs(_output_set(output, fmt), force)
    if spec is not None and seed_value is None:
        import random

        seed_value = random.SystemRandom().getrandbits(63)
    from bytepiece.corpus import Files as CorpusFiles
    from bytepiece.model import check_special_tokens

    specials = check_special_tokens(special_token or ())
    paths: list[Path | str] = list(corpus_paths) or [Path("-")]
    inputs = CorpusFiles(paths, jsonl_field=jsonl_field, parquet_column=parquet_column, text_document=text_document.value,
                         labels=["<stdin>" if str(p) == "-" else str(p) for p in paths])
    options: dict[str, Any] = dict(jsonl_field=jsonl_field, parquet_column=parquet_column, add_bos=add_bos,
                                   add_eos=add_eos, alpha=spec.alpha if spec else None, seed=seed_value,
                                   errors="strict" if strict_utf8 else "replace",
                                   allowed_special="all" if allow_special else ())
    if fmt == "bin":
        _encode_bin(inputs, model, output, options, raw=raw, shard_size=shard_size, cluster=cluster,
                    threads=threads, force=force, special_tokens=specials)
        return
    from bytepiece.progress import Progress
    from bytepiece.tokens import encode_stream

    tokenizer = load_tokenizer(model, normalization="none" if raw else "nfc")
    tokenizer.add_special_tokens(specials)
    total = sum(p.stat().st_size for p in corpus_paths if isinstance(p, Path) and str(p) != "-" and p.is_file()) or None
    progress = Progress(err_console.is_terminal and total is not None, console=err_console)
    stream = encode_stream(inputs, tokenizer, workers=threads, **options)
    with progress.phase("encoding", total) as advance:
        if fmt == "npy":
            _encode_npy(tokenizer, stream, output, advance, force)
            return
        documents = 0
        with atomic_output(output, overwrite=force) as out:
            piece = tokenizer.id_to_piece
            for batch in stream:
                documents += len(batch.offsets) - 1
                ids = batch.ids.tolist()
                bounds = list(zip(batch.offsets[:-1].tolist(), batch.offsets[1:].tolist()))
                if fmt == "ids":
                    lines = [" ".join(map(str, ids[a:b])) for a, b in bounds]
                else:
                    lines = [render_pieces([piece(i) for i in ids[a:b]]) for a, b in bounds]
                if lines:
                    out.write("\n".join(lines) + "\n")
                advance(batch.input_bytes)
    _note_if_empty(documents)


def _note_if_empty(documents: int) -> None:
    """An empty input (a file or stdin alike) is no error for encode: zero documents, one note."""
    if not documents:
        note("the input holds no documents; the output holds none either")


def _output_set(output: Path, fmt: str) -> list[Path]:
    """Every file a format writes for ``-o output``."""
    if fmt == "npy":
        from bytepiece.interop.npyfile import offsets_path

        return [output, offsets_path(output)]
    if fmt == "bin":
        from bytepiece.interop.binfile import index_path, meta_path

        return [output, index_path(output), meta_path(output)]
    return [output]


def _encode_npy(tokenizer, stream, output, advance, force) -> None:
    """``.npy`` ids and ``.offsets.npy`` as one atomic set (``bytepiece.interop.npyfile``)."""
    from bytepiece.interop.npyfile import NpyWriter

    with NpyWriter(output, vocab_size=tokenizer.vocab_size, overwrite=force) as writer:
        for batch in stream:
            writer.write(batch.ids, batch.offsets)
            advance(batch.input_bytes)
    err_console.print(f"wrote {writer.n_tokens} tokens of {writer.n_documents} documents to {output} "
                      f"(+ {writer.offsets_path.name})", markup=False, highlight=False)
    _note_if_empty(writer.n_documents)


def _encode_bin(inputs, model, output, options, *, raw, shard_size, cluster, threads, force, special_tokens) -> None:
    """Token shards and their manifest (-o PREFIX) or one token file (-o NAME.bin): the whole job
    is ``bytepiece.encode_corpus``."""
    from bytepiece.engine import format_size
    from bytepiece.progress import Progress
    from bytepiece.tokens import DEFAULT_SHARD_SIZE, encode_corpus

    from .common import resolve_model

    single = output.suffix == ".bin"
    summary = encode_corpus(
        inputs, resolve_model(model), output, normalization="none" if raw else "nfc",
        shard_size=shard_size or DEFAULT_SHARD_SIZE, cluster=cluster, workers=threads, overwrite=force,
        special_tokens=special_tokens, progress=Progress(err_console.is_terminal, console=err_console), **options)
    if summary.invalid_utf8:
        err_console.print(f"note: {summary.invalid_utf8:,} invalid UTF-8 sequence(s) replaced by U+FFFD "
                          "(--strict-utf8 stops at the first)", soft_wrap=True, markup=False)
    _note_if_empty(summary.n_documents)
    rate = f"{format_size(summary.text_bytes)} in {summary.seconds:.1f} s, {summary.mb_per_s:.1f} MB/s"
    if single:
        err_console.print(f"wrote {summary.n_tokens} tokens ({summary.dtype}) of {summary.n_documents} documents to "
                          f"{output} (+ {output.name}.idx, {output.name}.json; {rate})", soft_wrap=True, markup=False)
    else:
        err_console.print(f"wrote {summary.n_tokens} tokens ({summary.dtype}) of {summary.n_documents} documents in "
                          f"{len(summary.files)} shard(s) to {summary.path} ({rate})", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    app.command(cls=Command, no_args_is_help=False)(encode)

