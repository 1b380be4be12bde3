"""Training at corpus scale: memory under a budget, speed against HF tokenizers' BPE trainer, Dask.

On a GB-sized real corpus (``bench/make_scale_corpus.py`` builds 1.3 GB of Linux kernel source as
JSON Lines), vocabulary 32000, every trainer in its own subprocess, one after the other:

- ours with ``--max-memory`` (default 1G) on the corpus and on its first quarter, and with the
  default budget (half the available memory: nothing spills on a 24 GB machine);
- HF tokenizers' byte-level BPE trainer (``train_from_iterator`` over the same documents,
  ``RAYON_NUM_THREADS`` = workers);
- ours on a Dask ``LocalCluster`` of 1 and of 2 worker processes (on the quarter corpus by default).

Reported per run: wall time of the training call, CPU seconds of the process and its worker
processes (on a shared machine, the figure that other load hardly moves), peak RSS of the
process (``ru_maxrss``) and of its process tree (sampled), and for ours the per-phase times and spilled bytes; then the ratios
the targets are stated in, and whether the models of all our plans are byte-identical.

    python bench/make_scale_corpus.py --out /tmp/bytepiece-scale
    python bench/bench_scale.py --corpus /tmp/bytepiece-scale/linux.jsonl --json bench/results/train_scale.json
"""

from __future__ import annotations

import argparse
import datetime
import filecmp
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import run_child  # noqa: E402  (same subprocess runner and RSS sampling)
from machine_info import machine  # noqa: E402

OURS = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from bytepiece.training import Trainer
corpus, out, vocab, workers, budget, cluster = sys.argv[1:7]
kwargs = {"workers": int(workers)} if cluster == "-" else {"cluster": cluster}
if budget != "-":
    kwargs["max_memory"] = budget
tr = Trainer(max_vocab_size=int(vocab), progress=False, **kwargs)
t0 = time.perf_counter()
tr.train(corpus)
wall = time.perf_counter() - t0
tr.save(out, overwrite=True)
print(json.dumps({"wall_s": wall, "train_s": tr.report.total_s, "compile_s": tr.report.compile_s,
                  "phases": tr.report.as_dict()["phases"], "spilled_bytes": tr.report.spilled_bytes, "plan": tr.report.plan,
                  "ngrams_kept": tr.report.ngrams_kept, "distinct_pieces": tr.report.distinct_pieces,
                  "vocab_size": tr.models[0].vocab_size, "bytes": tr.report.bytes}))
"""

HF = r"""
import json, sys, time
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
corpus, out, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3])
def texts():
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
t0 = time.perf_counter()
tok.train_from_iterator(texts(), trainer=trainer)
wall = time.perf_counter() - t0
tok.save(out)
print(json.dumps({"wall_s": wall, "vocab_size": tok.get_vocab_size()}))
"""


def _ours(corpus: Path, out: Path, vocab: int, workers: int, budget: str | None, cluster: str | None) -> dict:
    argv = [sys.executable, "-c", OURS, str(corpus), str(out), str(vocab), str(workers), budget or "-", cluster or "-"]
    return run_child(argv)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("/tmp/bytepiece-scale/linux.jsonl"))
    ap.add_argument("--quarter", type=Path, default=None, help="default: linux.quarter.jsonl beside --corpus")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget", default="1G")
    ap.add_argument("--dask-corpus", choices=("quarter", "full"), default="quarter")
    ap.add_argument("--skip", action="append", default=[], choices=("unbounded", "quarter", "hf", "dask"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    quarter = args.quarter or args.corpus.with_name(args.corpus.name.replace(".jsonl", ".quarter.jsonl"))
    if not args.corpus.is_file():
        sys.exit(f"{args.corpus} does not exist; build it with: python bench/make_scale_corpus.py")
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bytepiece-bench-scale-") as tmp:
        t = Path(tmp)

        def record(name: str, result: dict) -> None:
            runs[name] = result
            keep = {k: v for k, v in result.items() if k not in ("phases", "plan")}
            print(f"{name}: {json.dumps(keep)}", flush=True)

        record("ours budget", _ours(args.corpus, t / "budget.model", args.vocab, args.workers, args.budget, None))
        if "unbounded" not in args.skip:
            record("ours unbounded", _ours(args.corpus, t / "unbounded.model", args.vocab, args.workers, None, None))
        if "quarter" not in args.skip and quarter.is_file():
            record("ours budget quarter", _ours(quarter, t / "quarter.model", args.vocab, args.workers, args.budget, None))
        if "hf" not in args.skip:
            env_threads = os.environ.get("RAYON_NUM_THREADS")
            os.environ["RAYON_NUM_THREADS"] = str(args.workers)
            record("hf bpe", run_child([sys.executable, "-c", HF, str(args.corpus), str(t / "hf.json"), str(args.vocab)]))
            if env_threads is None:
                os.environ.pop("RAYON_NUM_THREADS")
        if "dask" not in args.skip:
            corpus = quarter if args.dask_corpus == "quarter" else args.corpus
            record("dask local:1", _ours(corpus, t / "dask1.model", args.vocab, 1, args.budget, "local:1"))
            record("dask local:2", _ours(corpus, t / "dask2.model", args.vocab, 2, args.budget, "local:2"))
            local = t / "dask-threads.model"
            if args.dask_corpus == "quarter" and "quarter" not in args.skip:
                local = t / "quarter.model"
            identical_dask = filecmp.cmp(t / "dask1.model", t / "dask2.model", shallow=False) and (
                not local.exists() or filecmp.cmp(local, t / "dask2.model", shallow=False))
        identical = "unbounded" in args.skip or filecmp.cmp(t / "budget.model", t / "unbounded.model", shallow=False)

    def peak(name: str) -> float:
        return runs[name]["tree_peak_rss_mb"] if "dask" in name else runs[name]["peak_rss_mb"]

    ratios: dict[str, float | bool] = {"peak RSS with budget (MB)": peak("ours budget")}
    if "ours budget quarter" in runs:
        ratios["peak RSS full / quarter corpus"] = peak("ours budget") / peak("ours budget quarter")
    if "ours unbounded" in runs:
        ratios["time budget / unbounded"] = runs["ours budget"]["wall_s"] / runs["ours unbounded"]["wall_s"]
        ratios["same model budget and unbounded"] = identical
    if "hf bpe" in runs:
        ratios["time ours (budget) / HF BPE"] = runs["ours budget"]["wall_s"] / runs["hf bpe"]["wall_s"]
        ratios["CPU ours (budget) / HF BPE"] = runs["ours budget"]["cpu_s"] / runs["hf bpe"]["cpu_s"]
        if "ours unbounded" in runs:
            ratios["time ours (unbounded) / HF BPE"] = runs["ours unbounded"]["wall_s"] / runs["hf bpe"]["wall_s"]
    if "dask local:2" in runs:
        ratios["speed-up dask local:2 / local:1"] = runs["dask local:1"]["wall_s"] / runs["dask local:2"]["wall_s"]
        ratios["same model dask local:1, local:2 and threads"] = identical_dask
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"date": datetime.date.today().isoformat(), "machine": machine(),
                  "python": platform.python_version(), "corpus": str(args.corpus), "corpus_bytes": args.corpus.stat().st_size,
                  "quarter_bytes": quarter.stat().st_size if quarter.is_file() else None, "vocab": args.vocab,
                  "workers": args.workers, "budget": args.budget, "dask_corpus": args.dask_corpus,
                  "runs": runs, "ratios": ratios}
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
