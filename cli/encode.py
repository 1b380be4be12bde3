"""``bytepiece encode``: documents to token ids (lines of ids or pieces, npy, or token files and shards)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .checks import (FLOAT, TEXT_DOCUMENT_HELP, check_cluster, check_field_names, check_inputs, input_paths,
                     note_unused_parquet_column, parse_seed, TextDocument, usage_error)
from .common import handle_errors
from .messages import err_console, note
from .signals import result_stands
from .core import Command


from bytepiece.tokens.formats import FORMATS

#: ``--format``: every token format of the registry
Format = enum.Enum("Format", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]


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


Files = Annotated[Optional[list[str]], typer.Argument(
    metavar="FILE", help="Text (a document per line), JSON Lines or Parquet, gzip/zstd allowed; stdin when none "
    "or '-'.", show_default=False)]
ModelOpt = Annotated[Optional[Path], typer.Option("--model", "-m", metavar="MODEL", help="Model file (default: the "
                                                  "model shipped with bytepiece).", show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option("--output", "-o", metavar="PATH", help="Output file, or a shard "
                                                "prefix (a name without .bin) with -f bin or megatron; stdout when "
                                                "omitted.", show_default=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output (or corpus).")]
_INPUT = "Input"
_RUN = "Where and how to run"
_SAMPLING = "Sampling"
_SPECIAL = "Special tokens"


@handle_errors
def encode(
    files: Files = None,
    model: ModelOpt = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", metavar="NAME", help="ids, pieces: a line per document "
                                        "(stdout or -o); npy, bin, megatron: files (need -o).")] = Format["ids"],
    output: OutOpt = None,
    force: ForceOpt = False,
    add_bos: Annotated[bool, typer.Option("--add-bos", help="Start every document with <bos> (id 1).")] = False,
    add_eos: Annotated[bool, typer.Option("--add-eos", help="End every document with <eos> (id 2; Megatron's "
                                          "end-of-document).")] = False,
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
    shard_size: Annotated[Optional[str], typer.Option(metavar="SIZE", help="Token bytes per shard with -f bin or "
                                                      "megatron and -o PREFIX (default: 1G).", show_default=False,
                                                      rich_help_panel=_RUN)] = None,
    cluster: Annotated[Optional[str], typer.Option(metavar="ADDR", help="Dask cluster for shards (-o PREFIX): "
                                                   "tcp://HOST:PORT or local:N.", show_default=False,
                                                   rich_help_panel=_RUN)] = None,
) -> None:
    """Encode documents into token ids: a line per document, or token files."""
    spec, seed_value = _sample_and_seed(sample, seed)
    corpus_paths = input_paths(files)
    check_field_names(jsonl_field, parquet_column)
    check_inputs(corpus_paths)
    from bytepiece.corpus import Files as CorpusFiles
    from bytepiece.errors import InputError
    from bytepiece.model import check_special_tokens
    from bytepiece.progress import Progress
    from bytepiece.tokens import encode_corpus
    from bytepiece.tokens.encode import SHARDS_HINT, check_request
    from bytepiece.units import parse_size

    try:  # command-line mistakes: before any work
        token_format = check_request(fmt.value, output, cluster=cluster)
        if shard_size is not None and not token_format.sharded(output):
            raise InputError(f"shard_size applies to shards: {SHARDS_HINT}")
        shard_bytes = None if shard_size is None else parse_size(shard_size, name="shard_size")
    except InputError as e:
        raise usage_error(str(e)) from None
    check_cluster(cluster, threads, "--threads")

    from .common import resolve_model

    note_unused_parquet_column(parquet_column, corpus_paths)
    paths: list[Path | str] = list(corpus_paths) or [Path("-")]
    inputs = CorpusFiles(paths, jsonl_field=jsonl_field, parquet_column=parquet_column,
                         text_document=text_document.value)
    summary = encode_corpus(
        inputs, resolve_model(model), output, format=fmt.value, normalization="none" if raw else "nfc",
        add_bos=add_bos, add_eos=add_eos, alpha=spec.alpha if spec else None, seed=seed_value,
        errors="strict" if strict_utf8 else "replace", allowed_special="all" if allow_special else (),
        special_tokens=check_special_tokens(special_token or ()), shard_size=shard_bytes,
        cluster=cluster, workers=threads, overwrite=force,
        progress=Progress(err_console.is_terminal and output is not None, console=err_console))
    with result_stands():
        _print_summary(summary, output)


def _print_summary(summary, output: Path | None) -> None:
    """Notes for what the user may not expect, and a closing line when files were written
    (standard output carries ids only)."""
    if summary.invalid_utf8:
        note(f"{summary.invalid_utf8:,} invalid UTF-8 sequence(s) replaced by U+FFFD (--strict-utf8 stops at the "
             "first)")
    if not summary.n_documents:
        note("the input holds no documents; the output holds none either")
    if output is None:
        return
    from bytepiece.units import format_rate, format_size

    rate = f"{format_size(summary.text_bytes)} in {summary.seconds:.1f} s, {format_rate(summary.text_bytes, summary.seconds)}"
    counts = f"{summary.n_tokens:,} tokens ({summary.dtype}) of {summary.n_documents:,} documents"
    if summary.sharded:
        where = f"{len(summary.files)} shard(s) listed in {summary.path}"
    else:
        others = [f.name for f in FORMATS[summary.format].files(summary.path)[1:]]
        where = str(summary.path) + (f" (+ {', '.join(others)})" if others else "")
    err_console.print(f"wrote {counts} to {where} ({rate})", soft_wrap=True, markup=False, highlight=False)
    if summary.format == "megatron" and summary.n_documents:
        prefixes = [str(f.with_suffix("")) for f in summary.files if f.suffix == ".bin"]
        shown = " ".join(prefixes[:8]) + (f" ... ({len(prefixes)} prefixes, one per shard)" if len(prefixes) > 8 else "")
        err_console.print(f"Megatron --data-path: {shown}", soft_wrap=True, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command(cls=Command, no_args_is_help=False)(encode)
