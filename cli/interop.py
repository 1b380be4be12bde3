"""``bytepiece export`` (to sentencepiece / HF tokenizers) and ``bytepiece import`` (from sentencepiece)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .checks import check_outputs
from .common import handle_errors
from .messages import fail, note, out_console
from .core import Command

#: The most text --verify reads (its lines are held in memory).
VERIFY_BYTES = 256 << 20


class Target(str, enum.Enum):
    sentencepiece = "sentencepiece"
    hf = "hf"


class Style(str, enum.Enum):
    byte_fallback = "byte_fallback"
    byte_level = "byte_level"


@handle_errors
def export(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="bytepiece model file to export.", show_default=False)],
    to: Annotated[Target, typer.Option("--to", "-t", help="Target library.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="PATH", help="A file, or for hf a directory "
                                         "(tokenizer.json and its config).", show_default=False)],
    style: Annotated[Optional[Style], typer.Option(metavar="STYLE", help="byte_level (same ids; hf default) or "
                                                   "byte_fallback (readable; sentencepiece default).",
                                                   show_default=False)] = None,
    raw: Annotated[bool, typer.Option("--raw", help="hf: no NFC normalizer (for --raw use).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    verify: Annotated[Optional[Path], typer.Option("--verify", metavar="FILE", help="Compare ids with bytepiece on "
                                                   "FILE's lines ('-': samples).", show_default=False)] = None,
    special_token: Annotated[Optional[list[str]], typer.Option("--special-token", metavar="TEXT", help="Add a special "
                             "token; repeatable.", show_default=False)] = None,
) -> None:
    """Export a model for sentencepiece or HF tokenizers (Unigram)."""
    from bytepiece.interop.export import export_model, output_files, require_runtime

    if raw and to is not Target.hf and verify is None:
        note("--raw does not change a sentencepiece export (it has no NFC step to leave out); with --verify it "
             "compares ids on the texts as they are instead of NFC-normalized")
    check_outputs(output_files(to.value, output), force)
    texts = None
    if verify is not None:  # before writing: an export that cannot be checked is not wanted
        require_runtime(to.value)
        texts = _verify_texts(verify)
    from bytepiece import Tokenizer

    tokenizer = Tokenizer(model, normalization="none" if raw else "nfc", special_tokens=special_token or ())
    report = export_model(tokenizer, output, target=to.value, style=style.value if style else None, overwrite=force,
                          verify=texts)
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"exported {model.name}"), show_header=False)
    table.add_row("written", Text(str(report.path)))
    table.add_row("format", f"{report.target} ({report.style})")
    table.add_row("bytepiece ids", f"0..{report.vocab_size - 1} (same ids)")
    extra = report.tokens_in_file - report.vocab_size
    table.add_row("tokens in file", f"{report.tokens_in_file:,}" + (f" ({extra} extra after the bytepiece ids)"
                                                                     if extra > 0 else ""))
    if report.unusable_pieces:
        table.add_row("unusable pieces", f"{report.unusable_pieces} pieces are not valid UTF-8 (kept as unused "
                      "placeholders; --style byte_level keeps them usable)")
    table.add_row("load with", report.load_with)
    if report.verified is not None:
        result = report.verified
        table.add_row("verified", f"{result.exact:,} of {result.texts:,} texts encode to the same ids ({result.rate:.2%})")
    out_console.print(table)


def _verify_texts(path: Path) -> list[str]:
    """The documents of ``path`` ('-': the built-in sample texts), read as ``encode`` reads them."""
    from bytepiece.corpus import no_text_error
    from bytepiece.interop.check import SAMPLE_TEXTS, read_texts

    if str(path) == "-":
        return list(SAMPLE_TEXTS)
    if not path.exists():
        raise fail(f"--verify file {path} does not exist")
    if path.is_dir():
        raise fail(f"--verify {path} is a directory; give a text file (a document per line)")
    texts = read_texts(path, limit=VERIFY_BYTES)
    if not texts:
        raise fail(str(no_text_error(f"--verify {path}")))
    return texts


@handle_errors
def import_model(
    spm_model: Annotated[Path, typer.Argument(metavar="SPM_MODEL", help="sentencepiece Unigram .model file.",
                                              show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="PATH", help="bytepiece model file to write.",
                                         show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
) -> None:
    """Convert a sentencepiece [bold]Unigram[/] model into a bytepiece model."""
    if not spm_model.exists() or spm_model.is_dir():
        raise fail(f"cannot read {spm_model}: {'is a directory' if spm_model.is_dir() else 'no such file'}")
    check_outputs([output], force)
    import warnings

    from bytepiece.interop.sentencepiece import NormalizerWarning, import_sentencepiece

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NormalizerWarning)
        model = import_sentencepiece(spm_model)
    model.save(output, overwrite=force)
    info = model.metadata.get("sentencepiece", {})
    from rich.table import Table

    from rich.text import Text

    table = Table(title=Text(f"imported {spm_model.name}"), show_header=False)
    table.add_row("written", Text(str(output)))
    table.add_row("vocabulary size", f"{model.vocab_size:,} ({len(model.pieces):,} pieces + 3 special)")
    table.add_row("pieces in the sentencepiece file", f"{info.get('pieces_in_file', '?'):,}")
    if info.get("added_single_bytes"):
        table.add_row("single bytes added", str(info["added_single_bytes"]))
    table.add_row("counts", str(info.get("counts", "")))
    if "probability_mass" in info:
        table.add_row("sum of piece probabilities", f"{info['probability_mass']:.4f}")
    out_console.print(table)
    for warning in caught:  # after the table, as the note below
        note(str(warning.message))
    if not caught and "exact" not in str(info.get("counts", "")):
        note("the imported model gives sentencepiece's ids on NFC text, or on any text when encoding with --raw "
             "(normalization='none'): bytepiece normalizes text to NFC, sentencepiece's identity normalization does not")


def register(app: typer.Typer) -> None:
    app.command("export", cls=Command)(export)
    app.command("import", cls=Command)(import_model)
