"""Dask workers are other processes, often on other machines: they do not share our working
directory, and they may lack bytepiece or run another version of it. Each case is a real
``dask worker`` process started in a directory of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bytepiece import Tokenizer, Trainer, encode_corpus
from bytepiece.engine import make_engine
from bytepiece.errors import InputError

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

_WORKER = """
import sys
if sys.argv[2] == "without-bytepiece":
    sys.modules["bytepiece"] = None  # as on a machine where it was never installed
sys.argv = ["dask-worker", sys.argv[1], "--nthreads", "1", "--no-nanny"]
from distributed.cli.dask_worker import main
main()
"""


def _scheduler() -> distributed.LocalCluster:
    return distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://", dashboard_address=None,
                                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


class _Worker:
    """A ``dask worker`` process in ``cwd``, stopped on exit."""

    def __init__(self, cluster: distributed.LocalCluster, cwd: Path, kind: str = "normal") -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER, cluster.scheduler_address, kind], cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with distributed.Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)

    def __enter__(self) -> _Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def test_relative_paths_work_on_workers_in_another_directory(tmp_path, monkeypatch):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "corpus.txt").write_text("".join(f"line {i}: abcd ab 中文 cafe\n" for i in range(400)), encoding="utf-8")
    (here / "out").mkdir()
    monkeypatch.chdir(here)
    local = Trainer(max_vocab_size=300, workers=1, progress=False).train("corpus.txt")[0]
    with _scheduler() as cluster, _Worker(cluster, elsewhere):
        address = cluster.scheduler_address
        remote = Trainer(max_vocab_size=300, cluster=address, progress=False).train("corpus.txt")[0]
        summary = encode_corpus("corpus.txt", Tokenizer(remote), "out/c", shard_size="1K", cluster=address)
    assert remote.pieces == local.pieces
    assert summary.n_documents == 400 and all(f.resolve().parent == here / "out" and f.is_file() for f in summary.files)
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # nothing landed in the workers' directory


def test_workers_that_cannot_import_bytepiece_are_one_clear_error(tmp_path):
    with _scheduler() as cluster, _Worker(cluster, tmp_path, "without-bytepiece"):
        with pytest.raises(InputError, match=r"workers of the Dask cluster at tcp://.* cannot run bytepiece "
                                             r"\(ModuleNotFoundError.*install bytepiece-tk=="):
            make_engine(cluster.scheduler_address)


def test_workers_with_another_bytepiece_version_are_refused(monkeypatch):
    from bytepiece.engine import dask as dask_engine

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            assert make_engine(client).workers == 1  # same version: accepted
            monkeypatch.setattr(dask_engine, "worker_version", lambda: "0.0.1")  # in-process workers see it
            with pytest.raises(InputError, match=r"1 worker\(s\) of the Dask cluster at .* run bytepiece 0\.0\.1 "
                                                 r"\(for example .*\) and this process runs"):
                make_engine(client)


def test_large_task_items_raise_no_dask_warning():
    import warnings

    import numpy as np

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            engine = make_engine(client)
            big = [np.ones(3 << 20), np.zeros(3 << 20)]  # 24 MB each, above Dask's 10 MB warning threshold
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results = [r for _, r in engine.map(len, big)]
    assert results == [3 << 20, 3 << 20]
    assert not [w for w in caught if "large graph" in str(w.message)]


def test_a_cluster_without_workers_is_an_error_not_a_hang(monkeypatch, tmp_path):
    from bytepiece.engine import dask as dask_engine

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n" * 20, encoding="utf-8")

    monkeypatch.setattr(dask_engine, "WORKER_WAIT_S", 1)
    with _scheduler() as cluster:
        with pytest.raises(InputError, match=r"has no workers, and none joined within 1 s; start workers"):
            make_engine(cluster.scheduler_address)
        with distributed.Client(cluster, set_as_default=False) as client:
            with pytest.raises(InputError, match=r"has no workers, and none joined within 1 s"):
                Trainer(max_vocab_size=300, cluster=client, progress=False).train(str(corpus))


def test_a_worker_that_joins_while_we_wait_is_used(tmp_path):
    with _scheduler() as cluster, distributed.Client(cluster, set_as_default=False) as client:
        worker = subprocess.Popen([sys.executable, "-c", _WORKER, cluster.scheduler_address, "normal"], cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert make_engine(client).workers == 1  # waited for it instead of failing or hanging
        finally:
            worker.kill()
            worker.wait(timeout=30)


# -- every worker leaving mid-run ---------------------------------------------------------------

def _lines(n: int) -> str:
    return "".join(f"line {i}: abcd ab 中文 cafe {i % 17}\n" for i in range(n))


class _Deadline:
    """Fails the test when its block runs past ``seconds`` (a run that waits forever for workers
    that are gone would otherwise hang the suite)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        import signal

        def hung(signum, frame):
            pytest.fail(f"still waiting after {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, hung)
        signal.alarm(self.seconds)

    def __exit__(self, *exc: object) -> None:
        import signal

        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def test_all_workers_leaving_mid_run_stop_it_once_the_wait_is_over(tmp_path, monkeypatch):
    import time

    from bytepiece.engine import dask as dask_engine

    monkeypatch.setattr(dask_engine, "WORKER_WAIT_S", 1)
    with _scheduler() as cluster, _Worker(cluster, tmp_path) as worker:
        with make_engine(cluster.scheduler_address) as engine:
            results = engine.map(time.sleep, [0.2] * 20, error=InputError)
            next(results)
            worker.proc.kill()  # the only worker, with tasks still to run
            with _Deadline(60), pytest.raises(InputError, match=r"all workers of the Dask cluster at tcp://\S+ left "
                                                                 r"during the run, and none came back within 1 s; "
                                                                 r"nothing was written"):
                list(results)


def test_training_whose_workers_all_leave_is_one_training_error(tmp_path, monkeypatch):
    from bytepiece.engine import dask as dask_engine
    from bytepiece.errors import TrainingError
    from bytepiece.training import warmup

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_lines(3000), encoding="utf-8")
    monkeypatch.setattr(dask_engine, "WORKER_WAIT_S", 1)
    with _scheduler() as cluster, _Worker(cluster, tmp_path) as worker:
        monkeypatch.setattr(warmup, "warm_up", lambda engine, *formats, **options: (worker.proc.kill(), worker.proc.wait()))
        with _Deadline(60), pytest.raises(TrainingError, match=r"all workers of the Dask cluster at tcp://\S+ left "
                                                                r"during the run, and none came back within 1 s"):
            Trainer(max_vocab_size=300, cluster=cluster.scheduler_address, progress=False,
                    shard_bytes=4096).train(str(corpus))


