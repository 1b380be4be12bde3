"""Signals that land while compiled kernels run on the main thread (``engine.interrupts``): the
first Python after a kernel is numba converting its results, where a raised interrupt comes back
as a ``SystemError`` or crashes the process (a tuple holding a NULL); inside llvmlite's
``__del__`` it frees LLVM memory twice. The wrapped handlers raise it at the first call or
return outside such code."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from bytepiece.engine import interrupts
from bytepiece.engine.interrupts import KernelSafeHandler, in_unsafe_code, kernel_safe_signals, protect_kernel_calls

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX signals")

# Encodes one text with sampling (the kernel returns a tuple) on the main thread, over and over,
# while another thread sends SIGINT every millisecond or two; prints how each call ended.
STORM = textwrap.dedent("""
    import json, random, signal, sys, threading, time
    from bytepiece import Tokenizer
    from bytepiece.engine import kernel_safe_signals  # the public name docs/reliability.md gives

    tokenizer = Tokenizer(sys.argv[1])
    text = "the quick brown fox jumps over the lazy dog " * 60
    tokenizer.warmup()  # the kernels loaded (or compiled) before the storm: no plain-Python start
    ended = dict.fromkeys(["ok", "interrupt", "system_error", "between calls"], 0)
    encoding = [False]
    stop = threading.Event()

    def interrupt(signum, frame):
        if not encoding[0]:  # this script's own code: counted, not raised
            ended["between calls"] += 1
            return
        raise KeyboardInterrupt

    def storm():
        rng = random.Random(1)
        while not stop.wait(rng.uniform(0.0005, 0.002)):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def encode_until(deadline):
        while time.monotonic() < deadline:
            try:
                encoding[0] = True
                tokenizer.encode(text, alpha=0.1)
                encoding[0] = False
                ended["ok"] += 1
            except KeyboardInterrupt:
                encoding[0] = False
                ended["interrupt"] += 1
            except SystemError:
                encoding[0] = False
                ended["system_error"] += 1

    signal.signal(signal.SIGINT, interrupt)
    threading.Thread(target=storm, daemon=True).start()
    deadline = time.monotonic() + float(sys.argv[2])
    if sys.argv[3] == "safe":
        with kernel_safe_signals():
            encode_until(deadline)
    else:
        encode_until(deadline)
    stop.set()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(json.dumps(ended))
""")


def _storm(model, mode: str, seconds: float = 2.0) -> tuple[int, dict[str, int]]:
    done = subprocess.run([sys.executable, "-c", STORM, str(model), str(seconds), mode], capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        return done.returncode, {}
    return 0, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_interrupts_during_kernel_calls_are_keyboard_interrupts_never_system_errors(tiny_model_file):
    status, unsafe = _storm(tiny_model_file, "plain")
    if status == 0 and not unsafe["system_error"]:
        pytest.skip("numba converts a kernel's results without running Python a signal can interrupt: "
                    "nothing here to guard against")
    assert status in (0, -signal.SIGSEGV, -signal.SIGABRT), status  # the failure shows: errors or a crash
    status, safe = _storm(tiny_model_file, "safe")
    assert status == 0, status
    assert safe["system_error"] == 0, safe
    assert safe["interrupt"] > 0 and safe["ok"] > 0, safe  # delivered, not held back for good


def _frame_inside_numba_unpickle():
    """The frame of a function that numba's ``_numba_unpickle`` runs (unpickling calls it)."""
    from numba.core import serialize

    payload = pickle.dumps(_Capture())
    serialize._numba_unpickle(id(payload), payload, b"test-" + payload[-8:])
    return _capture_store.pop()


class _Capture:
    def __reduce__(self):
        return _capture_frame, ()


_capture_store: list = []


def _capture_frame():
    _capture_store.append(sys._getframe())


def test_unsafe_code_is_numba_result_conversion_llvmlite_and_finalizers():
    assert not in_unsafe_code(sys._getframe())
    assert in_unsafe_code(_frame_inside_numba_unpickle())

    def __del__():  # a finalizer's frame, as Python runs it
        _capture_store.append(in_unsafe_code(sys._getframe()))

    __del__()
    assert _capture_store.pop() is True

    import llvmlite.binding.ffi as ffi

    code = compile("import sys\nframe = sys._getframe()", ffi.__file__, "exec")
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - a frame whose file is llvmlite's
    assert in_unsafe_code(scope["frame"])


class _Stop(Exception):
    pass


def test_a_signal_in_unsafe_code_runs_the_handler_at_the_next_call_outside():
    calls: list[tuple[int, str]] = []

    def previous(signum, frame):
        calls.append((signum, frame.f_code.co_name))
        raise _Stop

    handler = KernelSafeHandler(previous)

    def __del__():
        handler(signal.SIGINT, sys._getframe())  # lands in a finalizer
        calls.append((0, "still inside"))  # not raised here
        len("x")  # calls inside are not "outside" either
        handler(signal.SIGINT, sys._getframe())  # a second one while the first is held: one call

    assert sys.getprofile() is None
    with pytest.raises(_Stop):
        __del__()
        len("y")  # the first call after the finalizer returned
    assert calls == [(0, "still inside"), (signal.SIGINT, sys._getframe().f_code.co_name)]
    assert sys.getprofile() is None

    with pytest.raises(_Stop):
        handler(signal.SIGINT, sys._getframe())  # outside: at once
    assert len(calls) == 3


