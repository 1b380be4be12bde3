"""Trie build time against the number of pieces: random-byte pieces (the worst case for the
double-array placement: every node has many children with unrelated labels) and a published model.

    python bench/bench_trie.py [--sizes 100000 500000 1000000] [--model M] [--json out.json]

Times ``build_trie`` alone (the kernels compiled first, on a small input), and the whole load of
a model file with the array cache off (``Tokenizer(path)``: JSON parsing plus the build); wall
and CPU seconds of each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BYTEPIECE_SHARED", REPO.parent / "shared"))


def random_pieces(n: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct pieces: the 256 single bytes, then random bytes of 4 to 10 bytes each."""
    rng = np.random.default_rng(seed)
    pieces = {bytes([b]) for b in range(256)}
    while len(pieces) < n:
        lengths = rng.integers(4, 11, size=n)
        blob = rng.integers(0, 256, size=int(lengths.sum()), dtype=np.uint8).tobytes()
        start = 0
        for length in lengths.tolist():
            pieces.add(blob[start : start + length])
            start += length
            if len(pieces) == n:
                break
    return sorted(pieces, key=lambda p: (len(p), p))


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``: on a busy machine the CPU time of this single-threaded
    work is what its wall time would be on an idle core."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000, 1_000_000])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "bytepiece.plus.160k.model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ["BYTEPIECE_CACHE_DIR"] = ""
    from bytepiece import Tokenizer
    from bytepiece.kernels.trie import build_trie
    from bytepiece.model import Model, load_model

    build_trie([bytes([b]) for b in range(256)] + [b"ab"])  # compile
    rows = []
    cases = [(f"random {n:,}", Model.from_counts(dict.fromkeys(random_pieces(n), 1))) for n in args.sizes]
    if args.model.is_file():
        cases.append((args.model.name, load_model(args.model)))
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in cases:
            reversed_pieces = [p[::-1] for p in model.pieces]
            build = timed(lambda: build_trie(reversed_pieces))
            trie = build_trie(reversed_pieces)
            path = Path(tmp) / "m.model"
            model.save(path)
            load = timed(lambda: Tokenizer(path))
            row = {"case": name, "pieces": len(model.pieces), "piece_bytes": sum(map(len, model.pieces)),
                   "file_mb": round(path.stat().st_size / 1e6, 1), "cells": len(trie.piece),
                   "build_s": round(build[0], 3), "build_cpu_s": round(build[1], 3),
                   "load_s": round(load[0], 3), "load_cpu_s": round(load[1], 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())
