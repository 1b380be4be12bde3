"""The engine: ordered maps on threads and on Dask, memory budgets and the spilled runs behind them,
and the kernels that count and merge runs, each against a plain-Python reference."""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece.engine import make_engine
from bytepiece.units import parse_size
from bytepiece.engine.local import LocalEngine
from bytepiece.training.spill import KeyRun, PieceRun, RunStore, SpillDir
from bytepiece.errors import InputError, TrainingError


def _slow_square(x: int, delay: float) -> int:
    time.sleep(delay * ((x * 7919) % 5))  # finishes out of order
    return x * x


def test_local_map_keeps_order_and_bounds_the_window():
    engine = LocalEngine(3)
    running = []
    lock = threading.Lock()
    peak = [0]

    def task(x):
        with lock:
            running.append(x)
            peak[0] = max(peak[0], len(running))
        out = _slow_square(x, 0.002)
        with lock:
            running.remove(x)
        return out

    got = [(i, r) for i, r in engine.map(task, range(40), window=4)]
    assert got == [(i, i * i) for i in range(40)]
    assert peak[0] <= 4


def test_local_map_stops_on_error_and_cancels_the_rest():
    started = []

    def task(x):
        started.append(x)
        if x == 3:
            raise ValueError("boom at 3")
        time.sleep(0.01)
        return x

    with pytest.raises(ValueError, match="boom at 3"):
        list(LocalEngine(2).map(task, range(100), window=4))
    time.sleep(0.1)
    assert len(started) < 20  # queued tasks were cancelled, not run


def test_bad_worker_counts_and_cluster_values():
    with pytest.raises(InputError, match="workers"):
        LocalEngine(0)
    with pytest.raises(InputError, match="local:N"):
        make_engine("local:zero")


@pytest.mark.parametrize("value, expected", [("1G", 1 << 30), ("512M", 512 << 20), ("1.5GiB", int(1.5 * (1 << 30))),
                                             ("2048", 2048), (1 << 20, 1 << 20), ("64kb", 64 << 10)])
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "1X", "-1G", "G", "1.2.3M", True, 0])
def test_parse_size_rejects(value):
    with pytest.raises(InputError):
        parse_size(value)


def test_missing_dask_is_one_line_naming_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(InputError, match=r'pip install "bytepiece-tk\[dask\]"'):
        make_engine("local:2")


@pytest.mark.parametrize("address", ["foo", "tcp://", "tcp://host:notaport"])
def test_malformed_scheduler_address_says_what_to_give(address):
    pytest.importorskip("distributed")
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"is not a Dask scheduler address \(.*\); give tcp://HOST:PORT or local:N$"):
        make_engine(address)
    assert time.perf_counter() - t0 < 10  # no connection timeout to wait out


@pytest.mark.slow
def test_unreachable_scheduler_is_a_quick_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    from bytepiece.engine import dask as dask_engine

    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT_S", 2)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9 within 2 s"):
        make_engine("tcp://127.0.0.1:9")
    assert time.perf_counter() - t0 < 30


class _FakeScheduler:
    """A TCP server on a free local port that is not a Dask scheduler: it accepts connections and
    then says nothing (``reply=None``) or answers with ``reply`` (an HTTP server's greeting)."""

    def __init__(self, reply: bytes | None) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply, self.conns = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.slow
@pytest.mark.parametrize("reply, message", [
    (None, r"accepted the connection but did not answer as a Dask scheduler within 2 s"),
    (b"HTTP/1.0 400 Bad Request\r\nServer: SimpleHTTP/0.6\r\n\r\n" * 4, r"does not answer as a Dask scheduler|"
                                                                          r"accepted the connection but did not"),
], ids=["silent", "http"])
def test_a_peer_that_is_not_a_scheduler_is_a_clear_error_in_bounded_time(monkeypatch, reply, message):
    """Audit: a port where something else answers hung for ever (a silent peer), or read the
    greeting as a frame length and failed as "out of memory" (an HTTP server)."""
    pytest.importorskip("distributed")
    from bytepiece.engine import dask as dask_engine

    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT_S", 2)
    server = _FakeScheduler(reply)
    try:
        t0 = time.perf_counter()
        with pytest.raises(InputError, match=message):
            make_engine(server.address)
        assert time.perf_counter() - t0 < 30
    finally:
        server.close()


