"""Corpus encoding to shards (``bytepiece.encode_corpus``) against its peer, measured in one run.

    python bench/bench_encode_corpus.py [--corpus /work/scale/linux.jsonl] [--model data/default.model]
                                        [--repeat 3] [--shard-size 1G] [--cluster-shard-size 64M]
                                        [--skip-cluster | --only-cluster] [--json out.json]

Every measurement runs in its own subprocess, one after the other, in an order rotated between
repeats; the machine may be shared, so compare the ratios of one run and read the medians.

- ``encode_batch``: the peer. The JSON Lines documents are parsed into ``str`` beforehand (not
  timed) in chunks of ``--chunk-mb`` MB of text, and only ``Tokenizer.encode_batch(texts,
  return_flat=True)`` on all cores is timed: throughput in MB/s of UTF-8 text, and per CPU
  second of the process (``local_over_encode_batch_cpu`` compares the two by CPU: the ratio that
  other load on a shared machine hardly moves).
- ``local``: ``encode_corpus(corpus, model, out, shard_size=--shard-size)`` on local threads,
  timed end to end (reading, JSON, NFC, encoding, writing and hashing shards, the manifest):
  MB/s of the same text, and the peak RSS of the process (``ru_maxrss``). Target: at least 0.9x
  ``encode_batch``, peak RSS below 500 MB. Each side's clock starts after a warm-up in the same
  process: the peer's ``Tokenizer.warmup()``, and here one run on the corpus's first record (what
  loads once per process: numba, the kernels of reading, encoding and writing, the model). The
  CPU time is the process's (all threads) during the call, as the peer's. Before this warm-up
  the run counted a one-time start-up of about 0.8 s (a few tenths on the peer's side).
- ``megatron``: the ``local`` run with ``format="megatron"`` (Megatron's ``.bin``/``.idx``
  shards). Target: within 10% of ``local``, peak RSS below 500 MB.
- ``local:1`` / ``local:2``: the same on a Dask ``LocalCluster`` of 1 and 2 worker processes
  (started before the clock) with ``--cluster-shard-size`` (the plan needs a few tasks per
  worker); the peak RSS of the client and of each worker. Target: local:2 at least 1.7x local:1,
  and the same bytes as the local run with that shard size (compared by sha256 of every file).
  MB per CPU-second (client and workers together, warm-up included) does not depend on what
  else the machine runs: equal figures for local:1 and local:2 mean no parallel overhead, so
  their wall-time ratio is set by how many cores are free.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = Path("/work/scale/linux.jsonl")
DEFAULT_MODEL = REPO / "data" / "default.model"

_BASELINE = r"""
import json, resource, sys, time
from bytepiece import Tokenizer
corpus, model, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
tokenizer = Tokenizer(model)
tokenizer.warmup()  # the encode kernels loaded (a short text alone would be encoded in Python)
seconds = cpu_seconds = 0.0
text_bytes = 0
def run(texts):
    global seconds, cpu_seconds, text_bytes
    start, cpu = time.perf_counter(), time.process_time()
    tokenizer.encode_batch(texts, return_flat=True)
    seconds += time.perf_counter() - start
    cpu_seconds += time.process_time() - cpu
    text_bytes += sum(len(t.encode("utf-8")) for t in texts)
texts, size = [], 0
with open(corpus, encoding="utf-8") as f:
    for line in f:
        if line.strip():
            texts.append(json.loads(line)["text"])
            size += len(texts[-1])
        if size >= chunk:
            run(texts)
            texts, size = [], 0
if texts:
    run(texts)
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "text_bytes": text_bytes}))
"""

_ENCODE = r"""
import json, logging, resource, sys, time
from bytepiece import encode_corpus
corpus, model, out, shard_size, cluster, fmt = sys.argv[1:7]
# Warm-up, as the peer's: one run on the corpus's first record, so that what loads once per process
# (numba, the kernels of reading, encoding and writing, the model's arrays) is not timed.
import os, shutil, tempfile
warm = tempfile.mkdtemp()
with open(corpus, encoding="utf-8") as f, open(os.path.join(warm, "first.jsonl"), "w", encoding="utf-8") as g:
    g.write(f.readline())
encode_corpus(os.path.join(warm, "first.jsonl"), model, os.path.join(warm, "w"), format=fmt, overwrite=True)
shutil.rmtree(warm)
client = None
peaks = {}
if cluster != "threads":
    import distributed
    n = int(cluster.partition(":")[2])
    lc = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR)
    client = distributed.Client(lc)
cpu0 = time.process_time()
summary = encode_corpus(corpus, model, out, format=fmt, shard_size=shard_size, cluster=client, overwrite=True)
cpu_call = time.process_time() - cpu0  # all threads of this process, during the call (as the peer's)
def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_maxrss * 1024, r.ru_utime + r.ru_stime
workers = {}
if client is not None:
    workers = client.run(usage)
    client.close()
    lc.close()