def test_under_a_python_profiler_it_keeps_every_event_and_is_put_back():
    """The profiler sees every event while the signal is held, and is put back before the
    handler runs (a handler that raises there ends the profiling, as any exception raised in a
    profile function does)."""
    events: list[tuple[str, str]] = []
    calls: list[int] = []
    handler = KernelSafeHandler(lambda signum, frame: calls.append(signum))

    def profiler(frame, event, arg):
        events.append((event, frame.f_code.co_name))

    def __del__():
        handler(signal.SIGINT, sys._getframe())
        calls.append(0)

    sys.setprofile(profiler)
    try:
        __del__()
        len("y")
        assert sys.getprofile() is profiler
    finally:
        sys.setprofile(None)
    assert calls == [0, signal.SIGINT]
    assert ("return", "__del__") in events, events  # seen while the signal was held


def test_under_a_profiler_written_in_c_the_signal_is_sent_again_instead(monkeypatch):
    sent: list[int] = []
    ready = threading.Event()
    monkeypatch.setattr(interrupts.signal, "raise_signal", lambda signum: (sent.append(signum), ready.set()))
    handler = KernelSafeHandler(lambda signum, frame: pytest.fail("ran inside unsafe code"))

    def __del__():
        handler(signal.SIGINT, sys._getframe())

    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        __del__()
        assert sys.getprofile() is profiler  # left as it was
    finally:
        profiler.disable()
    assert ready.wait(5) and sent == [signal.SIGINT]


def test_a_sigterm_that_comes_while_an_interrupt_is_held_wins():
    """Both run at the first call outside, SIGTERM first (the command line then exits 143, not 130)."""
    calls: list[int] = []

    def previous(signum, frame):
        calls.append(signum)
        raise _Stop(signum)

    on_int, on_term = KernelSafeHandler(previous), KernelSafeHandler(previous)

    def __del__():
        on_int(signal.SIGINT, sys._getframe())
        on_term(signal.SIGTERM, sys._getframe())

    with pytest.raises(_Stop) as stopped:
        __del__()
        len("y")
    assert stopped.value.args == (signal.SIGTERM,) and calls == [signal.SIGTERM]
    assert sys.getprofile() is None

    def __del__():  # noqa: F811 - the SIGTERM lands outside: it and the held SIGINT run at once
        on_int(signal.SIGINT, sys._getframe())

    here = sys._getframe()
    with pytest.raises(_Stop) as stopped:
        __del__()
        on_term(signal.SIGTERM, here)  # the first call after the finalizer: the handler itself
    assert stopped.value.args == (signal.SIGTERM,) and sys.getprofile() is None


def test_protect_wraps_callable_handlers_once_and_restores_only_its_own():
    original = signal.getsignal(signal.SIGINT)
    restore = protect_kernel_calls()
    try:
        wrapped = signal.getsignal(signal.SIGINT)
        assert isinstance(wrapped, KernelSafeHandler) and wrapped.previous is original
        protect_kernel_calls()()  # nested: nothing to wrap, nothing to put back
        assert signal.getsignal(signal.SIGINT) is wrapped
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is original

    def mine(signum, frame):
        pass

    restore = protect_kernel_calls()
    signal.signal(signal.SIGINT, mine)  # changed meanwhile by someone else: stays
    try:
        restore()
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, original)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored stays ignored
    try:
        with kernel_safe_signals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, original)


def test_off_the_main_thread_nothing_is_wrapped():
    seen = []
    worker = threading.Thread(target=lambda: seen.append(protect_kernel_calls()()))
    worker.start()
    worker.join(10)
    assert seen == [None] and not isinstance(signal.getsignal(signal.SIGINT), KernelSafeHandler)


def test_the_command_line_wraps_its_handlers(tmp_path):
    script = textwrap.dedent("""
        import signal
        from bytepiece_cli.signals import handle_sigterm
        from bytepiece.engine.interrupts import KernelSafeHandler
        handle_sigterm()
        print(isinstance(signal.getsignal(signal.SIGINT), KernelSafeHandler),
              isinstance(signal.getsignal(signal.SIGTERM), KernelSafeHandler))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_under_a_c_profiler_and_no_thread_to_send_it_again_the_handler_runs_at_once(monkeypatch):
    """While Python shuts down no thread can start: the interrupt is then handled where it landed
    rather than lost."""

    class NoThreads(threading.Timer):
        def start(self):
            raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(interrupts.threading, "Timer", NoThreads)
    calls = []
    handler = KernelSafeHandler(lambda signum, frame: calls.append(signum))

    def __del__():
        handler(signal.SIGINT, sys._getframe())

    import cProfile

    profiler = cProfile.Profile()  # written in C: the signal would be sent again
    profiler.enable()
    try:
        __del__()
    finally:
        profiler.disable()
    assert calls == [signal.SIGINT]
