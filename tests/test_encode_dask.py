"""Corpus encoding on a Dask cluster of worker processes: the same bytes as on local threads, also
when a worker dies during the run. Kept short: one ``LocalCluster(n_workers=2, processes=True)``
for the module."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from bytepiece import TokenDataset, encode_corpus

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    import logging

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _inputs(tmp_path: Path) -> list[Path]:
    docs = [f"doc {i}\n" + "abcd ab 中文 cafe\u0301\n" * (i % 13) for i in range(2000)]
    a = tmp_path / "a.jsonl"
    a.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[:1500]), encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_text("".join(d.replace("\n", " ") + "\n" for d in docs[1500:]), encoding="utf-8")
    return [a, b]


def _run(tmp_path, name, tokenizer, inputs, **kwargs) -> dict[str, bytes]:
    directory = tmp_path / name
    directory.mkdir()
    encode_corpus(inputs, tokenizer, directory / "c", shard_size="4K", alpha=0.3, seed=9, add_eos=True, **kwargs)
    return _files(directory)


def test_cluster_output_is_identical_to_local(tmp_path, tiny_tokenizer, client):
    inputs = _inputs(tmp_path)
    local = _run(tmp_path, "local", tiny_tokenizer, inputs, workers=2)
    dask = _run(tmp_path, "dask", tiny_tokenizer, inputs, cluster=client)
    assert len(local) > 20 and local == dask
    assert not any(".encoding-" in p.name for p in (tmp_path / "dask").iterdir())


class _KillOnFirstResult:
    """A progress display that kills one worker process when the first task comes back."""

    def __init__(self, client):
        self.pids = client.run(os.getpid)  # worker address -> process id
        self.killed = False

    def status(self, message):
        return contextlib.nullcontext()

    def phase(self, description, total=None, **kwargs):
        def advance(n):
            if not self.killed:
                self.killed = True
                os.kill(self.pids[sorted(self.pids)[0]], signal.SIGKILL)
        return contextlib.nullcontext(advance)


def test_a_worker_dying_mid_run_changes_nothing(tmp_path, tiny_tokenizer, client):
    inputs = _inputs(tmp_path)
    local = _run(tmp_path, "local", tiny_tokenizer, inputs, workers=1)
    progress = _KillOnFirstResult(client)
    survived = _run(tmp_path, "killed", tiny_tokenizer, inputs, cluster=client, progress=progress)
    assert progress.killed
    assert survived == local
    assert not any(".encoding-" in p.name for p in (tmp_path / "killed").iterdir())  # the dead attempt's files too
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next test


def test_cli_cluster_local(runner, tiny_model_file, tiny_tokenizer, tmp_path):
    from bytepiece_cli.app import app

    inputs = _inputs(tmp_path)
    out = tmp_path / "cli" / "c"
    out.parent.mkdir()
    result = runner.invoke(app, ["encode", *map(str, inputs), "-m", str(tiny_model_file), "-f", "bin", "-o", str(out),
                                 "--shard-size", "8K", "--cluster", "local:2"])
    assert result.exit_code == 0, result.output
    ds = TokenDataset(out)
    expected = tiny_tokenizer.encode_batch(
        [json.loads(line)["text"] for line in inputs[0].read_text().splitlines()] + inputs[1].read_text().splitlines())
    assert [ds[i].tolist() for i in range(len(ds))] == expected
