"""Pass 2's kernel (``bnlm.count_pieces``) of this checkout against another version, same jobs.

    python bench/bench_count_pieces_ab.py CORPUS OTHER/bytepiece/kernels/bnlm.py [--rounds 6]

Trains once on CORPUS (32k, one worker, ``--max-memory 1G``) while recording every job the
second pass gives the kernel, then replays all of them through both versions, alternating which
goes first, each into a fresh piece table, timed by the process's CPU time (the machine may be
shared). Asserts that both give the same table (pieces, counts, pieces seen); prints the
median CPU seconds of each. ``OTHER`` is a bnlm.py from another checkout (``git archive``); it
is loaded as a module of this package, so it must use the same helper kernels.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("other", help="bnlm.py of the version to compare with")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import bytepiece.kernels.bnlm as this
    from bytepiece.kernels.bytetable import ByteTable
    from bytepiece.training import Trainer

    # a copy in a fresh directory: numba caches beside the file, and a cache entry of another
    # process's copy would refer to a module that does not exist here
    scratch = tempfile.TemporaryDirectory(prefix="bench-count-pieces-")
    copy = Path(scratch.name) / "bnlm_other.py"
    shutil.copyfile(args.other, copy)
    spec = importlib.util.spec_from_file_location("bytepiece.kernels._bnlm_other", copy)
    assert spec is not None and spec.loader is not None
    other = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = other
    spec.loader.exec_module(other)
    jobs = []
    kernel = this.count_pieces

    def record(buf, bounds, weights, lo, hi, order, ensure_unicode, ones, twos, table, cap, *tables):
        jobs.append((buf.copy(), bounds.copy(), weights.copy(), lo, hi, order, ensure_unicode, ones, twos, table, cap))
        return kernel(buf, bounds, weights, lo, hi, order, ensure_unicode, ones, twos, table, cap, *tables)

    this.count_pieces = record
    try:
        Trainer(max_vocab_size=32000, progress=False, workers=1, max_memory="1G").train(args.corpus)
    finally:
        this.count_pieces = kernel

    def replay(count_pieces) -> tuple[float, tuple]:
        arrays = tuple(ByteTable.new())
        meta = arrays[6]
        t0 = time.process_time()
        for job in jobs:
            arrays = count_pieces(*job, *arrays[:6], meta)
        seconds = time.process_time() - t0
        n = int(meta[0])
        order = np.argsort(arrays[1][:n], kind="stable")
        return seconds, (n, int(meta[2]), arrays[1][:n][order].tobytes(), arrays[4][:n][order].tobytes())

    versions = {"other": other.count_pieces, "this": kernel}
    reference = replay(kernel)[1]
    replay(other.count_pieces)  # compiled (or loaded) before the clock
    times: dict[str, list[float]] = {name: [] for name in versions}
    for r in range(args.rounds):
        for name in (list(versions) if r % 2 == 0 else list(versions)[::-1]):
            seconds, table = replay(versions[name])
            assert table == reference, f"{name} counts other pieces"
            times[name].append(seconds)
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"{len(jobs)} jobs; count_pieces CPU median over {args.rounds} rounds: other {med['other']:.3f} s, "
          f"this {med['this']:.3f} s (this/other {med['this'] / med['other']:.3f}); same tables")
    print("rounds:", {k: [round(x, 3) for x in v] for k, v in times.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
