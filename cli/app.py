"""The ``bytepiece`` typer app. Each command lives in its own module and registers itself here;
command modules import the library lazily so ``bytepiece --help`` stays instant. The
conventions all commands share (one-line usage errors, plain switches) are in :mod:`.core`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .signals import handle_sigterm, quiet_exit
from .streams import buffered_stdout
from .core import Group

app = typer.Typer(
    name="bytepiece",
    cls=Group,
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=True,
    help="Byte-level Unigram tokenizer: train, encode, decode, inspect and evaluate models.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from bytepiece import __version__

        typer.echo(f"bytepiece {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    pass


def _register() -> None:
    import importlib

    for name in ("encode", "decode", "inspect", "train", "evaluate", "interop"):
        try:
            module = importlib.import_module(f"bytepiece_cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"bytepiece_cli.{name}":
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    buffered_stdout()
    handle_sigterm()
    quiet_exit()
    app()


if __name__ == "__main__":
    main()
