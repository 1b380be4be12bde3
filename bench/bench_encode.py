"""Encode throughput: bytepiece against the original BytePiece 0.6.3, measured in the same run.

    python bench/bench_encode.py [--model M] [--corpus C] [--mb 2] [--json out.json]

Lines of the corpus are the documents. Ours: per-line ``encode`` (one thread) and
``encode_batch`` (one thread, all cores), deterministic and alpha=0.1. The original runs in its
own interpreter (``$BYTEPIECE_ORIGINAL_PYTHON``, default /tmp/orig/bin/python; it needs a
byte-mode pyahocorasick: ``AHOCORASICK_BYTES=1 pip install --no-binary pyahocorasick
pyahocorasick bytepiece==0.6.3``) on the same lines; it is reported as skipped when absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("BYTEPIECE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_MODEL = SHARED / "models" / "bytepiece_80k.model"
DEFAULT_CORPUS = SHARED / "corpora" / "mixed.txt"

_ORIGINAL_SCRIPT = r"""
import json, sys, time
from bytepiece import Tokenizer
model, corpus, n_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
tokenizer = Tokenizer(model)
lines, size = [], 0
with open(corpus, encoding="utf-8") as f:
    for line in f:
        line = line.rstrip("\n")
        lines.append(line)
        size += len(line.encode())
        if size >= n_bytes:
            break
tokenizer.encode(lines[0])
out = {"bytes": size, "lines": len(lines)}
for alpha in (-1, 0.1):
    start = time.perf_counter()
    for line in lines:
        tokenizer.encode(line, alpha=alpha)
    out[str(alpha)] = size / (time.perf_counter() - start) / 1e6
print(json.dumps(out))
"""


def original_python() -> str | None:
    candidate = os.environ.get("BYTEPIECE_ORIGINAL_PYTHON", "/tmp/orig/bin/python")
    return candidate if Path(candidate).exists() else None


def read_lines(corpus: Path, n_bytes: int) -> tuple[list[str], int]:
    lines, size = [], 0
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            lines.append(line)
            size += len(line.encode())
            if size >= n_bytes:
                break
    return lines, size


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return min(times) / 1e9


def measure_ours(model: Path, lines: list[str], size: int, repeat: int = 3) -> dict[str, float]:
    from bytepiece import Tokenizer

    tokenizer = Tokenizer(model)
    cores = os.cpu_count() or 1
    results: dict[str, float] = {}
    for alpha in (-1.0, 0.1):
        tag = "det" if alpha < 0 else "alpha0.1"
        tokenizer.encode(lines[0], alpha=alpha, seed=0)  # warm up (compile / load cache)
        tokenizer.encode_batch(lines[:8], alpha=alpha, seed=0)
        results[f"{tag}/encode per line, 1 thread"] = size / best_of(lambda: [tokenizer.encode(t, alpha=alpha, seed=1) for t in lines], repeat) / 1e6
        results[f"{tag}/encode_batch, 1 thread"] = size / best_of(lambda: tokenizer.encode_batch(lines, alpha=alpha, seed=1, num_threads=1, return_flat=True), repeat) / 1e6
        results[f"{tag}/encode_batch, {cores} threads"] = size / best_of(lambda: tokenizer.encode_batch(lines, alpha=alpha, seed=1, num_threads=cores, return_flat=True), repeat) / 1e6
    return results


def measure_original(model: Path, corpus: Path, n_bytes: int) -> dict[str, float] | None:
    python = original_python()
    if python is None:
        return None
    # -I and a neutral cwd: the original's ``bytepiece`` must not resolve to this checkout.
    done = subprocess.run([python, "-I", "-c", _ORIGINAL_SCRIPT, str(model.resolve()), str(corpus.resolve()), str(n_bytes)],
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        print(f"original bytepiece failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout)


def run(model: Path = DEFAULT_MODEL, corpus: Path = DEFAULT_CORPUS, mb: float = 2.0, repeat: int = 3) -> dict:
    n_bytes = int(mb * 1e6)
    lines, size = read_lines(corpus, n_bytes)
    ours = measure_ours(model, lines, size, repeat)
    original = measure_original(model, corpus, n_bytes)
    return {"model": str(model), "corpus": str(corpus), "bytes": size, "lines": len(lines), "threads": os.cpu_count(),
            "ours_MBps": ours, "original_MBps": original}


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    original = result["original_MBps"]
    table = Table(title=f"encode throughput, {Path(result['model']).name}, {result['bytes'] / 1e6:.1f} MB of "
                        f"{Path(result['corpus']).name} ({result['lines']} lines)")
    table.add_column("bytepiece")
    table.add_column("MB/s", justify="right")
    table.add_column("original per line MB/s", justify="right")
    table.add_column("ratio", justify="right")
    det = result["ours_MBps"]["det/encode per line, 1 thread"]
    for name, value in result["ours_MBps"].items():
        ref = original.get("-1" if name.startswith("det") else "0.1") if original else None
        table.add_row(name, f"{value:.1f}", f"{ref:.2f}" if ref else "skipped", f"{value / ref:.1f}x" if ref else "-")
    Console().print(table)
    sampled = result["ours_MBps"]["alpha0.1/encode per line, 1 thread"]
    batch_det = result["ours_MBps"]["det/encode_batch, 1 thread"]
    batch_sampled = result["ours_MBps"]["alpha0.1/encode_batch, 1 thread"]
    Console().print(f"sampling / deterministic (one thread): per line {sampled / det:.2f}x, batch {batch_sampled / batch_det:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--mb", type=float, default=2.0, help="megabytes of corpus lines to encode")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.model.exists() or not args.corpus.exists():
        sys.exit(f"missing {args.model} or {args.corpus}: set BYTEPIECE_SHARED or pass --model/--corpus")
    result = run(args.model, args.corpus, args.mb, args.repeat)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
