"""Find the fenced code blocks of markdown files and run them, so the documentation cannot drift.

The contract (which blocks run, how, in which directory and with which files) is written down for
documentation authors in ``docs/CONTRIBUTING.md``, "How documentation examples are run"; this
module and ``tests/test_docs.py`` implement it.

Every script is written with blank lines in front so that its line numbers are the markdown
file's: a traceback, a doctest report or the shell's failure line points straight at the docs.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

PYTHON_LANGS = frozenset({"python", "py", "python3"})
DOCTEST_LANGS = frozenset({"pycon"})
SHELL_LANGS = frozenset({"bash", "sh", "shell"})
CONSOLE_LANGS = frozenset({"console", "shell-session"})
RUN_LANGS = PYTHON_LANGS | DOCTEST_LANGS | SHELL_LANGS | CONSOLE_LANGS

DEFAULT_TIMEOUT_S = 120.0
OUTPUT_TAIL = 4000

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_NO_RUN = re.compile(r"^\s*<!--\s*no-run\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")

# The shell prelude takes line 1; the ERR trap names the failing markdown line (LINENO equals it
# because of the padding) and the command, before ``set -e`` ends the script.
_SHELL_PRELUDE = ("set -eo pipefail; "
                  "trap 'echo \"docs: line $LINENO failed (exit $?): $BASH_COMMAND\" >&2' ERR")

_DOCTEST_DRIVER = """\
import doctest, sys
path, name, lineno = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, encoding="utf-8") as f:
    text = f.read()
test = doctest.DocTestParser().get_doctest(text, {"__name__": "__main__"}, name, name, lineno)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
runner.run(test)
sys.exit(1 if runner.failures or not test.examples else 0)
"""


class Block(NamedTuple):
    """One fenced block. ``line`` is the 1-based line of the opening fence; ``code`` has the
    fence's indentation removed; ``problem`` is set for a block that cannot be run as written."""

    source: str  # the markdown file, relative to the documentation root ("docs/x.md")
    line: int
    lang: str
    code: str
    no_run: str | None = None  # the reason given in <!-- no-run: reason -->
    problem: str | None = None

    @property
    def name(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGS or self.problem is not None


class DocBlockFailed(AssertionError):
    """A block exited with a non-zero status, timed out, or cannot be run as written."""


def parse_blocks(text: str, source: str) -> list[Block]:
    """Every fenced block of ``text``, CommonMark style: a fence of 3+ backticks or tildes, closed
    by a fence of the same character at least as long; the info string's first word is the
    language. An unclosed fence is reported as a problem rather than run to the end of the file."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        if not opening or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        words = opening["info"].strip().split()
        lang = words[0].lower() if words else ""
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        body = lines[i + 1 : len(lines) if end is None else end]
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip() for line in body)
        blocks.append(Block(source, i + 1, lang, code + "\n" if body else "", _no_run_reason(lines, i),
                            None if end is not None else f"the fence opened at line {i + 1} is never closed"))
        i = len(lines) if end is None else end + 1
    return blocks


def _no_run_reason(lines: list[str], fence_index: int) -> str | None:
    for j in range(fence_index - 1, -1, -1):
        if lines[j].strip():
            marker = _NO_RUN.match(lines[j])
            return (marker["reason"] or "marked <!-- no-run -->") if marker else None
    return None


def find_blocks(root: Path, patterns: tuple[str, ...] = ("README.md", "docs/**/*.md")) -> list[Block]:
    """The blocks of the documentation under ``root`` that run (or cannot, and must say so)."""
    found: list[Block] = []
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            source = path.relative_to(root).as_posix()
            found += [b for b in parse_blocks(path.read_text(encoding="utf-8"), source) if b.runs]
    return found


def console_script(code: str) -> str:
    """The commands of a console transcript, line for line: ``$ `` prompts removed (and ``> ``
    on continuation lines), output lines blanked so line numbers stay those of the block."""
    out: list[str] = []
    continuing = False
    for line in code.split("\n"):
        if continuing:
            command = line[2:] if line.startswith("> ") else line
        elif line.startswith("$ ") or line == "$":
            command = line[2:]
        else:
            out.append("")
            continue
        out.append(command)
        continuing = command.endswith("\\")
    return "\n".join(out)


def doc_environment(bin_dir: Path | None = None) -> dict[str, str]:
    """The environment blocks run in: this interpreter's ``bin`` first on PATH (its ``python`` and
    ``bytepiece``), an 80-column colourless terminal, unbuffered Python output."""
    bin_dir = bin_dir or Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(COLUMNS="80", NO_COLOR="1", PYTHONUNBUFFERED="1", TERM="dumb")
    return env


def run_block(block: Block, workdir: Path, scratch: Path, *, env: dict[str, str] | None = None,
              timeout: float = DEFAULT_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``block`` with ``workdir`` as current directory; scripts go to ``scratch`` (so they do
    not show up among the files the block sees). Raises :class:`DocBlockFailed` on failure."""
    if block.problem is not None:
        raise DocBlockFailed(f"{block.name}: {block.problem}")
    env = env if env is not None else doc_environment()
    script = scratch / block.source  # named like the markdown file, so tracebacks name it
    script.parent.mkdir(parents=True, exist_ok=True)
    padding = "\n" * block.line
    if block.lang in PYTHON_LANGS | DOCTEST_LANGS:
        # as in an interactive session, modules in the current directory are importable
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))}
    if block.lang in PYTHON_LANGS and not block.code.lstrip().startswith(">>>"):
        script.write_text(padding + block.code, encoding="utf-8")
        argv = [sys.executable, str(script)]
    elif block.lang in PYTHON_LANGS | DOCTEST_LANGS:
        driver = scratch / "_doctest_driver.py"
        driver.write_text(_DOCTEST_DRIVER, encoding="utf-8")
        script.write_text(block.code, encoding="utf-8")
        argv = [sys.executable, str(driver), str(script), block.source, str(block.line)]
    else:
        body = console_script(block.code) if block.lang in CONSOLE_LANGS else block.code
        if block.lang in CONSOLE_LANGS and not body.strip():
            raise DocBlockFailed(f"{block.name}: a console block needs '$ ' command lines; use ```text for output only")
        script.write_text(_SHELL_PRELUDE + padding + body, encoding="utf-8")
        argv = ["bash", str(script)]
    result = _run(argv, workdir, env, timeout)
    if result.returncode != 0:
        raise DocBlockFailed(_failure_message(block, result))
    return result


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run in a new session, so a timeout kills the block's children too (a pipe left open by a
    grandchild would otherwise keep ``communicate`` waiting)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended on its own meanwhile
            pass
        out, err = proc.communicate()
        return subprocess.CompletedProcess(argv, -signal.SIGKILL, out, err + f"\ndocs: timed out after {timeout:g} s")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _failure_message(block: Block, result: subprocess.CompletedProcess) -> str:
    numbered = "\n".join(f"{block.line + k:5d}  {line}" for k, line in enumerate(block.code.rstrip("\n").split("\n"), 1))
    return (f"{block.name} ({block.lang} block) failed with exit status {result.returncode}; "
            f"line numbers below are lines of {block.source}\n"
            f"--- block ---\n{numbered}\n"
            f"--- stdout (tail) ---\n{result.stdout[-OUTPUT_TAIL:]}\n"
            f"--- stderr (tail) ---\n{result.stderr[-OUTPUT_TAIL:]}")


