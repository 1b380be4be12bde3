"""``bytepiece encode``: text to token ids (lines of ids, pieces, or binary token files)."""

from __future__ import annotations

import contextlib
import enum
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Optional

import typer

from .checks import FLOAT, MAX_LINE_BYTES, check_inputs, check_outputs, limited_lines, parse_seed, usage_error
from .common import err_console, fail, handle_errors, load_tokenizer
from .core import Command

BATCH_BYTES = 1 << 20
BATCH_LINES = 16384


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


def batches(lines: Iterator[tuple[bytes, int]]) -> Iterator[tuple[list[bytes], int]]:
    batch: list[bytes] = []
    size = consumed = 0
    for line, n in lines:
        batch.append(line)
        size += len(line)
        consumed += n
        if size >= BATCH_BYTES or len(batch) >= BATCH_LINES:
            yield batch, consumed
            batch, size, consumed = [], 0, 0
    if batch:
        yield batch, consumed


@contextlib.contextmanager
def progress_bar(paths: list[Path], description: str):
    """A byte-based progress bar on stderr for file inputs, or a no-op (stdin, not a terminal)."""
    real = [p for p in paths if str(p) != "-"]
    if not real or not err_console.is_terminal:
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    total = sum(p.stat().st_size for p in real)
    columns = (description, BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


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
    """Pieces separated by spaces, each spelled by ``bytepiece.summary.display_piece`` (a space
    is '▁', invisibles escaped); special tokens (given as str) appear by name."""
    from bytepiece.summary import display_piece

    return " ".join(p if isinstance(p, str) else display_piece(p) for p in pieces)


Files = Annotated[Optional[list[Path]], typer.Argument(metavar="FILE", help="Input files (one document per line); "
                                                       "stdin when none or '-'.", show_default=False)]
ModelOpt = Annotated[Optional[Path], typer.Option("--model", "-m", metavar="MODEL", help="Model file (default: the "
                                                  "model shipped with bytepiece).", show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option("--output", "-o", metavar="PATH", help="Output file (written "
                                                "atomically); stdout when omitted.", show_default=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]
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
    threads: Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Threads (default: all cores).",
                                                   show_default=False)] = None,
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
) -> None:
    """Encode text into token ids, one output line per input line."""
    spec, seed_value = _sample_and_seed(sample, seed)
    files = files or []
    if fmt in ("npy", "bin") and output is None:
        raise usage_error(f"--format {fmt.value} writes binary files; give an output file with -o (e.g. -o "
                          f"corpus.{fmt.value})")
    check_inputs(files)
    if output is not None:
        from bytepiece.atomic import is_stream

        if fmt in ("npy", "bin") and is_stream(output):
            raise usage_error(f"--format {fmt.value} writes files beside {output}; give a regular file path with -o")
        check_outputs(_output_set(output, fmt), force)
    tokenizer = load_tokenizer(model, normalization="none" if raw else "nfc")
    tokenizer.add_special_tokens(special_token or ())
    alpha = spec.alpha if spec else -1.0
    if spec is not None and seed_value is None:
        import random

        seed_value = random.SystemRandom().getrandbits(63)
    options = dict(alpha=alpha, add_bos=add_bos, add_eos=add_eos, num_threads=threads,
                   allowed_special="all" if allow_special else ())

    with progress_bar(files, "encoding") as advance:
        if fmt == "npy":
            _encode_npy(tokenizer, files, output, options, seed_value, advance, force)
            return
        if fmt == "bin":
            _encode_bin(tokenizer, files, output, options, seed_value, advance, model, spec, force)
            return
        with atomic_output(output, overwrite=force) as out:
            for flat, offsets in _encoded_batches(tokenizer, files, options, seed_value, advance):
                ids = flat.tolist()
                bounds = offsets.tolist()
                n = len(bounds) - 1
                if fmt == "ids":
                    lines = [" ".join(map(str, ids[bounds[i] : bounds[i + 1]])) for i in range(n)]
                else:
                    piece = tokenizer.id_to_piece
                    lines = [render_pieces([piece(i) for i in ids[bounds[j] : bounds[j + 1]]]) for j in range(n)]
                out.write("\n".join(lines) + "\n")


def _output_set(output: Path, fmt: str) -> list[Path]:
    """Every file a format writes for ``-o output``."""
    if fmt == "npy":
        from bytepiece.interop.npyfile import offsets_path

        return [output, offsets_path(output)]
    if fmt == "bin":
        from bytepiece.interop.binfile import index_path, meta_path

        return [output, index_path(output), meta_path(output)]
    return [output]


def _encoded_batches(tokenizer, files, options, seed, advance):
    """(flat ids, token offsets) of each batch of input lines, on all cores; batch i is sampled
    with seed ``seed + i * 1_000_003`` so a run is reproducible whatever the batch sizes."""
    for index, (batch, consumed) in enumerate(batches(read_lines(files))):
        batch_seed = None if seed is None else seed + index * 1_000_003
        yield tokenizer.encode_batch(batch, seed=batch_seed, return_flat=True, **options)
        advance(consumed)


def _encode_npy(tokenizer, files, output, options, seed, advance, force) -> None:
    """``.npy`` ids and ``.offsets.npy`` as one atomic set (``bytepiece.interop.npyfile``)."""
    from bytepiece.interop.npyfile import NpyWriter

    with NpyWriter(output, vocab_size=tokenizer.vocab_size, overwrite=force) as writer:
        for flat, offsets in _encoded_batches(tokenizer, files, options, seed, advance):
            writer.write(flat, offsets)
    err_console.print(f"wrote {writer.n_tokens} tokens of {writer.n_documents} documents to {output} "
                      f"(+ {writer.offsets_path.name})", markup=False, highlight=False)


def _encode_bin(tokenizer, files, output, options, seed, advance, model, sample, force) -> None:
    """Stream ids into ``output`` (bytepiece bin layout, see ``bytepiece.interop.binfile``):
    one batch of lines in memory at a time, each encoded by ``encode_batch`` on all cores;
    the files appear only when everything succeeded."""
    from bytepiece.interop.binfile import BinWriter

    from .common import resolve_model

    metadata = {
        "inputs": [str(p) for p in files] or ["-"],
        "add_bos": options["add_bos"],
        "add_eos": options["add_eos"],
        "alpha": None if sample is None else sample.alpha,
        "seed": seed,
        "documents": "one per input line (without its newline)",
    }
    with BinWriter(output, tokenizer, model_path=resolve_model(model), metadata=metadata, overwrite=force) as writer:
        for flat, offsets in _encoded_batches(tokenizer, files, options, seed, advance):
            writer.write(flat, offsets)
    err_console.print(f"wrote {writer.n_tokens} tokens ({writer.dtype.name}) of {writer.n_documents} documents to "
                      f"{output} (+ {output.name}.idx, {output.name}.json)", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(cls=Command, no_args_is_help=False)(encode)