@pytest.mark.slow
def test_sigterm_while_connecting_to_a_silent_peer_ends_the_command(tmp_path):
    pytest.importorskip("distributed")
    import signal

    server = _FakeScheduler(None)
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc\n" * 100)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "bytepiece", "train", str(corpus), "-o", str(tmp_path / "m.model"),
                                 "--cluster", server.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)  # started, and waiting for the peer
        proc.send_signal(signal.SIGTERM)
        t0 = time.perf_counter()
        _, err = proc.communicate(timeout=20)
        assert time.perf_counter() - t0 < 10
        assert proc.returncode == 143 and err.strip().splitlines()[-1] == "error: terminated"
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()


# -- sorted runs and spilling ------------------------------------------------------------------

def _key_runs(rng: np.random.Generator, n_runs: int) -> list[np.ndarray]:
    # keys with shared prefixes and every length byte, as maximal grams have
    return [np.sort(rng.integers(1, 400, size=rng.integers(1, 500)).astype(np.uint64) << np.uint64(40)
                    | rng.integers(1, 7, size=1).astype(np.uint64)) for _ in range(n_runs)]


_UNGUARDED_SCRIPT = """
import sys
from bytepiece import Trainer
print("module-level code ran", file=sys.stderr)
Trainer(max_vocab_size=300, cluster="local:2", progress=False).train(sys.argv[1])
"""


@pytest.mark.slow
def test_local_cluster_from_a_script_without_main_guard_is_a_short_clear_error(tmp_path):
    pytest.importorskip("distributed")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a line of text to train on\n" * 50, encoding="utf-8")
    script = tmp_path / "train_it.py"  # a file: spawned workers import it again, as they would a user's script
    script.write_text(_UNGUARDED_SCRIPT, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(corpus)], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("bytepiece.errors.InputError: could not start a local Dask cluster of 2 worker processes")
    assert 'if __name__ == "__main__":' in last
    # each worker stops at once with one line instead of starting clusters of its own (hundreds of lines before)
    assert done.stderr.count("module-level code ran") <= 3
    assert len(done.stderr.splitlines()) < 40, done.stderr


@pytest.mark.slow
def test_local_cluster_leaves_port_8787_alone():
    """The scheduler of a local cluster serves HTTP on a random loopback port: a user's own Dask
    dashboard on 8787 is neither taken nor the cause of a warning."""
    import socket
    import warnings

    pytest.importorskip("distributed")
    blocker = socket.socket()
    try:
        blocker.bind(("0.0.0.0", 8787))
        blocker.listen()
    except OSError:
        pass  # taken already, which is the case that matters
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with make_engine("local:1") as engine:
                host, port = engine._cluster.scheduler.http_server.address, engine._cluster.scheduler.http_server.port
    finally:
        blocker.close()
    assert host == "127.0.0.1" and port != 8787
    assert not [w for w in caught if "already in use" in str(w.message)]


def test_the_main_guard_check_is_off_in_an_ordinary_process():
    from bytepiece.engine.dask import _importing_main_in_a_child

    assert _importing_main_in_a_child() is False


@pytest.mark.parametrize("limit", [1 << 30, 4096, 1])
def test_run_store_merges_exactly_whatever_it_spills(tmp_path, limit):
    from bytepiece.kernels.runs import run_lengths

    rng = np.random.default_rng(limit)
    raw = _key_runs(rng, 25)
    with SpillDir(tmp_path) as spill:
        store = RunStore(limit, spill)
        for keys in raw:
            store.add(KeyRun(*run_lengths(keys)))
        assert store.spilled == (limit < 1 << 30)
        parts = store.partitions(2000, align_mask=~((1 << 40) - 1) & ((1 << 64) - 1))
        loaded = [store.load(lo, hi, KeyRun) for lo, hi in parts]
        # partitions are contiguous key ranges that never split a 3-byte prefix
        for (lo, hi), run in zip(parts, loaded):
            assert all(k >= lo and (hi is None or k < hi) for k in run.keys.tolist())
        keys = np.concatenate([r.keys for r in loaded])
        counts = np.concatenate([r.counts for r in loaded])
    expected = collections.Counter(np.concatenate(raw).tolist())
    assert keys.tolist() == sorted(expected)
    assert counts.tolist() == [expected[k] for k in sorted(expected)]
    assert not any(tmp_path.iterdir())  # the spill directory is gone


