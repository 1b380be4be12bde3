"""``bytepiece decode``: token ids back to documents, from any output of ``bytepiece encode``."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import handle_errors, resolve_model
from .messages import err_console
from .core import Command


class DecodeFormat(str, enum.Enum):
    auto = "auto"
    text = "text"
    jsonl = "jsonl"


@handle_errors
def decode(
    files: Annotated[Optional[list[Path]], typer.Argument(
        metavar="FILE", help="Token files as encode writes them: a shard prefix or .manifest.json, .bin, .npy, or "
        "lines of ids; stdin (lines of ids) when none or '-'.", show_default=False)] = None,
    model: Annotated[Optional[Path], typer.Option("--model", "-m", metavar="MODEL", help="Model file (default: the "
                                                  "model shipped with bytepiece).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="PATH", help="Output file (written "
                                                   "atomically); stdout when omitted.", show_default=False)] = None,
    fmt: Annotated[DecodeFormat, typer.Option(
        "--format", "-f", help="text: a line per document; jsonl: a JSON record per document; auto: jsonl "
        "if documents may hold newlines.")] = DecodeFormat.auto,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    special_tokens: Annotated[Optional[list[str]], typer.Option(
        "--special-token", metavar="TEXT", help="A special token given to encode, in the same order; repeatable (for ids and .npy: "
        ".bin and corpora record them).", show_default=False)] = None,
) -> None:
    """Decode token ids back into documents, with their boundaries."""
    from bytepiece.progress import Progress
    from bytepiece.tokens import decode_corpus

    summary = decode_corpus(files or ["-"], resolve_model(model), output, format=fmt.value, overwrite=force,
                            progress=Progress(err_console.is_terminal and output is not None, console=err_console),
                            special_tokens=special_tokens or ())
    if output is not None:
        err_console.print(f"wrote {summary.n_documents:,} documents ({summary.format}, {summary.n_tokens:,} tokens) "
                          f"to {output} in {summary.seconds:.1f} s", soft_wrap=True, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command(cls=Command)(decode)
