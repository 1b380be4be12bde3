"""``bytepiece inspect``: ``Model.summary()`` as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import handle_errors, resolve_model
from .messages import out_console
from .core import Command


@handle_errors
def inspect(
    model: Annotated[Optional[Path], typer.Argument(metavar="MODEL", help="Model file (default: the shipped model).",
                                                    show_default=False)] = None,
    top: Annotated[int, typer.Option(min=0, metavar="N", help="How many of the most frequent pieces to list.")] = 20,
) -> None:
    """Summarize a model: sizes, piece lengths, most frequent pieces."""
    from rich.table import Table
    from rich.text import Text  # cells as plain text: a piece such as "[b]" is not markup

    from bytepiece import load_model
    from bytepiece.summary import display_piece

    path = resolve_model(model)
    s = load_model(path).summary(top=top)
    summary = Table(title=Text(path.name), show_header=False)
    n = len(s.special_tokens)
    specials = f" + {n} special token{'s' if n > 1 else ''}" if n else ""
    summary.add_row("vocabulary size", f"{s.ids:,} ({s.pieces:,} pieces + 3 reserved{specials})")
    summary.add_row("total count", f"{s.total_count:,}")
    summary.add_row("longest piece", f"{s.longest_piece} bytes")
    summary.add_row("mean piece length", f"{s.mean_piece_length:.2f} bytes")
    summary.add_row("valid UTF-8 pieces", f"{s.utf8_pieces:,} ({s.utf8_pieces / s.pieces:.1%})")
    if s.special_tokens:
        summary.add_row("special tokens", Text(" ".join(s.special_tokens)))
    for key, value in s.metadata.items():
        summary.add_row(Text(f"meta: {key}"), Text(str(value)))
    out_console.print(summary)

    hist = Table(title="pieces by length (bytes)")
    hist.add_column("length", justify="right")
    hist.add_column("pieces", justify="right")
    hist.add_column("share of counts", justify="right")
    for row in s.lengths:
        hist.add_row(str(row.length), f"{row.pieces:,}", f"{row.count_share:.2%}")
    out_console.print(hist)

    if s.top:
        freq = Table(title=f"{len(s.top)} most frequent pieces")
        freq.add_column("id", justify="right")
        freq.add_column("piece")
        freq.add_column("count", justify="right")
        freq.add_column("p", justify="right")
        for t in s.top:
            freq.add_row(str(t.id), Text(display_piece(t.piece)), f"{t.count:,}", f"{t.probability:.4f}")
        out_console.print(freq)


def register(app: typer.Typer) -> None:
    app.command(cls=Command)(inspect)
