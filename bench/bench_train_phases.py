"""CPU seconds per training phase, one worker, for comparing kernel changes on a shared machine.

    python bench/bench_train_phases.py CORPUS [--vocab 32000] [--budget 1G] [--runs 3] [--json out.json]
    python bench/bench_train_phases.py CORPUS --python OTHER/bin/python   # another checkout, same rounds

The summary's phase times are wall clock, which on a machine shared with other work counts the
time the scheduler gave the cores to someone else. With one worker a training run is CPU-bound
and sequential, so this runs it in a child process (kernels compiled first: a warm numba cache)
and times each phase, and each pruning step, by the process's CPU time. With ``--python``, rounds
alternate between the environments, so load falls on both alike; medians are reported, and
whether the models written are byte-identical.

The corpus used for the figures in the commit messages is ``linux.tenth.jsonl`` from
``bench/make_scale_corpus.py`` (138 MB of the Linux sources as JSON Lines).
"""

from __future__ import annotations

import argparse
import datetime
import filecmp
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import machine  # noqa: E402

CHILD = r"""
import contextlib, json, sys, time, warnings
warnings.simplefilter("ignore")
from bytepiece import progress as P
cpu = {}
real = P.Progress.phase

@contextlib.contextmanager
def phase(self, description, total=None, **kw):
    t0 = time.process_time()
    with real(self, description, total, **kw) as advance:
        yield advance
    key = description.split(" round")[0]
    cpu[key] = cpu.get(key, 0.0) + time.process_time() - t0

P.Progress.phase = phase
from bytepiece.training import Trainer
corpus, vocab, budget, out = sys.argv[1:5]
trainer = Trainer(max_vocab_size=int(vocab), progress=False, workers=1, max_memory=budget)
trainer.train(corpus)  # compiles (or loads) the kernels; not timed
cpu.clear()
t0 = time.process_time()
trainer.train(corpus)
total = time.process_time() - t0
trainer.save(out, overwrite=True)
print(json.dumps({"phases_cpu_s": cpu, "total_cpu_s": total}))
"""


def run(python: str, corpus: Path, vocab: int, budget: str, out: Path) -> dict:
    done = subprocess.run([python, "-c", CHILD, str(corpus), str(vocab), budget, str(out)], capture_output=True,
                          text=True, timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--budget", default="1G")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", action="append", default=[], help="another environment to compare (repeatable)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    pythons = [sys.executable, *args.python]
    results: dict[str, list[dict]] = {p: [] for p in pythons}
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        models = {p: Path(tmp) / f"model{i}.model" for i, p in enumerate(pythons)}
        for _ in range(args.runs):
            for p in pythons:
                results[p].append(run(p, args.corpus, args.vocab, args.budget, models[p]))
        identical = all(filecmp.cmp(models[pythons[0]], models[p], shallow=False) for p in pythons[1:])
    summary: dict = {"date": datetime.date.today().isoformat(), "machine": machine(), "corpus": str(args.corpus),
                     "vocab": args.vocab, "budget": args.budget, "runs": args.runs, "models_identical": identical,
                     "environments": {}}
    for p in pythons:
        phases = sorted({k for r in results[p] for k in r["phases_cpu_s"]}, key=list(results[p][0]["phases_cpu_s"]).index)
        med = {k: statistics.median(r["phases_cpu_s"].get(k, 0.0) for r in results[p]) for k in phases}
        total = statistics.median(r["total_cpu_s"] for r in results[p])
        summary["environments"][p] = {"phases_cpu_s": med, "total_cpu_s": total, "runs": results[p]}
        print(f"{p}: " + "  ".join(f"{k} {v:.2f}" for k, v in med.items()) + f"  total {total:.2f} s CPU")
    if len(pythons) > 1:
        print("models identical" if identical else "MODELS DIFFER")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
