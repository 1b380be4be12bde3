"""``bytepiece decode``: token ids back to text, from any output of ``bytepiece encode``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer

from .checks import MAX_ID_LINE_BYTES, check_inputs, check_outputs, limited_lines
from .common import fail, handle_errors, load_tokenizer
from .core import Command


@handle_errors
def decode(
    files: Annotated[Optional[list[Path]], typer.Argument(
        metavar="FILE", help="Lines of ids (as encode writes them), or encode's .npy / .bin files or "
        ".manifest.json; stdin when none or '-'.", show_default=False)] = None,
    model: Annotated[Optional[Path], typer.Option("--model", "-m", metavar="MODEL", help="Model file (default: the "
                                                  "model shipped with bytepiece).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="PATH", help="Output file (written "
                                                   "atomically); stdout when omitted.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
) -> None:
    """Decode token ids back into text, one line per document."""
    files = files or []
    check_inputs(files)
    if output is not None:
        check_outputs([output], force)
    tokenizer = load_tokenizer(model)
    from bytepiece.io.atomic import atomic_open

    from bytepiece.errors import InputError

    with (atomic_open(output, "w", overwrite=force) if output is not None else _stdout()) as out:
        for where, ids in _documents(files, tokenizer.model):
            try:
                text = tokenizer.decode(ids)
            except InputError as e:
                raise fail(f"{where}: {e}") from None
            out.write(text + "\n")


class _stdout:
    def __enter__(self) -> IO[str]:
        return sys.stdout

    def __exit__(self, *exc: Any) -> None:
        return None


def _documents(files: list[Path], model: Any) -> Iterator[tuple[str, list[int]]]:
    """Where each document is and its ids, file by file: sharded corpora (refused when encoded
    with another model) and binary token files document by document, text files (and stdin)
    line by line."""
    from bytepiece.interop.npyfile import open_token_file
    from bytepiece.tokens.manifest import MANIFEST_SUFFIX

    for path in files or [Path("-")]:
        if path.name.endswith(MANIFEST_SUFFIX):
            from bytepiece import TokenDataset

            with TokenDataset(path, model=model) as dataset:
                for i, ids in enumerate(dataset.documents()):
                    yield f"document {i} of {path}", ids.tolist()
            continue
        arrays = None if str(path) == "-" else open_token_file(path)
        if arrays is not None:
            tokens, offsets = arrays
            bounds = offsets.tolist()
            for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
                yield f"document {i} of {path}", tokens[a:b].tolist()
            continue
        name = "stdin" if str(path) == "-" else str(path)
        if str(path) == "-":
            yield from _id_lines(sys.stdin.buffer, name)
        else:
            with open(path, "rb") as f:
                yield from _id_lines(f, name)


def _id_lines(f: IO[bytes], name: str) -> Iterator[tuple[str, list[int]]]:
    for number, (line, _) in enumerate(limited_lines(f, name, MAX_ID_LINE_BYTES), start=1):
        tokens = line.split()
        # ASCII digits only: int() would also take "1_0", "+5", "-3" and other scripts' digits.
        bad = next((tok for tok in tokens if not tok.isdigit()), None)
        if bad is not None:
            shown = bad[:40].decode("utf-8", "backslashreplace")
            raise fail(f"line {number} of {name}: {shown!r} is not a token id (ids are non-negative decimal integers "
                       "separated by spaces)")
        yield f"line {number} of {name}", [int(tok) for tok in tokens]


def register(app: typer.Typer) -> None:
    app.command(cls=Command)(decode)
