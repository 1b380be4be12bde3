"""``bytepiece encode``, ``decode`` and ``inspect``."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer

from .checks import (
    FLOAT,
    MAX_ID_LINE_BYTES,
    MAX_LINE_BYTES,
    check_inputs,
    check_outputs,
    limited_lines,
    parse_seed,
    usage_error,
)
from .common import err_console, fail, handle_errors, load_tokenizer, out_console

FORMATS = ("ids", "pieces", "npy", "bin")


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
    from bytepiece.atomic import atomic_open

    with atomic_open(path, "wb" if binary else "w", overwrite=overwrite) as f:
        yield f


def render_pieces(pieces: list[bytes | str]) -> str:
    """Pieces separated by spaces; spaces inside pieces shown as '▁', other invisibles escaped;
    special tokens (given as str) appear by name."""
    out = []
    for p in pieces:
        if isinstance(p, str):
            out.append(p)
            continue
        text = p.decode("utf-8", "backslashreplace")
        text = text.replace("\\", "\\\\") if b"\\" in p else text
        out.append(text.replace(" ", "▁").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return " ".join(out)


Files = Annotated[Optional[list[Path]], typer.Argument(
    help="Inputs: text (one document per line), JSON Lines (.jsonl/.ndjson: one document per record) or Parquet, "
         "gzip/zstd allowed; stdin when none or '-'.", show_default=False)]
ModelOpt = Annotated[Optional[Path], typer.Option("--model", "-m", help="Model file (default: the model shipped with bytepiece).", show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (written atomically); stdout when omitted.", show_default=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output (file, or corpus of that name).")]
_INPUT = "Input"
_RUN = "Where and how to run"


@handle_errors
def encode(
    files: Files = None,
    model: ModelOpt = None,
    sample: Annotated[
        Optional[str],
        typer.Option("--sample", metavar="alpha=A[,seed=N]",
                     help="Sample segmentations with probability ∝ p**alpha instead of Viterbi.", show_default=False),
    ] = None,
    seed: Annotated[Optional[str], typer.Option(metavar="INT", help="Seed for --sample (reproducible output).", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="ids (one line of ids per document), pieces, npy (flat id array, needs -o), or bin: token files for LM training (-o out/corpus writes shards out/corpus-00000.bin, ... and out/corpus.manifest.json; -o corpus.bin writes one file).")] = "ids",
    output: OutOpt = None,
    force: ForceOpt = False,
    add_bos: Annotated[bool, typer.Option("--add-bos", help="Start every document with <bos> (id 1).")] = False,
    add_eos: Annotated[bool, typer.Option("--add-eos", help="End every document with <eos> (id 2).")] = False,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Threads (default: all cores).", show_default=False)] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Skip NFC normalization (byte-exact round trip).")] = False,
    special_token: Annotated[Optional[list[str]], typer.Option("--special-token", help="Add a special token (an id after "
                             "the model's); repeatable. Matched in the text only with --allow-special.", show_default=False)] = None,
    allow_special: Annotated[bool, typer.Option("--allow-special", help="Match the special tokens (the model's and "
                             "--special-token ones) in the text and emit their ids.")] = False,
    jsonl_field: Annotated[Optional[str], typer.Option(metavar="NAME", help="Field of JSON Lines inputs holding the text (default: text); inputs without a telling extension are then read as JSON Lines.", show_default=False, rich_help_panel=_INPUT)] = None,
    parquet_column: Annotated[Optional[str], typer.Option(metavar="NAME", help="Column of Parquet inputs holding the text (default: text).", show_default=False, rich_help_panel=_INPUT)] = None,
    strict_utf8: Annotated[bool, typer.Option("--strict-utf8", help="Stop at invalid UTF-8 instead of replacing it by U+FFFD.", rich_help_panel=_INPUT)] = False,
    shard_size: Annotated[Optional[str], typer.Option(metavar="SIZE", help="Bytes of tokens per shard with --format bin -o PREFIX, e.g. 256M (default: 1G).", show_default=False, rich_help_panel=_RUN)] = None,
    cluster: Annotated[Optional[str], typer.Option(metavar="ADDR", help="Dask cluster for --format bin: a scheduler address (tcp://host:8786) or local:N for N worker processes; workers must see the inputs and the output directory.", show_default=False, rich_help_panel=_RUN)] = None,
) -> None:
    """Encode documents (text lines, JSON Lines records, Parquet rows) into token ids or token shards."""
    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    spec, seed_value = _sample_and_seed(sample, seed)
    files = files or []
    if fmt in ("npy", "bin") and output is None:
        example = "out/corpus for shards" if fmt == "bin" else "ids.npy"
        raise fail(f"--format {fmt} writes binary files; give an output with -o (e.g. -o {example})")
    check_inputs(files)
    sharded = fmt == "bin" and output is not None and output.suffix != ".bin"
    if shard_size is not None and not sharded:
        raise fail("--shard-size applies to sharded output: use --format bin with -o PREFIX (a name without .bin)")
    if cluster is not None and fmt != "bin":
        raise fail("--cluster runs --format bin only (workers write the token files); add --format bin -o PREFIX")
    if output is not None:
        from bytepiece.atomic import is_stream

        if fmt in ("npy", "bin") and is_stream(output):
            raise fail(f"--format {fmt} writes files beside {output}; give a regular file path with -o")
        if not sharded:  # a sharded corpus is checked by encode_corpus
            check_outputs(_output_set(output, fmt), force)
    if spec is not None and seed_value is None:
        import random

        seed_value = random.SystemRandom().getrandbits(63)
    from bytepiece.corpus import Files as CorpusFiles
    from bytepiece.model import check_special_tokens

    specials = check_special_tokens(special_token or ())
    paths = files or [Path("-")]
    inputs = CorpusFiles(paths, jsonl_field=jsonl_field, parquet_column=parquet_column,
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
    total = sum(p.stat().st_size for p in files if str(p) != "-" and p.is_file()) or None
    progress = Progress(err_console.is_terminal and total is not None, console=err_console)
    stream = encode_stream(inputs, tokenizer, workers=threads, **options)
    with progress.phase("encoding", total) as advance:
        if fmt == "npy":
            _encode_npy(tokenizer, stream, output, advance, force)
            return
        with atomic_output(output, overwrite=force) as out:
            piece = tokenizer.id_to_piece
            for batch in stream:
                ids = batch.ids.tolist()
                bounds = list(zip(batch.offsets[:-1].tolist(), batch.offsets[1:].tolist()))
                if fmt == "ids":
                    lines = [" ".join(map(str, ids[a:b])) for a, b in bounds]
                else:
                    lines = [render_pieces([piece(i) for i in ids[a:b]]) for a, b in bounds]
                if lines:
                    out.write("\n".join(lines) + "\n")
                advance(batch.input_bytes)


def _output_set(output: Path, fmt: str) -> list[Path]:
    """Every file a format writes for ``-o output``."""
    if fmt == "npy":
        return [output, _offsets_path(output)]
    if fmt == "bin":
        from bytepiece.interop.binfile import index_path, meta_path

        return [output, index_path(output), meta_path(output)]
    return [output]


def _offsets_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".npy") + ".offsets.npy")


def _encode_npy(tokenizer, stream, output, advance, force) -> None:
    """Stream ids into a temporary raw file, then write ``.npy`` (ids) and ``.offsets.npy``
    as one atomic set."""
    import numpy as np

    from bytepiece.atomic import OutputSet
    from bytepiece.interop.binfile import token_dtype

    dtype = token_dtype(tokenizer.vocab_size)
    doc_offsets = [0]
    total = 0
    directory = output.parent if str(output.parent) else Path(".")
    offsets_path = _offsets_path(output)
    with tempfile.TemporaryFile(dir=directory) as raw:
        for batch in stream:
            raw.write(batch.ids.astype(dtype).tobytes())
            doc_offsets.extend((batch.offsets[1:] + total).tolist())
            total += len(batch.ids)
            advance(batch.input_bytes)
        raw.seek(0)
        with OutputSet(overwrite=force) as outputs:
            with outputs.open(output, "wb") as out:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                          "shape": (total,)}
                np.lib.format.write_array_header_1_0(out, header)
                while chunk := raw.read(1 << 22):
                    out.write(chunk)
            with outputs.open(offsets_path, "wb") as out:
                np.save(out, np.asarray(doc_offsets, dtype=np.int64))
    err_console.print(f"wrote {total} tokens of {len(doc_offsets) - 1} documents to {output} (+ {offsets_path.name})")


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
    rate = f"{format_size(summary.text_bytes)} in {summary.seconds:.1f} s, {summary.mb_per_s:.1f} MB/s"
    if single:
        err_console.print(f"wrote {summary.n_tokens} tokens ({summary.dtype}) of {summary.n_documents} documents to "
                          f"{output} (+ {output.name}.idx, {output.name}.json; {rate})", soft_wrap=True, markup=False)
    else:
        err_console.print(f"wrote {summary.n_tokens} tokens ({summary.dtype}) of {summary.n_documents} documents in "
                          f"{len(summary.files)} shard(s) to {summary.path} ({rate})", soft_wrap=True, markup=False)


@handle_errors
def decode(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Files of whitespace-separated ids, one document per line; stdin when none.", show_default=False)] = None,
    model: ModelOpt = None,
    output: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Decode lines of token ids back into text."""
    files = files or []
    check_inputs(files)
    if output is not None:
        check_outputs([output], force)
    tokenizer = load_tokenizer(model)
    with atomic_output(output, overwrite=force) as out:
        for number, (line, _) in enumerate(read_lines(files, MAX_ID_LINE_BYTES), start=1):
            tokens = line.split()
            # ASCII digits only: int() would also take "1_0", "+5", "-3" and other scripts' digits.
            if not all(tok.isdigit() for tok in tokens):
                bad = next(tok for tok in tokens if not tok.isdigit())
                raise fail(f"line {number}: {_escape(bad[:40])} is not a token id (ids are non-negative decimal "
                           "integers separated by spaces)")
            try:
                text = tokenizer.decode([int(tok) for tok in tokens])
            except Exception as e:
                raise fail(f"line {number}: {_escape(str(e))}") from None
            out.write(text + "\n")


