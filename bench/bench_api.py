"""Cost of the Tokenizer API extras (issue 11), as ratios against ``encode`` measured in the same run.

    python bench/bench_api.py [--model M] [--corpus C] [--kb 512] [--repeat 5] [--before REV] [--json out.json]

Lines of the corpus are the documents, encoded one call per line on one thread (where per-call
overhead shows most). Reported, each as the median of ``--repeat`` alternating rounds:

- special-token matching: ``encode(line, allowed_special="all")`` with three special tokens, on
  text that contains none, against plain ``encode`` (the price of looking for them);
- ``nbest(line, 1)`` and ``entropy(line)`` against ``encode``;
- ``encode_batch`` (one thread) with and without ``allowed_special``.

``--before REV`` also times plain ``encode`` and ``encode_batch`` of the package as it was at
git revision REV (extracted to a temporary directory, run in a subprocess), alternating with the
current tree, to show that the default path did not slow down.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BYTEPIECE_SHARED", REPO.parent / "shared"))
DEFAULT_MODEL = REPO / "data" / "default.model"
DEFAULT_CORPUS = SHARED / "corpora" / "mixed.txt"
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]

# Timing script for one package tree: prints per-round seconds of per-line encode and of
# encode_batch on one thread. Run with PYTHONPATH at the tree.
_DEFAULT_PATH_SCRIPT = r"""
import json, sys, time
from bytepiece import Tokenizer
model, corpus, n_bytes, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lines, size = [], 0
with open(corpus, encoding="utf-8") as f:
    for line in f:
        lines.append(line.rstrip("\n")); size += len(lines[-1].encode())
        if size >= n_bytes: break
tok = Tokenizer(model)
tok.encode(lines[0]); tok.encode_batch(lines[:8], num_threads=1)
out = {"encode": [], "encode_batch": []}
for _ in range(rounds):
    t = time.perf_counter_ns(); [tok.encode(x) for x in lines]; out["encode"].append((time.perf_counter_ns() - t) / 1e9)
    t = time.perf_counter_ns(); tok.encode_batch(lines, num_threads=1, return_flat=True)
    out["encode_batch"].append((time.perf_counter_ns() - t) / 1e9)
print(json.dumps({"bytes": size, **out}))
"""


def read_lines(corpus: Path, n_bytes: int) -> tuple[list[str], int]:
    lines, size = [], 0
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if any(s in line for s in SPECIALS):
                continue
            lines.append(line)
            size += len(line.encode())
            if size >= n_bytes:
                break
    return lines, size


def timed(fn) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e9


def measure_api(model: Path, lines: list[str], repeat: int) -> dict[str, list[float]]:
    from bytepiece import Tokenizer

    plain = Tokenizer(model)
    special = Tokenizer(model, special_tokens=SPECIALS)
    cases = {
        "encode": lambda: [plain.encode(x) for x in lines],
        "encode, allowed_special='all'": lambda: [special.encode(x, allowed_special="all") for x in lines],
        "nbest(n=1)": lambda: [plain.nbest(x, 1) for x in lines],
        "entropy": lambda: [plain.entropy(x) for x in lines],
        "encode_batch": lambda: plain.encode_batch(lines, num_threads=1, return_flat=True),
        "encode_batch, allowed_special='all'": lambda: special.encode_batch(lines, num_threads=1, return_flat=True,
                                                                            allowed_special="all"),
    }
    for fn in cases.values():  # warm up: compile or load the kernels, build the automata
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):  # alternate the cases, so a slow moment of the machine hits all of them
        for name, fn in cases.items():
            times[name].append(timed(fn))
    return times


def measure_before(rev: str, model: Path, corpus: Path, n_bytes: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Plain encode / encode_batch of revision ``rev`` and of this tree, alternating rounds."""
    out: dict[str, dict[str, list[float]]] = {"before": {"encode": [], "encode_batch": []},
                                              "after": {"encode": [], "encode_batch": []}}
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "bytepiece"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        trees = {"before": tmp, "after": str(REPO)}
        for _ in range(repeat):
            for label, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": tree}
                done = subprocess.run([sys.executable, "-c", _DEFAULT_PATH_SCRIPT, str(model), str(corpus), str(n_bytes), "1"],
                                      capture_output=True, text=True, env=env, cwd=tmp, timeout=900, check=True)
                result = json.loads(done.stdout)
                for key in ("encode", "encode_batch"):
                    out[label][key].extend(result[key])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--kb", type=float, default=512, help="kilobytes of corpus lines")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also time the default path of git revision REV")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        sys.exit(f"missing corpus {args.corpus}: set BYTEPIECE_SHARED or pass --corpus")
    n_bytes = int(args.kb * 1000)
    lines, size = read_lines(args.corpus, n_bytes)
    times = measure_api(args.model, lines, args.repeat)
    med = {name: statistics.median(v) for name, v in times.items()}
    result: dict = {"model": str(args.model), "corpus": str(args.corpus), "bytes": size, "lines": len(lines),
                    "repeat": args.repeat, "threads": 1, "seconds": times,
                    "MBps": {name: size / t / 1e6 for name, t in med.items()},
                    "ratios": {
                        "allowed_special / encode (no special tokens in the text)": med["encode, allowed_special='all'"] / med["encode"],
                        "nbest(n=1) / encode": med["nbest(n=1)"] / med["encode"],
                        "entropy / encode": med["entropy"] / med["encode"],
                        "encode_batch allowed_special / encode_batch": med["encode_batch, allowed_special='all'"] / med["encode_batch"],
                    }}
    if args.before:
        before = measure_before(args.before, args.model, args.corpus, n_bytes, args.repeat)
        result["before_after"] = {
            "revision": args.before, "seconds": before,
            "ratios": {f"{key} after / before": statistics.median(before["after"][key]) / statistics.median(before["before"][key])
                       for key in ("encode", "encode_batch")},
        }
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Tokenizer API cost, {args.model.name}, {size / 1e6:.2f} MB of {args.corpus.name} "
                        f"({len(lines)} lines, one thread, median of {args.repeat})")
    table.add_column("operation")
    table.add_column("MB/s", justify="right")
    for name, value in result["MBps"].items():
        table.add_row(name, f"{value:.2f}")
    console = Console()
    console.print(table)
    ratios = dict(result["ratios"])
    if args.before:
        ratios.update(result["before_after"]["ratios"])
    for name, value in ratios.items():
        console.print(f"{name}: {value:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
