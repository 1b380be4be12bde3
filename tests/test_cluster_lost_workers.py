"""Every worker of a ``tcp://`` cluster lost in the middle of a ``bytepiece train`` or ``encode``
(issue 18, item 8): whatever the run was doing (sending data to the workers, running a function
on each, waiting for a result, measuring them), it waits for workers as long as at the start,
then stops with one line that names the cluster and says what to do; nothing is written.

Each case is a real ``bytepiece`` process on a scheduler with two real ``dask worker`` processes,
both killed with SIGKILL at the moment named. They run without a nanny: a nanny would start a
killed worker again, and the cluster would never be without workers. The wait is cut to
``WAIT_S`` (set in the process) so that the cases are quick, and every process runs under a
timeout so that a run that waits forever fails instead of hanging the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals")]

WAIT_S = 3

#: ``bytepiece`` with the workers' wait cut to WAIT_S, and both workers killed at KILL_AT: before
#: the engine's request of that name, as a finished task's result is fetched, or after some results
_HARNESS = """
import os, signal, sys, time
from bytepiece.engine import dask as dask_engine

dask_engine.WORKER_WAIT_S = float(os.environ["WAIT_S"])
where = os.environ["KILL_AT"]
engine_class = dask_engine.DaskEngine


def kill(engine=None):
    for pid in os.environ["WORKER_PIDS"].split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while engine is not None and engine.client.nthreads() and time.monotonic() < deadline:
        time.sleep(0.05)  # until the scheduler knows: the request then meets a cluster without workers


def before(name):
    original = getattr(engine_class, name)

    def wrapped(self, *args, **kwargs):
        kill(self)
        return original(self, *args, **kwargs)

    setattr(engine_class, name, wrapped)


if where == "check_workers":  # as the workers' bytepiece version is asked for
    check = dask_engine.check_workers
    dask_engine.check_workers = lambda client, address: (kill(), check(client, address))[1]
elif where.startswith("results:"):  # between tasks, with others in flight
    wait, seen = engine_class._wait, []

    def killed_after_some_results(self, future, error):
        result = wait(self, future, error)
        seen.append(1)
        if len(seen) == int(where[8:]):
            kill()
        return result

    engine_class._wait = killed_after_some_results
elif where == "result":
    wait = engine_class._wait

    def finished_then_killed(self, future, error):
        while not future.done():
            time.sleep(0.02)
        kill()  # the result is still on its worker
        return wait(self, future, error)

    engine_class._wait = finished_then_killed
else:
    before(where)

if __name__ == "__main__":
    from bytepiece_cli.app import main

    sys.argv = ["bytepiece", *sys.argv[1:]]
    main()
"""

_WORKER = """
import sys
sys.argv = ["dask-worker", sys.argv[1], "--nthreads", "1", "--no-nanny", "--no-dashboard"]
from distributed.cli.dask_worker import main
main()
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Enough distinct text for a few tasks per pass (small shards are asked for below)."""
    import random

    rng = random.Random(1)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(2, 9)))
             for _ in range(3000)]
    path = tmp_path_factory.mktemp("lost") / "corpus.txt"
    path.write_text("".join(" ".join(rng.choice(words) for _ in range(12)) + "\n" for _ in range(20000)),
                    encoding="utf-8")
    return path


def _run(args: list[str], kill_at: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float, str]:
    harness = tmp_path / "harness.py"
    harness.write_text(_HARNESS, encoding="utf-8")
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://", dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        address = cluster.scheduler_address
        workers = [subprocess.Popen([sys.executable, "-c", _WORKER, address], cwd=tmp_path,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        try:
            with distributed.Client(cluster, set_as_default=False) as client:
                client.wait_for_workers(2, timeout=60)
            env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "WAIT_S": str(WAIT_S), "KILL_AT": kill_at,
                   "WORKER_PIDS": " ".join(str(w.pid) for w in workers)}
            t0 = time.monotonic()
            done = subprocess.run([sys.executable, str(harness), *args, "--cluster", address], capture_output=True,
                                  text=True, timeout=150, env=env, cwd=tmp_path)
            return done, time.monotonic() - t0, address
        finally:
            for worker in workers:
                worker.kill()
                worker.wait(timeout=30)


def _args(command: str, corpus: Path, tmp_path: Path, model: Path) -> list[str]:
    if command == "train":
        return ["train", str(corpus), "-o", str(tmp_path / "m.model"), "-v", "600"]
    return ["encode", str(corpus), "-m", str(model), "-f", "bin", "-o", str(tmp_path / "out"), "--shard-size", "64K"]


MOMENTS = {"train": ["check_workers", "run_on_workers", "share", "result", "results:2", "phase_peaks"],
           "encode": ["check_workers", "run_on_workers", "share", "result", "results:3"]}


@pytest.mark.parametrize("command, kill_at", [(c, m) for c, moments in MOMENTS.items() for m in moments])
def test_losing_every_worker_mid_run_is_one_error_after_the_wait(command, kill_at, corpus, tiny_model_file,
                                                                 tmp_path):
    done, seconds, address = _run(_args(command, corpus, tmp_path, tiny_model_file), kill_at, tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr  # no traceback, no Dask log line
    error = lines[0]
    assert f"the Dask cluster at {address}" in error or f"of the Dask cluster at {address}" in error, error
    assert "start workers" in error or "check the workers" in error, error
    assert "this is a bug" not in error and "cannot run bytepiece" not in error, error
    # bounded: WAIT_S for workers each time, and at worst once Dask's own 30 s to reach a worker it
    # still lists (the version check right after the kill); before, some of these waited forever
    assert seconds < 30 * WAIT_S, error
    assert not list(tmp_path.glob("m.model*")) and not list(tmp_path.glob("out*"))
