"""``bytepiece train``: the BNLM trainer behind a command line."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import err_console, fail, handle_errors, out_console

#: vocabulary size when training on the bundled sample corpus (it is a few hundred KB)
SAMPLE_VOCAB_SIZE = 2000
#: vocabulary size for user corpora when --vocab-size is not given
DEFAULT_VOCAB_SIZE = 32000
DEFAULT_OUTPUT = Path("bytepiece.model")
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_DEFAULT_WORKERS))


def _valid_compression(model_path: Path, valid: Path) -> tuple[float, int, int]:
    """(bytes/token, bytes, tokens) of ``model_path`` on the lines of ``valid``."""
    from bytepiece import Tokenizer

    tokenizer = Tokenizer(model_path)
    n_bytes = n_tokens = 0
    with open(valid, "rb") as f:
        while True:
            lines = f.readlines(1 << 22)
            if not lines:
                break
            texts = [line.decode("utf-8", errors="replace") for line in lines]
            n_bytes += sum(len(t.encode("utf-8")) for t in texts)
            ids, _ = tokenizer.encode_batch(texts, return_flat=True)
            n_tokens += len(ids)
    return (n_bytes / n_tokens if n_tokens else float("nan")), n_bytes, n_tokens


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


@handle_errors
def train(
    corpus: Annotated[Optional[list[Path]], typer.Argument(
        help="Text files (one document per line; .gz allowed), JSON Lines with --jsonl-field, or '-' for stdin "
             "(spooled to a temporary file). Default: the sample corpus shipped with bytepiece.",
        show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Model file to write; with several --vocab-size "
                                         "values the size goes before the extension (out.8000.model).")] = DEFAULT_OUTPUT,
    vocab_size: Annotated[Optional[list[int]], typer.Option(
        "--vocab-size", "-v", help=f"Vocabulary size (>= 259); repeat for several models from one run. "
        f"Default: {DEFAULT_VOCAB_SIZE}, or {SAMPLE_VOCAB_SIZE} on the sample corpus.", show_default=False)] = None,
    order: Annotated[int, typer.Option(help="Order of the byte n-gram LM (1..7).")] = 6,
    min_count: Annotated[int, typer.Option(help="Minimum count of n-grams and pieces.")] = 2,
    max_piece_length: Annotated[int, typer.Option(help="Longest piece in bytes.")] = 36,
    isolate_digits: Annotated[bool, typer.Option("--isolate-digits", help="Every digit is a chunk of its own.")] = False,
    ensure_unicode: Annotated[bool, typer.Option("--ensure-unicode/--no-ensure-unicode",
                                                 help="Pieces never start inside a UTF-8 character.")] = True,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Worker threads (results do not depend "
                                                   "on it). Default: the CPUs available, at most 8.",
                                                   show_default=False)] = None,
    jsonl_field: Annotated[Optional[str], typer.Option(help="Read the corpus as JSON Lines; the text is in this field.",
                                                       show_default=False)] = None,
    valid: Annotated[Optional[Path], typer.Option(help="Held-out text file: report the compression (bytes/token) "
                                                  "of every model on its lines.", show_default=False)] = None,
    refine: Annotated[bool, typer.Option("--refine", help="Beyond the original: grow and prune each model by unigram "
                                         "likelihood on the corpus (better compression, a few more passes).")] = False,
    strict_utf8: Annotated[bool, typer.Option("--strict-utf8", help="Stop at invalid UTF-8 instead of replacing it "
                                              "by U+FFFD.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing model files.")] = False,
) -> None:
    """Train a model with the BytePiece byte n-gram algorithm (BNLM) and save it in the original JSON format."""
    corpus = list(corpus or [])
    on_sample = not corpus
    if on_sample:
        from bytepiece_data import SAMPLE_CORPUS, data_file

        sample = data_file(SAMPLE_CORPUS)
        if not sample.is_file():
            raise fail(f"no corpus given and the sample corpus is not installed ({sample}); pass CORPUS files")
        corpus = [sample]
    if sum(1 for p in corpus if str(p) == "-") > 1:
        raise fail("'-' (stdin) may be given only once")
    for p in corpus:
        if str(p) == "-":
            continue
        if not p.exists():
            raise fail(f"corpus file {p} does not exist")
        if p.is_dir():
            raise fail(f"corpus path {p} is a directory; pass the text files in it")
    if valid is not None and not valid.is_file():
        raise fail(f"--valid file {valid} does not exist" if not valid.exists() else f"--valid {valid} is not a file")
    sizes = vocab_size or [SAMPLE_VOCAB_SIZE if on_sample else DEFAULT_VOCAB_SIZE]
    n_workers = default_workers() if workers is None else workers

    from bytepiece.atomic import check_writable, is_stream
    from bytepiece.model import metadata_path
    from bytepiece.training import TextFiles, Trainer, spool_stdin

    trainer = Trainer(order=order, max_vocab_size=sizes, max_piece_length=max_piece_length, min_count=min_count,
                      isolate_digits=isolate_digits, ensure_unicode=ensure_unicode, workers=n_workers,
                      errors="strict" if strict_utf8 else "replace", refine=refine)
    paths = trainer.output_paths(output)
    if not force:
        existing = [str(p) for p in paths if p.is_file() and not is_stream(p)]
        if existing:
            raise fail(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; pass --force to overwrite")
    # Before the first pass: a missing or read-only directory must not cost a training run.
    check_writable(paths, overwrite=force)
    check_writable([metadata_path(p) for p in paths if not is_stream(p)], overwrite=True)

    with contextlib.ExitStack() as stack:
        files: list[Path] = []
        labels: list[str] = []
        for p in corpus:
            labels.append("<stdin>" if str(p) == "-" else str(p))
            if str(p) == "-":
                spooled = spool_stdin()
                stack.callback(spooled.unlink, missing_ok=True)
                if spooled.stat().st_size == 0:
                    raise fail("stdin is empty; nothing to train on")
                files.append(spooled)
            else:
                files.append(p)
        source = TextFiles(files, jsonl_field=jsonl_field, errors=trainer.errors, labels=labels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # notices are printed below
            trainer.train(source)
        written = trainer.save(output, overwrite=force)

    for notice in trainer.notices:
        err_console.print(f"[yellow]note:[/] {notice}", markup=True, highlight=False, soft_wrap=True)
    _summary(trainer, written, on_sample, valid)


def _summary(trainer, written: list[Path], on_sample: bool, valid: Optional[Path]) -> None:
    from rich.table import Table

    stats = trainer.stats
    table = Table(title="bytepiece train", show_header=False, title_justify="left")
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("corpus", ("sample corpus: " if on_sample else "") + str(stats.get("corpus", "")))
    table.add_row("texts / bytes", f"{stats.get('texts', 0):,} / {_fmt_bytes(int(stats.get('bytes', 0)))}")
    if stats.get("invalid_utf8"):
        table.add_row("invalid UTF-8", f"{stats['invalid_utf8']:,} sequence(s) replaced by U+FFFD")
    opts = trainer.options()
    table.add_row("options", f"order={opts['order']} min_count={opts['min_count']} "
                  f"max_piece_length={opts['max_piece_length']} isolate_digits={opts['isolate_digits']} "
                  f"ensure_unicode={opts['ensure_unicode']} refine={opts['refine']} workers={trainer.workers}")
    table.add_row("n-grams kept", f"{stats.get('ngrams_kept', 0):,}")
    table.add_row("pieces counted", f"{stats.get('pieces_counted', 0):,} ({stats.get('distinct_pieces', 0):,} distinct)")
    for phase, seconds in trainer.timings.items():
        if phase != "total":
            table.add_row(f"time: {phase}", f"{seconds:.2f} s")
    total = trainer.timings.get("total", 0.0)
    rate = stats.get("bytes", 0) / total / 1e6 if total else 0.0
    table.add_row("time: total", f"{total:.2f} s ({rate:.2f} MB/s)")
    table.add_row("peak RSS", f"{stats.get('peak_rss_mb', 0):,.0f} MB")
    out_console.print(table)

    models = Table(title="models", title_justify="left")
    models.add_column("file")
    models.add_column("target", justify="right")
    models.add_column("vocab size", justify="right")
    if valid is not None:
        models.add_column(f"bytes/token on {valid.name}", justify="right")
    for model, path in zip(trainer.models, written):
        row = [str(path), f"{model.metadata.get('target_vocab_size', ''):,}", f"{model.vocab_size:,}"]
        if valid is not None:
            bpt, _, _ = _valid_compression(path, valid)
            row.append(f"{bpt:.3f}")
        models.add_row(*row)
    out_console.print(models)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
