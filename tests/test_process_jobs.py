"""``engine.pool.process_jobs``: jobs in spawned processes (the evaluation's transformers), their
results and errors back in the caller, and no process or temporary file left behind by an
error, a lost worker or a Ctrl-C."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from bytepiece.engine.pool import process_jobs
from bytepiece.errors import WorkerLost

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]


def _square(x: int) -> tuple[int, int]:
    if x == 3:
        import warnings

        warnings.warn(f"three is {x}", UserWarning)
    return x * x, os.getpid()


def _fail(message: str) -> None:
    raise ValueError(message)


def _die() -> None:
    os._exit(3)  # as a worker killed for want of memory ends: no exception, no result


def _nap(directory: str, seconds: float) -> None:
    """Says its pid, leaves a temporary file, and sleeps."""
    (Path(directory) / str(os.getpid())).write_text("")
    tempfile.mkstemp(prefix="left-")
    time.sleep(seconds)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _gone(pids: list[int], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


def _wait_for_files(directory: Path, n: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while len(list(directory.iterdir())) < n:
        assert time.monotonic() < deadline, f"{n} jobs did not start within {seconds} s"
        time.sleep(0.02)


@pytest.fixture
def own_temp(tmp_path_factory, monkeypatch) -> Path:
    """A temporary directory of this test's own for ``process_jobs`` (and its workers, which
    work inside the one it makes there): other tests running at the same time make theirs in the
    system's, so what is left here is this test's."""
    temp = tmp_path_factory.mktemp("temp")
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def test_jobs_run_in_other_processes_and_come_back_in_order(own_temp):
    said: list[tuple[int, int]] = []
    with process_jobs(2) as jobs:
        for x in range(5):
            jobs.submit(_square, x)
        with pytest.warns(UserWarning, match="three is 3"):  # given here, where the caller shows warnings
            results = jobs.results(on_result=lambda i, n: said.append((i, n)))
        assert len(jobs.children) == 2
    assert [r[0] for r in results] == [0, 1, 4, 9, 16]
    pids = {r[1] for r in results}
    assert os.getpid() not in pids and pids <= {c.pid for c in jobs.children}
    assert sorted(i for i, _ in said) == list(range(5)) and [n for _, n in said] == [1, 2, 3, 4, 5]
    assert not multiprocessing.active_children(), "an idle worker outlived the block"
    assert list(own_temp.iterdir()) == []


def test_one_process_runs_each_job_here_when_the_results_are_asked_for():
    ran: list[int] = []

    def job(x: int) -> int:
        ran.append(x)
        return x + 1

    with process_jobs(1) as jobs:
        jobs.submit(job, 3)
        jobs.submit(job, 4)
        jobs.check()
        assert ran == []
        assert jobs.results() == [4, 5] and ran == [3, 4]
        assert jobs.children == []


def test_an_error_of_a_job_is_raised_here_stopping_the_others_and_removing_their_files(tmp_path, own_temp):
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="no such thing"):
        with process_jobs(2) as jobs:
            jobs.submit(_nap, str(tmp_path), 60.0)
            jobs.submit(_fail, "no such thing")
            _wait_for_files(tmp_path, 1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # check() raises once the failed job is back
                jobs.check()
                time.sleep(0.05)
    assert time.monotonic() - t0 < 30
    assert _gone([int(p.name) for p in tmp_path.iterdir()]), "a job process outlived the block"
    assert list(own_temp.iterdir()) == [], "a job's temporary file outlived the block"


def test_a_worker_that_dies_is_an_error_naming_it_not_a_wait_forever(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(WorkerLost, match=r"ended without finishing its job \(exit status 3"):
        with process_jobs(2) as jobs:
            jobs.submit(_nap, str(tmp_path), 60.0)
            jobs.submit(_die)
            jobs.results()
    assert time.monotonic() - t0 < 30
    assert _gone([int(p.name) for p in tmp_path.iterdir()])


_CTRL_C = """
import sys, time
from bytepiece.engine.pool import process_jobs

def nap(directory, seconds):
    import os, pathlib, tempfile
    (pathlib.Path(directory) / str(os.getpid())).write_text("")
    tempfile.mkstemp(prefix="left-")
    time.sleep(seconds)
    return os.getpid()

if __name__ == "__main__":
    with process_jobs(2) as jobs:
        for _ in range(4):
            jobs.submit(nap, sys.argv[1], 60.0)
        print(jobs.results())
"""


@pytest.mark.parametrize("moment", [0.0, 0.1, 0.3, "running"])
def test_ctrl_c_ends_the_caller_and_every_job_process_with_one_traceback(moment, tmp_path):
    """The terminal's Ctrl-C reaches the whole process group, workers that are still starting
    too: they never see it, the caller gets the KeyboardInterrupt, and leaving the block stops
    the jobs at once (they would sleep on for a minute) and removes their temporary files."""
    script = tmp_path / "jobs.py"
    script.write_text(textwrap.dedent(_CTRL_C))
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(pids_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(temp)})
    try:
        if moment != "running":  # so many seconds after the workers started: still importing
            deadline = time.monotonic() + 60
            while len(list(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split())) < 2:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.005)
            time.sleep(float(moment))
        else:
            _wait_for_files(pids_dir, 2)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 20
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode in (-signal.SIGINT, 130), (proc.returncode, err)
    assert err.count("Traceback") == 1 and err.rstrip().endswith("KeyboardInterrupt"), err  # the caller's alone
    assert out == ""
    assert _gone([int(p.name) for p in pids_dir.iterdir()]), "a job process outlived the Ctrl-C"
    assert list(temp.iterdir()) == [], "a job's temporary file outlived the Ctrl-C"


def test_workers_end_when_their_parent_is_killed(tmp_path):
    """...and the next run removes the temporary directory the killed one could not."""
    script = tmp_path / "jobs.py"
    script.write_text(textwrap.dedent(_CTRL_C))
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(pids_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env={**os.environ, "TMPDIR": str(temp)})
    try:
        _wait_for_files(pids_dir, 2)
        proc.kill()  # no chance to stop its workers
        proc.wait()
        assert _gone([int(p.name) for p in pids_dir.iterdir()], seconds=15), "a worker outlived its parent"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
    [left] = list(temp.glob("bytepiece-jobs-*"))
    again = subprocess.run([sys.executable, "-c", "from bytepiece.engine.pool import process_jobs\n"
                            "with process_jobs(2): pass"], env={**os.environ, "TMPDIR": str(temp)}, timeout=60)
    assert again.returncode == 0 and not left.exists() and list(temp.iterdir()) == []
