"""Refinement benchmark: the faithful BNLM model vs the refined one vs sentencepiece.

On ``../shared/corpora/mixed.txt`` (or its first ``--mb`` MB), vocab 32000, order 6, min_count 2,
each trainer in its own subprocess, one after the other:

- ours, faithful (``Trainer``; the original BytePiece 0.6.3 gives the same model, see
  tests/test_golden.py), then ``refine_vocabulary`` seeded with the faithful model's counts, timed
  separately (numba kernels warmed up before the clock starts);
- sentencepiece Unigram and BPE at the same size (``byte_fallback=True``, character coverage
  0.9995, every line, no length limit; skipped when ``sentencepiece`` is missing).

Reported: wall time (BNLM, refine, total), peak RSS, and compression (bytes/token, higher is
better) on held-out slices of ``../shared/corpora/{zh,en,code}.txt`` whose lines are not in the
training text (as bench/bench_train.py takes them), plus any ``--extra NAME=FILE`` texts (for
example text from other sources). bytepiece models are encoded with our Tokenizer;
sentencepiece encodes line by line with its own normalizer (newlines are free for it).

    python bench/bench_refine.py --mb 2            # quick
    python bench/bench_refine.py --workers 2       # the full 10 MB run

Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_train import (  # noqa: E402 (after the sys.path line above)
    SHARED,
    bytes_per_token_bytepiece,
    bytes_per_token_spm,
    heldout,
    prefix_file,
    run_child,
)

SPM = r"""
import json, sys, time
import sentencepiece as spm
corpus, out, vocab, model_type, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
t0 = time.perf_counter()
spm.SentencePieceTrainer.train(input=corpus, model_prefix=out, vocab_size=vocab, model_type=model_type,
                               byte_fallback=True, character_coverage=0.9995, num_threads=workers,
                               max_sentence_length=1 << 30, input_sentence_size=0, minloglevel=2)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall}))
"""

OURS = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from bytepiece import Model
from bytepiece.training import Texts, Trainer
from bytepiece.training.refine import refine_vocabulary
corpus, out, vocab, order, min_count, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
warm = ["warm up the numba kernels, 预热\n"] * 20
m = Trainer(max_vocab_size=300, progress=False).train(warm)[0]
refine_vocabulary(Texts(warm), dict(zip(m.pieces, m.counts.tolist())), 300)
t0 = time.perf_counter()
tr = Trainer(order=order, max_vocab_size=vocab, min_count=min_count, workers=workers, progress=False)
model = tr.train(corpus)[0]
t1 = time.perf_counter()
stats = {}
counts = refine_vocabulary(corpus, dict(zip(model.pieces, model.counts.tolist())), vocab, workers=workers, stats=stats)
t2 = time.perf_counter()
model.save(out + ".faithful.model")
Model.from_counts(counts).save(out + ".refined.model")
print(json.dumps({"bnlm_s": t1 - t0, "refine_s": t2 - t1, "wall_s": t2 - t0, "passes": stats["passes"],
                  "faithful_size": model.vocab_size, "refined_size": len(counts) + 3}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bytepiece refinement benchmark")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "mixed.txt")
    parser.add_argument("--mb", type=float, default=0, help="train on the first MB of the corpus (0 = all)")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--heldout-bytes", type=int, default=300_000)
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=FILE",
                        help="more evaluation texts (e.g. from other sources)")
    parser.add_argument("--skip-spm", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        print(f"skipped: {args.corpus} not found", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        train_file = prefix_file(args.corpus, args.mb, tmp)
        train_mb = train_file.stat().st_size / 1e6
        texts = heldout(train_file, args.heldout_bytes)
        for item in args.extra:
            name, _, path = item.partition("=")
            texts[name] = Path(path).read_text(encoding="utf-8")
        rows = []
        out = str(Path(tmp) / "ours")
        r = run_child([sys.executable, "-c", OURS, str(train_file), out, str(args.vocab), str(args.order),
                       str(args.min_count), str(args.workers)], cwd=str(REPO))
        base = {"workers": args.workers, "peak_rss_mb": r["tree_peak_rss_mb"]}
        rows.append({"name": "bytepiece faithful (= original 0.6.3)", **base, "wall_s": r["bnlm_s"],
                     "bytes_per_token": bytes_per_token_bytepiece(Path(out + ".faithful.model"), texts),
                     "vocab_size": r["faithful_size"]})
        rows.append({"name": "bytepiece faithful + refine", **base, "wall_s": r["wall_s"], "refine_s": r["refine_s"],
                     "passes": r["passes"], "vocab_size": r["refined_size"],
                     "bytes_per_token": bytes_per_token_bytepiece(Path(out + ".refined.model"), texts)})
        if not args.skip_spm:
            try:
                import sentencepiece  # noqa: F401
            except ImportError:
                print("sentencepiece: skipped (not installed)", file=sys.stderr)
            else:
                for kind in ("unigram", "bpe"):
                    prefix = str(Path(tmp) / f"spm_{kind}")
                    s = run_child([sys.executable, "-c", SPM, str(train_file), prefix, str(args.vocab), kind,
                                   str(args.workers)])
                    rows.append({"name": f"sentencepiece {kind}", "workers": args.workers, "wall_s": s["wall_s"],
                                 "peak_rss_mb": s["tree_peak_rss_mb"], "vocab_size": args.vocab,
                                 "bytes_per_token": bytes_per_token_spm(Path(prefix + ".model"), texts)})
    names = list(texts)
    header = f"{'trainer':40} {'wall s':>7} {'RSS MB':>7} " + " ".join(f"{n:>8}" for n in names)
    print(f"train: {train_file.name} ({train_mb:.1f} MB), vocab {args.vocab}; bytes/token on held-out text")
    print(header)
    for row in rows:
        bpt = " ".join(f"{row['bytes_per_token'][n]:8.3f}" for n in names)
        print(f"{row['name']:40} {row['wall_s']:7.1f} {row['peak_rss_mb']:7.0f} {bpt}")
    refine = rows[1]
    print(f"refine: {refine['refine_s']:.1f} s, {refine['passes']} passes over the corpus")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