def test_encoding_whose_workers_all_leave_is_one_input_error(tmp_path):
    import contextlib

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_lines(3000), encoding="utf-8")
    (tmp_path / "out").mkdir()
    tokenizer = Tokenizer.from_counts({bytes([b]): 1 for b in range(256)} | {b"ab": 5, b"line": 3})

    class KillOnFirstResult:
        def status(self, message):
            return contextlib.nullcontext()

        def phase(self, description, total=None, **kwargs):
            return contextlib.nullcontext(lambda n: (worker.proc.kill(), worker.proc.wait()))

    with _scheduler() as cluster, _Worker(cluster, tmp_path) as worker:
        # the tokenizer they were given went with them: no point waiting for another worker
        with _Deadline(60), pytest.raises(InputError, match=r"all workers of the Dask cluster at tcp://\S+ left "
                                                             r"during the run, and with them the data this run had "
                                                             r"given them; nothing was written"):
            encode_corpus(str(corpus), tokenizer, tmp_path / "out" / "c", shard_size="1K",
                          cluster=cluster.scheduler_address, progress=KillOnFirstResult())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_a_worker_that_comes_back_in_time_finishes_the_run(tmp_path, monkeypatch):
    from bytepiece.training import warmup

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_lines(3000), encoding="utf-8")
    local = Trainer(max_vocab_size=265, workers=1, progress=False).train(str(corpus))[0]
    with _scheduler() as cluster, _Worker(cluster, tmp_path) as worker:
        def replace_the_worker(engine, *formats, **options):
            worker.proc.kill()
            worker.proc.wait()
            worker.proc = subprocess.Popen([sys.executable, "-c", _WORKER, cluster.scheduler_address, "normal"],
                                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        monkeypatch.setattr(warmup, "warm_up", replace_the_worker)
        with _Deadline(120):
            remote = Trainer(max_vocab_size=265, cluster=cluster.scheduler_address, progress=False,
                             shard_bytes=4096).train(str(corpus))[0]  # waited for the new worker
    assert remote.pieces == local.pieces