peak, _ = usage()
print(json.dumps({"seconds": summary.seconds, "text_bytes": summary.text_bytes, "tasks": summary.tasks,
                  "shards": len(summary.files), "n_tokens": summary.n_tokens, "peak_rss": peak,
                  "cpu_seconds": cpu_call + sum(w[1] for w in workers.values()),
                  "worker_peak_rss": sorted(w[0] for w in workers.values()), "engine": summary.engine}))
"""


def _child(script: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=4 * 3600)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _digest(directory: Path) -> dict[str, str]:
    out = {}
    for path in sorted(directory.iterdir()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        out[path.name] = h.hexdigest()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="JSON Lines corpus (field 'text')")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shard-size", default="1G", help="shard size of the local run (default: the CLI's)")
    parser.add_argument("--cluster-shard-size", default="64M", help="shard size of the local:1/local:2 runs")
    parser.add_argument("--chunk-mb", type=int, default=64, help="text per encode_batch call of the peer")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--only-cluster", action="store_true", help="only local:1, local:2 and the identity check")
    parser.add_argument("--work-dir", type=Path, default=None, help="where shards are written (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        print(f"corpus {args.corpus} not found (bench/make_scale_corpus.py builds one)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-encode-corpus-", dir=args.work_dir))
    steps = ([] if args.only_cluster else ["encode_batch", "local", "megatron"]) + (
        [] if args.skip_cluster else ["local:1", "local:2", "threads@cluster-size"])
    runs: dict[str, list[dict]] = {step: [] for step in steps}
    digests: dict[str, list[dict[str, str]]] = {}
    try:
        for r in range(args.repeat):
            order = steps[r % len(steps):] + steps[:r % len(steps)]
            for step in order:
                out = work / step.replace(":", "").replace("@", "-")
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                if step == "encode_batch":
                    result = _child(_BASELINE, str(args.corpus), str(args.model), str(args.chunk_mb << 20))
                else:
                    cluster = step if ":" in step and not step.startswith("threads") else "threads"
                    size = args.shard_size if step in ("local", "megatron") else args.cluster_shard_size
                    fmt = "megatron" if step == "megatron" else "bin"
                    result = _child(_ENCODE, str(args.corpus), str(args.model), str(out / "c"), size, cluster, fmt)
                    if step != "local":
                        digests.setdefault(step, []).append(_digest(out))
                    shutil.rmtree(out, ignore_errors=True)
                result["mb_per_s"] = result["text_bytes"] / result["seconds"] / 1e6
                if "cpu_seconds" in result:
                    result["mb_per_cpu_s"] = result["text_bytes"] / result["cpu_seconds"] / 1e6
                runs[step].append(result)
                print(f"repeat {r + 1} {step:>22}: {result['mb_per_s']:7.2f} MB/s" +
                      (f", peak RSS {result['peak_rss'] / 2**20:6.0f} MB" if "peak_rss" in result else "") +
                      (f", workers {[round(p / 2**20) for p in result['worker_peak_rss']]} MB"
                       if result.get("worker_peak_rss") else "") +
                      (f", {result['tasks']} tasks, {result['shards']} shards" if "tasks" in result else "") +
                      (f", {result['mb_per_cpu_s']:.1f} MB per CPU-second" if "mb_per_cpu_s" in result else ""),
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(step: str, key: str = "mb_per_s") -> float:
        return statistics.median(run[key] for run in runs[step])

    def ratios(a: str, b: str, key: str = "mb_per_s") -> list[float]:
        return [x[key] / y[key] for x, y in zip(runs[a], runs[b])]

    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()},
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "corpus": str(args.corpus), "corpus_bytes": args.corpus.stat().st_size, "model": str(args.model),
        "runs": runs,
        "median_mb_per_s": {step: median(step) for step in steps},
        "median_mb_per_cpu_s": {step: median(step, "mb_per_cpu_s") for step in steps},
    }
    if not args.only_cluster:
        report["local_over_encode_batch"] = {"per_repeat": ratios("local", "encode_batch"),
                                             "median": statistics.median(ratios("local", "encode_batch"))}
        by_cpu = ratios("local", "encode_batch", "mb_per_cpu_s")  # what load on a shared machine hardly moves
        report["local_over_encode_batch_cpu"] = {"per_repeat": by_cpu, "median": statistics.median(by_cpu)}
        report["local_peak_rss_mb"] = max(run["peak_rss"] for run in runs["local"]) / 2**20
        report["megatron_over_local"] = {"per_repeat": ratios("megatron", "local"),
                                         "median": statistics.median(ratios("megatron", "local"))}
        report["megatron_peak_rss_mb"] = max(run["peak_rss"] for run in runs["megatron"]) / 2**20
    if not args.skip_cluster:
        report["local2_over_local1"] = {"per_repeat": ratios("local:2", "local:1"),
                                        "median": statistics.median(ratios("local:2", "local:1"))}
        every = [d for step in ("local:1", "local:2", "threads@cluster-size") for d in digests[step]]
        report["identical_bytes"] = all(d == every[0] for d in every)
        report["cluster_shards"] = len(every[0]) // 3
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
