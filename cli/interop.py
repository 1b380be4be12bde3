"""``bytepiece export`` (to sentencepiece / HF tokenizers) and ``bytepiece import`` (from sentencepiece)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import err_console, fail, handle_errors, out_console

TARGETS = ("sentencepiece", "hf")
STYLES = ("byte_fallback", "byte_level")
DEFAULT_STYLE = {"sentencepiece": "byte_fallback", "hf": "byte_level"}
#: The most text --verify reads (its lines are held in memory).
VERIFY_BYTES = 256 << 20


@handle_errors
def export(
    model: Annotated[Path, typer.Argument(help="bytepiece model file to export.", show_default=False)],
    to: Annotated[str, typer.Option("--to", "-t", help="Target library: sentencepiece or hf.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (hf: a tokenizer.json path, or a directory "
                                         "that also receives tokenizer_config.json).", show_default=False)],
    style: Annotated[Optional[str], typer.Option(help="byte_fallback (readable tokens, <0xNN> byte pieces; "
                                                 "default for sentencepiece) or byte_level (bytes mapped to characters, "
                                                 "ids identical to bytepiece; default for hf).", show_default=False)] = None,
    raw: Annotated[bool, typer.Option("--raw", help="hf: no NFC normalizer (for models used with --raw).")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")] = False,
    verify: Annotated[Optional[Path], typer.Option("--verify", help="Load the export with its library (needs the "
                                                   "sentencepiece / hf extra) and compare ids with bytepiece on the lines of "
                                                   "this text file ('-' for a few built-in sample texts).",
                                                   show_default=False)] = None,
    special_token: Annotated[Optional[list[str]], typer.Option("--special-token", help="Add a special token to the export "
                             "(after the model's own; HF added special token / sentencepiece user-defined symbol); "
                             "repeatable.", show_default=False)] = None,
) -> None:
    """Export a model as a sentencepiece [bold]ModelProto[/] or an HF [bold]tokenizer.json[/] (Unigram)."""
    target = to.lower().replace("-", "").replace("_", "")
    target = {"sentencepiece": "sentencepiece", "spm": "sentencepiece", "sp": "sentencepiece", "hf": "hf",
              "huggingface": "hf", "tokenizers": "hf"}.get(target)
    if target is None:
        raise fail(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    style = (style or DEFAULT_STYLE[target]).replace("-", "_")
    if style not in STYLES:
        raise fail(f"--style must be one of {', '.join(STYLES)}, got {style!r}")
    from bytepiece.atomic import check_writable, is_stream
    from bytepiece.interop.hf import DIRECTORY_FILES, is_directory_target

    if target == "hf" and is_directory_target(output):
        outputs = [output / name for name in DIRECTORY_FILES] if output.is_dir() else []
    else:
        outputs = [output]
    if not force:
        existing = [str(p) for p in outputs if p.is_file() and not is_stream(p)]
        if existing:
            raise fail(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                       "pass --force to overwrite")
    check_writable(outputs, overwrite=force)

    from bytepiece import Tokenizer

    tokenizer = Tokenizer(model, normalization="none" if raw else "nfc", special_tokens=special_token or ())
    if target == "sentencepiece":
        from bytepiece.interop.sentencepiece import build_proto, export_sentencepiece

        written = export_sentencepiece(tokenizer, output, style=style, overwrite=force)
        proto = build_proto(tokenizer, style=style)
        total = len(proto.pieces)
        unusable = sum(1 for p in proto.pieces[: tokenizer.vocab_size] if p.type == 5)
        usage = "sentencepiece.SentencePieceProcessor(model_file=...)"
    else:
        from bytepiece.interop.hf import build_hf_json, export_hf

        written = export_hf(tokenizer, output, style=style, overwrite=force)
        data = build_hf_json(tokenizer, style=style)
        total = len(data["model"]["vocab"])
        unusable = sum(1 for t, _ in data["model"]["vocab"][: tokenizer.vocab_size] if t.startswith("<bytes:"))
        usage = "tokenizers.Tokenizer.from_file(...)"
    from rich.table import Table

    table = Table(title=f"exported {model.name}", show_header=False)
    table.add_row("written", str(written))
    table.add_row("format", f"{target} ({style})")
    table.add_row("bytepiece ids", f"0..{tokenizer.vocab_size - 1} (same ids)")
    table.add_row("tokens in file", f"{total:,}" + (f" ({total - tokenizer.vocab_size} extra after the bytepiece ids)"
                                                    if total > tokenizer.vocab_size else ""))
    if unusable:
        table.add_row("unusable pieces", f"{unusable} pieces are not valid UTF-8 (kept as unused placeholders; "
                      "--style byte_level keeps them usable)")
    table.add_row("load with", usage)
    if verify is not None:
        from bytepiece.interop.check import SAMPLE_TEXTS, agreement

        if str(verify) == "-":
            texts = SAMPLE_TEXTS
        else:
            from bytepiece._read import read_limited
            from bytepiece.errors import InputError

            data = read_limited(verify, limit=VERIFY_BYTES, what="--verify text", error=InputError)
            text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
            texts = text.removesuffix("\n").split("\n") if text else []
        result = agreement(tokenizer, written, target, texts)
        table.add_row("verified", f"{result.exact:,} of {result.texts:,} texts encode to the same ids ({result.rate:.2%})")
    out_console.print(table)


@handle_errors
def import_model(
    spm_model: Annotated[Path, typer.Argument(help="sentencepiece Unigram .model file.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="bytepiece model file to write.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")] = False,
) -> None:
    """Convert a sentencepiece [bold]Unigram[/] model into a bytepiece model (scores become counts)."""
    if not spm_model.exists() or spm_model.is_dir():
        raise fail(f"cannot read {spm_model}: {'is a directory' if spm_model.is_dir() else 'no such file'}")
    from bytepiece.atomic import check_writable, is_stream

    if output.is_file() and not is_stream(output) and not force:
        raise fail(f"{output} already exists; pass --force to overwrite it")
    check_writable([output], overwrite=force)
    from bytepiece.interop.sentencepiece import import_sentencepiece

    model = import_sentencepiece(spm_model)
    model.save(output, overwrite=force)
    info = model.metadata.get("sentencepiece", {})
    from rich.table import Table

    table = Table(title=f"imported {spm_model.name}", show_header=False)
    table.add_row("written", str(output))
    table.add_row("vocabulary size", f"{model.vocab_size:,} ({len(model.pieces):,} pieces + 3 special)")
    table.add_row("pieces in the sentencepiece file", f"{info.get('pieces_in_file', '?'):,}")
    if info.get("added_single_bytes"):
        table.add_row("single bytes added", str(info["added_single_bytes"]))
    table.add_row("counts", str(info.get("counts", "")))
    if "probability_mass" in info:
        table.add_row("sum of piece probabilities", f"{info['probability_mass']:.4f}")
    out_console.print(table)
    if "exact" not in str(info.get("counts", "")):
        err_console.print("note: bytepiece applies its own normalization (NFC, newline chunking), not sentencepiece's "
                          "normalizer (NFKC, dummy prefix, whitespace handling)")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_model)