def _piece_run(pieces: dict[bytes, int]) -> PieceRun:
    from bytepiece.training.passes import piece_run

    items = list(pieces.items())
    arena = np.frombuffer(b"".join(p for p, _ in items), np.uint8)
    lengths = np.array([len(p) for p, _ in items], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    hashes = np.array([_py_hash(p) for p, _ in items], np.uint64)
    return piece_run(hashes, np.array([c for _, c in items], np.int64), starts, lengths, arena)


def _py_hash(piece: bytes) -> int:
    from bytepiece.kernels.runs import hash_bytes

    return int(hash_bytes(np.frombuffer(piece, np.uint8), 0, len(piece)))


@given(st.lists(st.dictionaries(st.binary(min_size=1, max_size=6), st.integers(1, 5), max_size=30), max_size=6),
       st.sampled_from([1 << 30, 200, 1]))
def test_piece_runs_merge_and_spill_exactly(tmp_path_factory, batches, limit):
    with SpillDir(tmp_path_factory.mktemp("spill")) as spill:
        store = RunStore(limit, spill)
        for b in batches:
            store.add(_piece_run(b))
        got: dict[bytes, int] = {}
        for part in store.iter_partitions(64, PieceRun):
            order = list(zip(part.hashes.tolist(), [part.piece(i) for i in range(part.size)]))
            assert order == sorted(order)  # (hash, bytes) order within and across partitions
            for i in range(part.size):
                assert part.piece(i) not in got
                got[part.piece(i)] = int(part.counts[i])
    expected: collections.Counter = collections.Counter()
    for b in batches:
        expected.update(b)
    assert got == dict(expected)


def test_colliding_hashes_stay_distinct_pieces():
    """Two different pieces with one 64-bit hash (forced here) are ordered by their bytes and
    counted apart, never merged."""
    from bytepiece.training.passes import piece_run

    pieces = [b"zz", b"ab", b"abc", b"ab"]
    arena = np.frombuffer(b"".join(pieces), np.uint8)
    lengths = np.array([2, 2, 3, 2], np.int64)
    starts = np.array([0, 2, 4, 7], np.int64)
    run = piece_run(np.array([7, 7, 7, 3], np.uint64), np.array([1, 2, 3, 4], np.int64), starts, lengths, arena)
    assert [run.piece(i) for i in range(run.size)] == [b"ab", b"ab", b"abc", b"zz"]
    other = piece_run(np.array([7], np.uint64), np.array([10], np.int64), np.array([0], np.int64),
                      np.array([3], np.int64), np.frombuffer(b"abc", np.uint8))
    merged = run.merge(other)
    assert [(merged.piece(i), int(merged.counts[i])) for i in range(merged.size)][-2:] == [(b"abc", 13), (b"zz", 1)]


def test_disk_full_while_spilling_is_one_clear_error(tmp_path, monkeypatch):
    import errno

    from bytepiece.training import spill as spill_module
    from bytepiece.kernels.runs import run_lengths

    def full(f, array):
        f.write(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spill_module, "_write_array", full)
    with pytest.raises(TrainingError, match="no space left.*--tmp-dir"):
        with SpillDir(tmp_path) as spill:
            store = RunStore(1, spill)
            store.add(KeyRun(*run_lengths(np.arange(1, 100, dtype=np.uint64))))
    assert not any(tmp_path.iterdir())


# -- counting kernels against references ------------------------------------------------------

def _reference_maximal_grams(chunks: list[bytes], order: int) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for c in chunks:
        for p in range(len(c)):
            out[c[p:p + order]] += 1
    return out


def _pack(gram: bytes) -> int:
    key = 0
    for i, b in enumerate(gram):
        key |= b << (56 - 8 * i)
    return key | len(gram)


@given(st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"a")), min_size=1, max_size=30),
       st.integers(1, 7), st.integers(10, 14), st.randoms(use_true_random=False))
def test_count_grams_matches_a_counter(chunks, order, bits, rnd):
    """A chunk of weight w counts as w copies of it."""
    from bytepiece.kernels.ngrams import count_grams, table_counts

    buf = np.frombuffer(b"".join(chunks), np.uint8)
    bounds = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    weights = np.array([rnd.choice([1, 1, 2, 5]) for _ in chunks], np.int64)
    table, final_bits = count_grams(buf, bounds, weights, 0, len(chunks), order, bits)
    assert len(table) == 2 << final_bits
    keys = np.sort(table[0::2][table[0::2] != 0])
    counts = table_counts(table, final_bits, keys)
    expected = _reference_maximal_grams([c for c, w in zip(chunks, weights) for _ in range(w)], order)
    assert dict(zip(keys.tolist(), counts.tolist())) == {_pack(g): c for g, c in expected.items()}


