"""Standard input read as it arrives (audit: an interactive ``bytepiece encode`` printed nothing
until the end of its input, and a Ctrl-C while it waited did nothing). A line typed at a terminal,
or written to a pipe that stays open, is answered before the next one comes, and a Ctrl-C while
the command waits for input ends it with one line and status 130. Real ``bytepiece`` processes,
each read with a timeout: a command that waits for more input fails the test instead of hanging."""

from __future__ import annotations

import os
import pty
import selectors
import signal
import subprocess
import sys
import termios
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX terminals and signals")

TIMEOUT_S = 90  # a first run may compile the kernels


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


class _Command:
    """A ``bytepiece`` process whose standard input is a pipe or a terminal (``pty``) that the
    test writes to line by line."""

    def __init__(self, args: list[str], stdin: str) -> None:
        if stdin == "pty":
            self.master, slave = pty.openpty()
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO  # the test reads the command's output, not the echo
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            stdin_arg: int = slave
        else:
            self.master = None
            stdin_arg = subprocess.PIPE
        self.proc = subprocess.Popen([sys.executable, "-m", "bytepiece", *args], env=_env(), stdin=stdin_arg,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        if self.master is not None:
            os.close(slave)
        self.selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.pending = b""

    def write(self, line: str) -> None:
        data = (line + "\n").encode()
        if self.master is not None:
            os.write(self.master, data)
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def end_input(self) -> None:
        if self.master is not None:
            os.write(self.master, b"\x04")  # Ctrl-D at the start of a line: the end of the input
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.close()

    def read_line(self) -> str:
        """The next line of standard output; fails if none comes within the timeout."""
        deadline = time.monotonic() + TIMEOUT_S
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                pytest.fail(f"no output line within {TIMEOUT_S} s (had {self.pending!r})")
            block = os.read(self.proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
            if not block:
                pytest.fail(f"standard output ended early (had {self.pending!r}); stderr: {self._stderr()}")
            self.pending += block
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode()

    def finish(self) -> tuple[int, str]:
        try:
            status = self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail("the command did not end")
        return status, self._stderr()

    def _stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.master is not None:
            os.close(self.master)
        self.selector.close()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("stdin", ["pipe", "pty"])
def test_encode_answers_each_line_before_the_next_arrives(stdin, tiny_tokenizer, tiny_model_file):
    command = _Command(["encode", "-m", str(tiny_model_file)], stdin)
    try:
        for text in ("hello world", "the second line", "3"):
            command.write(text)
            assert command.read_line() == " ".join(map(str, tiny_tokenizer.encode(text)))
        command.end_input()
        assert command.finish() == (0, "")
    finally:
        command.close()


def test_encode_answers_each_json_record_before_the_next_arrives(tiny_tokenizer, tiny_model_file):
    command = _Command(["encode", "-m", str(tiny_model_file), "--jsonl-field", "text"], "pipe")
    try:
        for text in ("hello", "world"):
            command.write(f'{{"text": "{text}"}}')
            assert command.read_line() == " ".join(map(str, tiny_tokenizer.encode(text)))
        command.end_input()
        assert command.finish()[0] == 0
    finally:
        command.close()


@pytest.mark.parametrize("stdin", ["pipe", "pty"])
def test_decode_answers_each_line_before_the_next_arrives(stdin, tiny_tokenizer, tiny_model_file):
    command = _Command(["decode", "-m", str(tiny_model_file)], stdin)
    try:
        for text in ("hello world", "again"):
            command.write(" ".join(map(str, tiny_tokenizer.encode(text))))
            assert command.read_line() == text
        command.end_input()
        assert command.finish() == (0, "")
    finally:
        command.close()


@pytest.mark.parametrize("stdin", ["pipe", "pty"])
def test_ctrl_c_while_encode_waits_for_input_is_one_line_and_status_130(stdin, tiny_tokenizer, tiny_model_file):
    """Without the fix, the first Ctrl-C waited for a reading thread stuck on the terminal, and
    a second aborted the process (status 134) over the lock of standard input."""
    command = _Command(["encode", "-m", str(tiny_model_file)], stdin)
    try:
        command.write("hello")
        assert command.read_line() == " ".join(map(str, tiny_tokenizer.encode("hello")))
        time.sleep(0.3)  # waiting in its read now
        os.killpg(command.proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does
        status, err = command.finish()
        assert (status, err.strip().splitlines()) == (130, ["error: interrupted"])
    finally:
        command.close()


class _Trickle:
    """A stream whose ``read1`` gives at most the next of ``sizes`` bytes (data arriving in pieces)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.pos = data, list(sizes), 0

    def read1(self, n: int) -> bytes:
        step = min(n, self.sizes.pop(0) if self.sizes else n)
        block = self.data[self.pos:self.pos + step]
        self.pos += len(block)
        return block


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")), max_size=12), st.booleans(),
       st.lists(st.integers(1, 50), max_size=30), st.integers(1, 60))
def test_lines_read_as_they_arrive_are_the_lines_of_the_stream(lines, last_newline, sizes, limit):
    """decode's reader of a terminal or pipe returns exactly what a buffered stream's readline
    would, whatever pieces the data arrives in, and knows when the next line is already there."""
    import io

    from bytepiece.tokens.decode import _ArrivingLines

    data = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    reference = io.BytesIO(data)
    arriving = _ArrivingLines(_Trickle(data, sizes))  # type: ignore[arg-type]
    while True:
        expected = reference.readline(limit)
        assert arriving.readline(limit) == expected
        if not expected:
            break
        rest = data[reference.tell():]
        if arriving.line_ready() and not arriving.ended:
            assert b"\n" in rest