DOCS_TXT = """\
今天天气不错，我们下午去公园散步吧。
The quick brown fox jumps over the lazy dog.
def greet(name): return f"hello, {name}"
混合的 mixed line: 中文 and English, with numbers 2024 and 3.14.
"""
HELDOUT_LINES = 200
MY_MODEL_VOCAB = 2000


def build_assets(directory: Path, repo: Path) -> list[str]:
    """The files every block finds in its directory (see docs/CONTRIBUTING.md); made once per
    test session and copied for each block. Returns their names."""
    from bytepiece import Tokenizer
    from bytepiece.training import Trainer

    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "corpus.txt"
    shutil.copyfile(repo / "data" / "sample_corpus.txt", corpus)
    shutil.copyfile(repo / "data" / "default.model", directory / "default.model")
    lines = corpus.read_text(encoding="utf-8").split("\n")
    (directory / "heldout.txt").write_text("\n".join(lines[:HELDOUT_LINES]) + "\n", encoding="utf-8")
    (directory / "docs.txt").write_text(DOCS_TXT, encoding="utf-8")
    jsonl = "".join(json.dumps({"text": line}, ensure_ascii=False) + "\n" for line in lines if line)
    (directory / "corpus.jsonl").write_text(jsonl, encoding="utf-8")
    (directory / "corpus.jsonl.gz").write_bytes(gzip.compress(jsonl.encode("utf-8"), mtime=0))
    model = Trainer(max_vocab_size=MY_MODEL_VOCAB, progress=False).train(str(corpus))[0]
    model.save(directory / "my.model")
    (directory / "my.model.meta.json").unlink(missing_ok=True)  # keep to the documented set
    tokenizer = Tokenizer(directory / "my.model")
    ids = "".join(" ".join(map(str, tokenizer.encode(line))) + "\n" for line in DOCS_TXT.splitlines())
    (directory / "ids.txt").write_text(ids, encoding="utf-8")
    return sorted(p.name for p in directory.iterdir())