def test_count_grams_table_grows_and_keeps_every_count():
    """More distinct grams than half the starting table: it doubles (twice here) and loses none."""
    from bytepiece.kernels.ngrams import count_grams, table_counts

    rng = np.random.default_rng(7)
    chunks = [bytes(rng.integers(0, 256, 50, dtype=np.uint8)).replace(b"\n", b"a") for _ in range(40)]
    buf = np.frombuffer(b"".join(chunks), np.uint8)
    bounds = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    table, final_bits = count_grams(buf, bounds, np.ones(len(chunks), np.int64), 0, len(chunks), 6, 10)
    assert final_bits == 12
    keys = np.sort(table[0::2][table[0::2] != 0])
    counts = table_counts(table, final_bits, keys)
    expected = _reference_maximal_grams(chunks, 6)
    assert dict(zip(keys.tolist(), counts.tolist())) == {_pack(g): c for g, c in expected.items()}


@given(st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=20), st.integers(3, 7), st.integers(1, 3))
def test_derive_long_matches_a_reference(chunks, order, min_count):
    """Kept n-grams of length 3..order with their parents' counts, derived from maximal grams."""
    from bytepiece.kernels.ngrams import derive_long, prefix_counts

    maximal = _reference_maximal_grams(chunks, order)
    keys = np.array(sorted(_pack(g) for g in maximal), np.uint64)
    counts = np.array([maximal[g] for g in sorted(maximal, key=_pack)], np.int64)
    ones = np.zeros(256, np.int64)
    twos = np.zeros(1 << 16, np.int64)
    prefix_counts(keys, counts, ones, twos)
    grams: collections.Counter = collections.Counter()
    for c in chunks:
        for p in range(len(c)):
            for k in range(1, min(order, len(c) - p) + 1):
                grams[c[p:p + k]] += 1
    assert ones.tolist() == [grams.get(bytes([b]), 0) for b in range(256)]
    assert {i: int(v) for i, v in enumerate(twos) if v} == {(g[0] << 8) | g[1]: c for g, c in grams.items() if len(g) == 2}
    got_keys, got_counts, parents = derive_long(keys, counts, order, min_count, twos)
    got = {int(k): (int(c), int(p)) for k, c, p in zip(got_keys, got_counts, parents)}
    want = {_pack(g): (c, grams[g[:-1]]) for g, c in grams.items() if len(g) >= 3 and c >= min_count}
    assert got == want


def test_hash_random_words_spread_over_partitions(tmp_path):
    """Piece partitions are hash ranges: similar pieces land in different partitions, so no
    partition holds a skewed share of a real vocabulary."""
    rng = random.Random(0)
    words = {("w%05d" % rng.randrange(10 ** 5)).encode(): 1 for _ in range(5000)}
    with SpillDir(tmp_path) as spill:
        store = RunStore(1 << 30, spill)
        store.add(_piece_run(words))
        sizes = [part.size for part in store.iter_partitions(8 * 1024, PieceRun)]
    assert len(sizes) >= 4 and max(sizes) < 3 * sum(sizes) / len(sizes)


@pytest.mark.skipif(os.cpu_count() is None, reason="no cpu count")
def test_local_engine_default_uses_the_available_cpus():
    assert LocalEngine().workers >= 1


# -- Ctrl-C around a cluster's start and shutdown -----------------------------------------------

