"""The command line's consoles and its one-line messages (``error:``, ``note:``), in its own
words: a library message names a parameter, the command line the option."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import typer


class _LazyConsole:
    """A rich ``Console`` made on first use. Importing rich costs about as much as everything
    else ``echo text | bytepiece encode`` does, and that path prints through ``sys.stdout``."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __enter__(self) -> Any:  # rich's Live renders inside ``with console:``
        return self._real().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._real().__exit__(*exc)

    def _real(self) -> Any:
        console = self._console
        if console is None:
            from rich.console import Console

            console = self._console = Console(**self._options)
        return console


err_console: Any = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line in logs
out_console: Any = _LazyConsole(highlight=False, soft_wrap=True)


#: library parameter names as the command line spells them (messages from the library name
#: the parameter; a user of the command line knows the option)
CLI_WORDS = {
    "max_vocab_size": "--vocab-size", "max_memory": "--max-memory", "min_count": "--min-count",
    "max_piece_length": "--max-piece-length", "tmp_dir": "--tmp-dir", "shard_size": "--shard-size",
    "jsonl_field": "--jsonl-field", "parquet_column": "--parquet-column", "num_threads": "--threads",
    "add_bos": "--add-bos", "add_eos": "--add-eos", "allowed_special": "--allow-special",
    "special_tokens": "--special-token", "isolate_digits": "--isolate-digits",
    "heldout_bytes": "--heldout-bytes", "lm_train_bytes": "--lm-train-bytes", "generic_cuts": "--generic-cuts",
    "alpha_train": "--alpha-train", "soft_bias": "--soft-bias", "save_models": "--save-models",
    "transformer_cuts": "--transformer-cuts", "transformer_max_states": "--transformer-max-states",
    "transformer_processes": "--transformer-processes",
}
_CLI_WORD = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, CLI_WORDS)) + r")(?![\w-])")


#: "how a library user does it (CLI: how the command line does it)", as library messages say it
_BOTH_SPELLINGS = re.compile(r"(?<!\S)[^\s()]+ \(CLI: ([^()]+)\)")


def in_cli_words(message: str, subjects: Mapping[str, str] | None = None) -> str:
    """``message`` as the command line says it: where the library gives both spellings
    (``overwrite=True (CLI: --force)``) the CLI's alone, and parameter names as options.

    ``subjects``: a command's own parameters whose names are ordinary words (``order``,
    ``workers``, ``vocab size``), as its options. Such a word is an option only as the subject
    a library message starts with (``order must be ...``); anywhere else ("in corpus order",
    "the workers of the Dask cluster") it is the word, so these cannot be in :data:`CLI_WORDS`."""
    message = _BOTH_SPELLINGS.sub(r"\1", message)
    for name in sorted(subjects or (), key=len, reverse=True):  # "transformer width" before "transformer"
        if message.startswith(f"{name} "):
            message = (subjects or {})[name] + message[len(name):]
            break
    return _CLI_WORD.sub(lambda m: CLI_WORDS[m.group(1)], message)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise. ``message`` is plain
    text: brackets in it (``pip install 'bytepiece-tk[plot]'``) are printed as they are."""
    text = " ".join(in_cli_words(message).split())
    err_console.print(f"[bold red]error:[/] {_escape(text)}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def note(message: str) -> None:
    """One ``note:`` line on stderr (plain text: brackets in ``message`` are not markup)."""
    text = " ".join(in_cli_words(str(message)).split())
    err_console.print(f"[yellow]note:[/] {_escape(text)}", markup=True, highlight=False, soft_wrap=True)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    note(str(message))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


