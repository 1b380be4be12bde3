"""The conventions every command shares (``cli/core.py``): help that fits 80 columns with every
option name whole, plain switches, ``-f`` only for ``--format``, ``--force`` wherever an output
may already exist, one-line usage errors with exit status 2, shell completion and
``python -m bytepiece``. Walking the command tree means a new command is held to them too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.main import get_command

from bytepiece_cli.app import app

ROOT = get_command(app)


def _commands(group=ROOT, path=()):
    """Every leaf command as (path, click command)."""
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(_commands())
GROUPS = [(), ("eval",)]
IDS = [" ".join(p) for p, _ in COMMANDS]


def _options(command):
    return [p for p in command.params if p.param_type_name == "option"]


@pytest.fixture()
def narrow(monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    return CliRunner()


def test_every_command_is_walked():
    assert {" ".join(p) for p, _ in COMMANDS} >= {"encode", "decode", "inspect", "train", "export", "import",
                                                  "eval run", "eval report", "eval compression"}


@pytest.mark.parametrize(("path", "command"), COMMANDS + [(g, None) for g in GROUPS], ids=IDS + [" ".join(g) or "(root)" for g in GROUPS])
def test_help_fits_80_columns_with_whole_names(narrow, path, command):
    result = narrow.invoke(app, [*path, "-h"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "…" not in result.stdout, "a name or value was cut off"
    assert "<bool>" not in result.stdout and "<list[" not in result.stdout
    for option in _options(command) if command is not None else []:
        for name in option.opts:
            assert name in result.stdout, f"{name} is not shown whole"
        assert len(option.help or "") <= 120, f"{option.opts[0]}: help should be a short line"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_flags_are_switches_and_short_names_agree(path, command):
    for option in _options(command):
        if "-f" in option.opts:
            assert "--format" in option.opts, f"{' '.join(path)}: -f is --format only"
        if option.is_flag:
            assert option.metavar in (None, ""), f"{option.opts[0]} is a switch; it takes no value"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_commands_that_write_files_take_force(path, command):
    writes = [o for o in _options(command) if {"--output", "--json", "--markdown", "--plot"} & set(o.opts)]
    if writes:
        assert any("--force" in o.opts for o in _options(command)), f"{' '.join(path)} writes files but has no --force"


@pytest.mark.parametrize("argv", [["encode", "--bogus"], ["train", "--order", "many"], ["nope"], ["eval", "run", "-x"],
                                  ["encode", "--format", "xml"], ["export", "m.model", "--to", "fairseq", "-o", "x"],
                                  ["encode", "--seed", "3"], ["encode", "--sample", "alpha=-1"]])
def test_usage_errors_are_one_line_and_exit_2(narrow, argv):
    result = narrow.invoke(app, argv, input="ab\n")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "-h'" in lines[0] and "╭" not in result.stderr


def test_brackets_in_messages_are_printed_as_written(narrow, tmp_path, monkeypatch):
    """The install hint names the extra in brackets; rich markup must not eat it."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    results = tmp_path / "r.json"
    results.write_text('{"format": "bytepiece-eval/1"}')
    result = narrow.invoke(app, ["eval", "report", str(results), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 1
    assert "pip install 'bytepiece-tk[plot]'" in result.stderr


def _run(*argv: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}, **kwargs)


def test_python_dash_m_runs_the_cli():
    version = _run(sys.executable, "-m", "bytepiece", "--version")
    assert version.returncode == 0 and version.stdout.startswith("bytepiece ")
    encoded = _run(sys.executable, "-m", "bytepiece", "encode", input="hello world\n")
    assert encoded.returncode == 0 and encoded.stdout.split() and all(t.isdigit() for t in encoded.stdout.split())


def test_shell_completion_completes_commands_and_choices():
    bytepiece = os.path.join(os.path.dirname(sys.executable), "bytepiece")
    commands = _run(bytepiece, env={"_BYTEPIECE_COMPLETE": "complete_bash", "COMP_WORDS": "bytepiece enc",
                                    "COMP_CWORD": "1"})
    assert commands.returncode == 0 and "encode" in commands.stdout.split()
    choices = _run(bytepiece, env={"_BYTEPIECE_COMPLETE": "complete_bash", "COMP_WORDS": "bytepiece encode --format n",
                                   "COMP_CWORD": "3"})
    assert "npy" in choices.stdout.split() and "ids" not in choices.stdout.split()


@pytest.mark.parametrize("argv", [[], ["eval"]])
def test_a_group_without_a_command_shows_its_help(narrow, argv):
    result = narrow.invoke(app, argv)
    assert result.exit_code == 2
    assert "Usage:" in result.stdout and "error" not in result.stderr