def _sigint_blocked(conn) -> None:
    import signal

    conn.send(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def _blocked_in_processes_started_apart() -> tuple[bool, bool]:
    """Whether a subprocess and a multiprocessing (spawn) process started on the helper thread
    have SIGINT blocked: a terminal's Ctrl-C is then the parent's to handle."""
    import multiprocessing

    code = "import signal; print(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_sigint_blocked, args=(send,))
    process.start()
    spawned = receive.recv()
    process.join(timeout=60)
    return child == "True", spawned


@pytest.mark.skipif(not hasattr(__import__("signal"), "pthread_sigmask"), reason="POSIX signal masks")
def test_run_apart_finishes_its_work_through_a_ctrl_c_and_reports_it():
    import signal

    from bytepiece.engine.interrupts import run_apart

    def work():
        os.kill(os.getpid(), signal.SIGINT)  # lands on the waiting (main) thread
        time.sleep(0.3)
        return "done"

    def failing():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        raise ValueError("the start failed too")

    try:
        assert run_apart(work, name="test") == ("done", True)
        assert run_apart(lambda: 7, name="test") == (7, False)
        with pytest.raises(KeyboardInterrupt):  # what the user asked for, rather than the failure
            run_apart(failing, name="test")
        with pytest.raises(ValueError, match="the start failed"):
            run_apart(lambda: (_ for _ in ()).throw(ValueError("the start failed")), name="test")
        assert run_apart(_blocked_in_processes_started_apart, name="test", spawns=True)[0] == (True, True)
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C escaped run_apart")


class _EngineWhoseCloseIsInterrupted(LocalEngine):
    closed = False

    def close(self) -> None:
        self.closed = True
        raise KeyboardInterrupt


def test_an_interrupted_close_after_completed_work_is_a_notice():
    from bytepiece.engine import EngineNotice

    with pytest.warns(EngineNotice, match="interrupted after the work was complete, while the local engine was "
                                          "shutting down; the result stands"):
        with _EngineWhoseCloseIsInterrupted(1) as engine:
            result = sum(r for _, r in engine.map(abs, [-1, -2]))
    assert result == 3 and engine.closed
    with pytest.raises(ValueError, match="the run's own error"):  # not replaced by the interrupt
        with _EngineWhoseCloseIsInterrupted(1):
            raise ValueError("the run's own error")


def test_an_interrupt_once_the_output_is_committed_keeps_it():
    from bytepiece.engine import EngineNotice, stands_once_committed

    with pytest.warns(EngineNotice, match="interrupted after the output was committed, while cleaning up; the "
                                          "result stands"):
        with stands_once_committed() as committed:
            committed()
            raise KeyboardInterrupt  # a Ctrl-C in the clean-up after the commit
    with pytest.raises(KeyboardInterrupt):  # before the commit, it stops the run
        with stands_once_committed():
            raise KeyboardInterrupt


def test_encode_corpus_keeps_a_committed_corpus_through_a_ctrl_c_in_its_clean_up(tmp_path, tiny_tokenizer,
                                                                                monkeypatch):
    from bytepiece import TokenDataset, encode_corpus
    from bytepiece.engine import EngineNotice
    from bytepiece.tokens import encode as encode_module

    discard = encode_module.discard_staging

    def interrupted(staging):
        discard(staging)
        raise KeyboardInterrupt

    monkeypatch.setattr(encode_module, "discard_staging", interrupted)
    try:
        with pytest.warns(EngineNotice, match="interrupted after the output was committed"):
            summary = encode_corpus(["one text", "two texts"], tiny_tokenizer, tmp_path / "c", workers=1)
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C after the commit discarded a complete corpus")
    assert summary.n_documents == 2 and len(TokenDataset(tmp_path / "c")) == 2


def test_more_workers_than_the_machine_can_use_are_capped_with_a_notice():
    from bytepiece.engine import EngineNotice
    from bytepiece.engine.local import MAX_WORKERS_PER_CPU, default_workers

    cap = MAX_WORKERS_PER_CPU * default_workers()
    with pytest.warns(EngineNotice, match=rf"100000 workers asked for, but more than {MAX_WORKERS_PER_CPU} per CPU "
                                          rf"\({default_workers()} available\) would only cost memory; using {cap}"):
        assert LocalEngine(100000).workers == cap
    with pytest.warns(EngineNotice, match=f"using {cap}"):
        assert LocalEngine(10 ** 30).workers == cap
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LocalEngine(cap).workers == cap


def test_the_engine_interface_says_where_tasks_run():
    engine = LocalEngine(2)
    assert engine.is_local and engine.run_on_workers(os.getpid) == {}


@pytest.mark.parametrize("address, problem", [
    ("garbage", "missing port number"), ("udp://127.0.0.1:1", "unknown address scheme 'udp'"),
    ("tcp://127.0.0.1:notaport", "the port 'notaport' is not a number"),
    ("tcp://127.0.0.1:0", "the port 0 is not between 1 and 65535"), ("tcp://", "missing port number"),
    ("tcp://[::1]", "missing port number"), ("tcp://[::1]:x1", "the port 'x1' is not a number"),
    ("tcp://127.0.0.1:8786", None), ("scheduler:8786", None), ("tcp://[::1]:8786", None)])
def test_scheduler_addresses_are_checked_without_connecting(address, problem):
    pytest.importorskip("distributed")
    from bytepiece.engine.dask import address_problem

    found = address_problem(address)
    assert found == problem if problem is None else problem in found