def _escape(text: str | bytes) -> str:
    from rich.markup import escape

    if isinstance(text, bytes):
        text = repr(text.decode("utf-8", "backslashreplace"))
    return escape(text)


@handle_errors
def inspect(
    model: Annotated[Optional[Path], typer.Argument(help="Model file (default: the shipped model).", show_default=False)] = None,
    top: Annotated[int, typer.Option(min=0, help="How many of the most frequent pieces to list.")] = 20,
) -> None:
    """Summarize a model: vocabulary size, piece lengths, most frequent pieces."""
    import numpy as np
    from rich.table import Table

    from bytepiece import load_model
    from bytepiece_cli.common import resolve_model

    path = resolve_model(model)
    m = load_model(path)
    lengths = np.array([len(p) for p in m.pieces])
    total = int(m.counts.sum())
    utf8 = sum(1 for p in m.pieces if _is_utf8(p))
    summary = Table(title=f"{path.name}", show_header=False)
    summary.add_row("vocabulary size", f"{m.vocab_size:,} ({len(m.pieces):,} pieces + 3 special)")
    summary.add_row("total count", f"{total:,}")
    summary.add_row("longest piece", f"{lengths.max()} bytes")
    summary.add_row("mean piece length", f"{lengths.mean():.2f} bytes")
    summary.add_row("valid UTF-8 pieces", f"{utf8:,} ({utf8 / len(m.pieces):.1%})")
    for key, value in sorted(m.metadata.items()):
        if not isinstance(value, (dict, list)):
            summary.add_row(f"meta: {key}", str(value))
    out_console.print(summary)

    hist = Table(title="pieces by length (bytes)")
    hist.add_column("length", justify="right")
    hist.add_column("pieces", justify="right")
    hist.add_column("share of counts", justify="right")
    for length in range(1, int(lengths.max()) + 1):
        sel = lengths == length
        if sel.any():
            hist.add_row(str(length), f"{int(sel.sum()):,}", f"{m.counts[sel].sum() / total:.2%}")
    out_console.print(hist)

    if top:
        freq = Table(title=f"{top} most frequent pieces")
        freq.add_column("id", justify="right")
        freq.add_column("piece")
        freq.add_column("count", justify="right")
        freq.add_column("p", justify="right")
        for i in np.argsort(-m.counts, kind="stable")[:top]:
            piece = m.pieces[i]
            freq.add_row(str(i + 3), repr(piece.decode("utf-8", "backslashreplace")), f"{int(m.counts[i]):,}", f"{m.counts[i] / total:.4f}")
        out_console.print(freq)


def _is_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=False)(encode)
    app.command()(decode)
    app.command()(inspect)

