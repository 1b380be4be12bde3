"""Encode throughput against sentencepiece on the same vocabulary, measured in one run.

    python bench/bench_encode.py [--model M] [--mb 2] [--rounds 15] [--json out.json]

For each dev corpus (zh, en, code; one line = one document, the first ``--mb`` MB) every round
times, in turn: ``encode_batch`` returning lists and returning the flat array (one thread),
sampling with alpha=0.1 (flat, one thread), the flat array on two threads, and
sentencepiece's ``encode(lines, num_threads=1)`` on the model exported with
``to_sentencepiece`` (byte_fallback). All run in this process, so load from other processes on
a shared machine falls on every variant of a round alike; ratios are computed per round and
their medians reported, MB/s from the fastest round. The kernels are compiled and warmed before
any clock starts, and each timed call follows an untimed call of the same variant: what is
measured is the steady state of encoding one batch after another, not the cost of reloading
caches that the other variants of the round (sentencepiece's model, the sampling weights) evicted.

Each run records wall time and the process's CPU time. One-thread comparisons use CPU time:
on a machine shared with other busy processes, wall time also counts the time the scheduler
gave the core to someone else, which has nothing to do with either tokenizer. Two threads are
compared by wall time (that is what they save), and their CPU time shows the cost of
parallelism: ``1 thread CPU / 2 threads CPU`` near 1 means the two threads do no extra work, so
on two otherwise idle cores the wall-clock speedup approaches 2x.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BYTEPIECE_SHARED", REPO.parent / "shared"))
DEFAULT_MODEL = SHARED / "models" / "bytepiece_80k.model"
CORPORA = ("zh", "en", "code")
ALPHA = 0.1

TARGETS = {  # ratio name -> minimum
    "lists / sentencepiece": 2.0,
    "flat / sentencepiece": 2.0,
    "sampling / deterministic (flat)": 0.8,
    "2 threads / 1 thread (flat)": 1.8,
}


def read_lines(path: Path, n_bytes: int) -> tuple[list[str], int]:
    lines, size = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            lines.append(line)
            size += len(line.encode("utf-8"))
            if size >= n_bytes:
                break
    return lines, size


def variants(tokenizer, processor, lines: list[str]) -> dict:
    one = {"num_threads": 1}
    out = {
        "lists": lambda: tokenizer.encode_batch(lines, **one),
        "flat": lambda: tokenizer.encode_batch(lines, return_flat=True, **one),
        "sampling flat": lambda: tokenizer.encode_batch(lines, return_flat=True, alpha=ALPHA, seed=1, **one),
        "flat 2 threads": lambda: tokenizer.encode_batch(lines, return_flat=True, num_threads=2),
    }
    if processor is not None:
        out["sentencepiece"] = lambda: processor.encode(lines, num_threads=1)
    return out


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call, freeing the result included."""
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    result = fn()
    del result
    return (time.perf_counter_ns() - wall) / 1e9, (time.process_time_ns() - cpu) / 1e9


def measure(model: Path, mb: float, rounds: int, spm_dir: Path) -> dict:
    from bytepiece import Tokenizer

    tokenizer = Tokenizer(model)
    tokenizer.warmup()
    processor = None
    try:
        import sentencepiece

        spm_model = tokenizer.to_sentencepiece(spm_dir / "spm.model", style="byte_fallback")
        processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    except ImportError:
        print("sentencepiece is not installed: peer skipped (pip install sentencepiece)", file=sys.stderr)
    results = {}
    for name in CORPORA:
        lines, size = read_lines(SHARED / "corpora" / f"{name}.txt", int(mb * 1e6))
        runs = variants(tokenizer, processor, lines)
        for fn in runs.values():  # compile, load, warm caches
            fn()
        wall: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(rounds):
            for key, fn in runs.items():
                fn()  # the variant's own arrays back in cache, as when it encodes a stream of batches
                w, c = timed(fn)
                wall[key].append(w)
                cpu[key].append(c)
        results[name] = summarize(wall, cpu, size, len(lines))
        shown = ", ".join(f"{k} {v:.1f}" for k, v in results[name]["MBps"].items())
        print(f"{name}: {shown} MB/s", flush=True)
    return results


def summarize(wall: dict[str, list[float]], cpu: dict[str, list[float]], size: int, n_lines: int) -> dict:
    rounds = len(next(iter(wall.values())))

    def ratio(times: dict[str, list[float]], a: str, b: str) -> float | None:
        """Median over rounds of time(b) / time(a): how many times faster a is."""
        if a not in times or b not in times:
            return None
        return statistics.median(times[b][i] / times[a][i] for i in range(rounds))

    ratios = {
        "lists / sentencepiece": ratio(cpu, "lists", "sentencepiece"),
        "flat / sentencepiece": ratio(cpu, "flat", "sentencepiece"),
        "sampling / deterministic (flat)": ratio(cpu, "sampling flat", "flat"),
        "2 threads / 1 thread (flat)": ratio(wall, "flat 2 threads", "flat"),
        "1 thread CPU / 2 threads CPU (flat)": ratio(cpu, "flat", "flat 2 threads"),
    }
    one_thread = {k: v for k, v in cpu.items() if k != "flat 2 threads"}
    return {
        "bytes": size, "lines": n_lines, "rounds": rounds,
        # one thread: per CPU second; two threads: per wall second
        "MBps": {**{k: size / min(v) / 1e6 for k, v in one_thread.items()},
                 "flat 2 threads": size / min(wall["flat 2 threads"]) / 1e6},
        "wall_MBps": {k: size / min(v) / 1e6 for k, v in wall.items()},
        "ratios": {k: v for k, v in ratios.items() if v is not None},
        "wall_seconds": wall, "cpu_seconds": cpu,
    }


def print_report(result: dict) -> None:
    names = list(result["corpora"])
    width = 38
    print(f"\n{'':{width}}" + "".join(f"{n:>10}" for n in names) + "    target")
    for key in next(iter(result["corpora"].values()))["MBps"]:
        print(f"{key + ' MB/s':{width}}" + "".join(f"{result['corpora'][n]['MBps'][key]:10.1f}" for n in names))
    for key in next(iter(result["corpora"].values()))["ratios"]:
        values = [result["corpora"][n]["ratios"].get(key) for n in names]
        cells = "".join(f"{v:9.2f}x" if v is not None else f"{'-':>10}" for v in values)
        minimum = TARGETS.get(key)
        met = all(v is not None and v >= minimum for v in values) if minimum else None
        verdict = "" if minimum is None else f">= {minimum:g}x {'met' if met else 'MISSED'}"
        print(f"{key:{width}}{cells}    {verdict}")
    print("(MB/s: one thread per CPU second, two threads per wall second; load average "
          f"{result['load_average_at_start'][0]:.1f} at start, {result['load_average_at_end'][0]:.1f} at end)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--mb", type=float, default=2.0, help="MB of each corpus (default 2)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.model.is_file() or not (SHARED / "corpora").is_dir():
        print(f"missing {args.model} or {SHARED / 'corpora'}: set BYTEPIECE_SHARED or pass --model", file=sys.stderr)
        return 1
    started = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        corpora = measure(args.model, args.mb, args.rounds, Path(tmp))
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "python": platform.python_version(), "model": str(args.model), "alpha": ALPHA,
        "command": "python bench/bench_encode.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_average_at_start": started, "load_average_at_end": os.getloadavg(),
        "targets": TARGETS, "corpora": corpora,
    }
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
