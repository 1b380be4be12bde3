"""``bytepiece train``: the BNLM trainer behind a command line."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from .checks import (TEXT_DOCUMENT_HELP, TextDocument, check_cluster, check_field_names, input_paths,
                     note_unused_parquet_column, usage_error)
from .common import handle_errors
from .messages import err_console, fail, note, out_console
from .signals import result_stands
from .streams import STDOUT_CLOSED, stdin_is_interactive, stdout_is_closed
from .core import Command

#: vocabulary size when training on the bundled sample corpus (it is a few hundred KB)
SAMPLE_VOCAB_SIZE = 2000
#: vocabulary size for user corpora when --vocab-size is not given
DEFAULT_VOCAB_SIZE = 32000
DEFAULT_OUTPUT = Path("bytepiece.model")

_RUN = "Where and how to run"
_ALGO = "Algorithm"
_INPUT = "Input"


@handle_errors
def train(
    corpus: Annotated[Optional[list[str]], typer.Argument(
        help="Text (a document per line), JSON Lines or Parquet files, gzip/zstd allowed; '-' or a pipe for "
             "stdin. Default: the sample corpus shipped with bytepiece.",
        show_default=False, metavar="CORPUS")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="PATH", help="Model file to write; with several "
                                         "sizes the size goes before the extension (out.8000.model).")] = DEFAULT_OUTPUT,
    vocab_size: Annotated[Optional[list[int]], typer.Option(
        "--vocab-size", "-v", metavar="N", help=f"Vocabulary size (>= 259); repeat for several models. Default: "
        f"{DEFAULT_VOCAB_SIZE} ({SAMPLE_VOCAB_SIZE} on the sample corpus).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing model files.")] = False,
    valid: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Held-out text: report each model's "
                                                  "bytes/token on it (newlines included).", show_default=False)] = None,
    jsonl_field: Annotated[Optional[str], typer.Option(metavar="NAME", help="JSON Lines field holding the text "
                                                       "(default: text); given, stdin and unknown names are JSON "
                                                       "Lines.", show_default=False, rich_help_panel=_INPUT)] = None,
    parquet_column: Annotated[Optional[str], typer.Option(metavar="NAME", help="Column of Parquet inputs holding the "
                                                          "text (default: text).", show_default=False,
                                                          rich_help_panel=_INPUT)] = None,
    text_document: Annotated[TextDocument, typer.Option(help=TEXT_DOCUMENT_HELP, rich_help_panel=_INPUT)
                             ] = TextDocument.line,
    strict_utf8: Annotated[bool, typer.Option("--strict-utf8", help="Stop at invalid UTF-8 instead of replacing it "
                                              "by U+FFFD.", rich_help_panel=_INPUT)] = False,
    order: Annotated[int, typer.Option(metavar="N", help="Order of the byte n-gram LM (1..7).",
                                       rich_help_panel=_ALGO)] = 6,
    min_count: Annotated[int, typer.Option(metavar="N", help="Minimum count of n-grams and pieces.",
                                           rich_help_panel=_ALGO)] = 2,
    max_piece_length: Annotated[int, typer.Option(metavar="N", help="Longest piece in bytes.",
                                                  rich_help_panel=_ALGO)] = 36,
    isolate_digits: Annotated[bool, typer.Option("--isolate-digits", help="Every digit is a chunk of its own.",
                                                 rich_help_panel=_ALGO)] = False,
    no_ensure_unicode: Annotated[bool, typer.Option("--no-ensure-unicode", help="Let pieces start inside a UTF-8 "
                                                    "character.", rich_help_panel=_ALGO)] = False,
    refine: Annotated[bool, typer.Option("--refine", help="Beyond the original: grow and prune by unigram "
                                         "likelihood (better compression, more passes).", rich_help_panel=_ALGO)] = False,
    special_token: Annotated[Optional[list[str]], typer.Option("--special-token", metavar="TEXT", help="Reserve a "
                             "special token (an id after the pieces, saved with the model); repeatable.",
                             show_default=False, rich_help_panel=_ALGO)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", metavar="N", min=1, help="Local worker "
                                                   "threads (default: all CPUs).", show_default=False,
                                                   rich_help_panel=_RUN)] = None,
    cluster: Annotated[Optional[str], typer.Option(metavar="ADDR", help="Dask cluster: a scheduler address "
                                                   "(tcp://host:8786) or local:N for N worker processes.",
                                                   show_default=False, rich_help_panel=_RUN)] = None,
    max_memory: Annotated[Optional[str], typer.Option(metavar="SIZE", help="Memory budget, e.g. 1G (default: half "
                                                      "of the available memory); counts beyond it go to disk.",
                                                      show_default=False, rich_help_panel=_RUN)] = None,
    tmp_dir: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Where counts are spilled (default: the "
                                                    "system temporary directory).", show_default=False,
                                                    rich_help_panel=_RUN)] = None,
) -> None:
    """Train a model with the BytePiece algorithm (original JSON format)."""
    from bytepiece.corpus import Files
    from bytepiece.engine import EngineNotice, held_interrupts
    from bytepiece.training import Trainer

    check_field_names(jsonl_field, parquet_column)
    check_cluster(cluster, workers, "--workers")
    if stdout_is_closed():  # the summary goes there: fail before the work, not after it
        raise fail(STDOUT_CLOSED)
    inputs = input_paths(corpus)
    on_sample = False
    if not inputs:
        if not stdin_is_interactive() and _stdin_has_data():
            inputs = [Path("-")]
        else:
            from bytepiece_data import SAMPLE_CORPUS, data_file

            sample = data_file(SAMPLE_CORPUS)
            if not sample.is_file():
                raise fail(f"no corpus given and the sample corpus is not installed ({sample}); pass CORPUS files")
            inputs, on_sample = [sample], True
            if _stdin_is_pipe():
                note("no CORPUS given and standard input had nothing to read: training on the "
                     "sample corpus (pass '-' to wait for standard input)")
    if valid is not None and not valid.is_file():
        raise fail(f"--valid file {valid} does not exist" if not valid.exists() else f"--valid {valid} is not a file")
    if valid is not None:  # found after training, the models would be written, then an error
        from bytepiece.compression import check_text_file

        check_text_file(valid, label=f"--valid {valid}")
    from bytepiece.errors import InputError
    from bytepiece.model import check_special_tokens

    try:  # command-line mistakes: before any work
        special_tokens = check_special_tokens(special_token or ())
        sizes = vocab_size or [SAMPLE_VOCAB_SIZE if on_sample else DEFAULT_VOCAB_SIZE]
        trainer = Trainer(order=order, max_vocab_size=sizes, max_piece_length=max_piece_length, min_count=min_count,
                          isolate_digits=isolate_digits, ensure_unicode=not no_ensure_unicode, workers=workers,
                          cluster=cluster, max_memory=max_memory, tmp_dir=tmp_dir, progress=err_console.is_terminal,
                          errors="strict" if strict_utf8 else "replace", refine=refine)
    except InputError as e:
        raise usage_error(str(e), {"order": "--order"}) from None
    # Before the first pass: a missing or read-only directory must not cost a training run.
    trainer.check_output(output, overwrite=force)
    note_unused_parquet_column(parquet_column, inputs)
    files = Files(inputs, jsonl_field=jsonl_field, parquet_column=parquet_column, text_document=text_document.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notices are printed below
        warnings.simplefilter("always", EngineNotice)  # the engine's, as they happen
        trainer.train(files)
    with result_stands():
        with held_interrupts():  # the models are complete once saved: no Ctrl-C in between
            written = trainer.save(output, overwrite=force, special_tokens=special_tokens)
        for notice in trainer.report.notices:
            note(notice)
        _summary(trainer, written, on_sample, valid)


def _stdin_is_pipe() -> bool:
    import stat
    import sys

    try:
        return stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def _stdin_has_data() -> bool:
    """Whether standard input (not a terminal) has anything to read, without consuming it; a
    pipe gets a second for its writer to start (a closed, empty one answers at once)."""
    import select
    import sys

    try:
        readable, _, _ = select.select([sys.stdin], [], [], 1.0 if _stdin_is_pipe() else 0.05)
    except (OSError, ValueError, TypeError):
        return False
    if not readable:
        return False
    buffer = getattr(sys.stdin, "buffer", None)
    peek = getattr(buffer, "peek", None)
    try:
        return bool(peek(1)) if peek is not None else True
    except (OSError, ValueError):
        return False


def _summary(trainer, written: list[Path], on_sample: bool, valid: Optional[Path]) -> None:
    from rich.table import Table
    from rich.text import Text

    from bytepiece.units import format_rate, format_size
    from bytepiece.compression import file_compression

    report = trainer.report
    table = Table(title="bytepiece train", show_header=False, title_justify="left")
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("", overflow="fold")
    table.add_row("corpus", Text(("sample corpus: " if on_sample else "") + report.corpus))
    table.add_row("texts / bytes", f"{report.texts:,} / {format_size(report.bytes)}")
    if report.invalid_utf8:
        table.add_row("invalid UTF-8", f"{report.invalid_utf8:,} sequence(s) replaced by U+FFFD")
    opts = trainer.options()
    table.add_row("options", f"order={opts['order']} min_count={opts['min_count']} "
                  f"max_piece_length={opts['max_piece_length']} isolate_digits={opts['isolate_digits']} "
                  f"ensure_unicode={opts['ensure_unicode']} refine={opts['refine']}")
    plan = report.plan
    where = f"{plan.get('backend')}, {plan.get('workers')} workers" + (
        f", {plan.get('processes')} processes" if plan.get("processes") else "")
    table.add_row("plan", f"{where}, {plan.get('shards', 0)} shard(s)")
    table.add_row("memory", f"budget {format_size(plan.get('budget_bytes', 0))}, spilled "
                  f"{format_size(report.spilled_bytes)}")
    table.add_row("n-grams kept", f"{report.ngrams_kept:,}")
    table.add_row("pieces counted", f"{report.pieces_counted:,} ({report.distinct_pieces:,} distinct)")
    for name, phase in report.phases.items():
        line = f"{phase.wall_s:.2f} s, peak RSS {phase.peak_rss_mb:,.0f} MiB"
        if phase.worker_peak_rss_mb:
            line += f" (workers: {', '.join(f'{v:,.0f}' for v in phase.worker_peak_rss_mb.values())} MiB)"
        table.add_row(f"time: {name}", line)
    table.add_row("time: total", f"{report.total_s:.2f} s ({format_rate(report.bytes, report.total_s)}; loading kernels: "
                  f"{report.compile_s:.1f} s more)")
    out_console.print(table)

    models = Table(title="models", title_justify="left")
    models.add_column("file", overflow="fold")
    models.add_column("target", justify="right")
    models.add_column("vocab size", justify="right")
    if valid is not None:
        models.add_column(Text(f"bytes/token on {valid.name}"), justify="right")
    for model, path in zip(trainer.models, written):
        row: list[str | Text] = [Text(str(path)), f"{model.metadata.get('target_vocab_size', ''):,}", f"{model.vocab_size:,}"]
        if valid is not None:
            row.append(f"{file_compression(model, valid).bytes_per_token:.3f}")
        models.add_row(*row)
    out_console.print(models)


def register(app: typer.Typer) -> None:
    app.command("train", cls=Command)(train)
