"""The conventions every ``bytepiece`` command follows, in one place.

- A mistake on the command line (an unknown option, a malformed value, options that do not go
  together) is one ``error:`` line on stderr and exit status 2, before any work; a failure while
  running (a missing file, a corrupt model, bad input text) is one line and exit status 1 (see
  ``common.handle_errors``). typer would print a boxed usage panel instead; scripts and logs
  want one line.
- Switches are plain flags: typer would show a ``<bool>`` type next to them, which reads as if
  the flag took a value. Arguments with a metavar show it alone, without a ``<list[Path]>`` type.
- Usage lines name a required argument as it is (``MODEL``, ``FILE...``) and an optional one in
  brackets (``[FILE]...``), as click and most tools do; typer puts required ones in braces
  (``{MODEL}``), which elsewhere means "one of these".

Commands register with ``cls=Command``; the root and ``eval`` apps are ``Group``\\s.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from .common import ClickException, UsageError
from .messages import err_console

#: exit status of a command line that cannot be run as written (``checks.usage_error``)
USAGE_EXIT = 2


def _plain(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # shown as nothing: a switch takes no value
        elif isinstance(param, TyperArgument):
            # typer has no setting for either, so this instance's methods are replaced.
            setattr(param, "get_usage_pieces", types.MethodType(_usage_pieces, param))
            if param.metavar:  # it already says what goes there: no type column
                setattr(param, "display_type_rich", types.MethodType(_no_type, param))
    return params


def _no_type(self: Any, ctx: Any) -> None:
    return None


def _usage_pieces(self: Any, ctx: Any) -> list[str]:
    name = self.metavar or (self.name or "").upper()
    return [(name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")]


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as e:  # raised by the command itself: name the command in the message
            if getattr(e, "ctx", None) is None:
                e.ctx = ctx  # type: ignore[attr-defined]
            raise


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))

    def main(self, *args: Any, standalone_mode: bool = True, **extra: Any) -> Any:
        extra["standalone_mode"] = False  # errors come back here, to be printed as one line
        try:
            rv = super().main(*args, **extra)
        except ClickException as e:
            if not standalone_mode:
                raise
            print_usage_error(e)
            sys.exit(getattr(e, "exit_code", USAGE_EXIT) or USAGE_EXIT)
        except typer.Abort:
            if not standalone_mode:
                raise
            err_console.print("error: aborted", markup=False, highlight=False)
            sys.exit(1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def print_usage_error(e: Exception) -> None:
    """``error: MESSAGE; see 'bytepiece CMD -h'`` on one line."""
    text = str(e.format_message() if hasattr(e, "format_message") else e)
    if type(e).__name__ == "NoArgsIsHelpError":  # a group called without a command: its help is the message
        if text.strip():  # (typer's rich help prints itself and leaves the message empty)
            err_console.print(text, markup=False, highlight=False)
        return
    message = " ".join(text.split())
    message = message.replace("Value error, ", "").rstrip(".")
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None else "bytepiece"
    err_console.print(f"error: {message}; see '{path} -h'", markup=False, highlight=False)
