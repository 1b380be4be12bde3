"""Training benchmark: our BNLM trainer vs the original BytePiece 0.6.3 and sentencepiece.

On ``../shared/corpora/mixed.txt`` (or a prefix of it with ``--mb``), vocab 32000, order 6,
min_count 2, every trainer runs in its own subprocess, one after the other:

- ours with 1 and 2 workers (threads; numba kernels warmed up before the clock starts),
- the original ``bytepiece==0.6.3`` (``Trainer.train(corpus, workers=N)``, processes) from the
  python in ``$BYTEPIECE_ORIGINAL_PYTHON`` (default ``/tmp/orig/bin/python``); skipped if absent,
- sentencepiece Unigram and BPE (vocab 32000, ``byte_fallback=True``, its other defaults,
  ``num_threads`` = max workers); skipped if ``sentencepiece`` is not installed.

Reported per trainer: wall time of the training call (measured in the child with perf_counter),
peak RSS (``ru_maxrss`` of the child from ``wait4``: the largest single process, which for the
original's worker pool means its biggest process) and the peak of the summed RSS of the child's
process tree (sampled every 20 ms), and compression (bytes/token, higher is better) on held-out
slices of ``../shared/corpora/{zh,en,code}.txt`` whose lines do not occur in the training text
(``bytepiece.evaluation.corpus.heldout_slice``). bytepiece models (ours and the original's) are
encoded with our Tokenizer, which gives the original's ids exactly; sentencepiece encodes line
by line with its own normalizer (newlines are not tokens for it, so it is slightly flattered).

    python bench/bench_train.py --mb 2                # quick
    python bench/bench_train.py --json bench_train.json   # full 10 MB run (the original takes minutes)

Timings on a shared machine are noisy; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BYTEPIECE_SHARED", REPO.parent / "shared"))
DEFAULT_ORIGINAL = "/tmp/orig/bin/python"

OURS = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from bytepiece.training import Trainer
corpus, out, vocab, order, min_count, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
Trainer(max_vocab_size=300, progress=False).train(["warm up the numba kernels\n"] * 20)
t0 = time.perf_counter()
tr = Trainer(order=order, max_vocab_size=vocab, min_count=min_count, workers=workers, progress=False)
tr.train(corpus)
wall = time.perf_counter() - t0
tr.save(out, overwrite=True)
print(json.dumps({"wall_s": wall, "phases_s": {"compile": tr.report.compile_s, "total": tr.report.total_s, **{k: v.wall_s for k, v in tr.report.phases.items()}}, "vocab_size": tr.models[0].vocab_size}))
"""

ORIGINAL = r"""
import json, sys, time
from bytepiece import Trainer
corpus, out, vocab, order, min_count, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
class Corpus:
    def __iter__(self):
        with open(corpus, encoding="utf-8") as f:
            yield from f
t0 = time.perf_counter()
tr = Trainer(order=order, max_vocab_size=vocab, max_piece_length=36, min_count=min_count)
tr.train(Corpus(), workers=workers)
wall = time.perf_counter() - t0
tr.save(out)
print(json.dumps({"wall_s": wall}))
"""

SPM = r"""
import json, sys, time
import sentencepiece as spm
corpus, out, vocab, model_type, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
t0 = time.perf_counter()
spm.SentencePieceTrainer.train(input=corpus, model_prefix=out, vocab_size=vocab, model_type=model_type,
                               byte_fallback=True, num_threads=workers, max_sentence_length=1 << 16,
                               input_sentence_size=0, minloglevel=2)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall}))
"""


def _tree_rss_kb(root: int) -> int:
    """Summed RSS (KB) of ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            pid, ppid, pages = int(entry), int(fields[1]), int(fields[21])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
        rss[pid] = pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_child(argv: list[str], cwd: str | None = None) -> dict:
    """Run a trainer; returns its JSON line plus ru_maxrss (MB) and the sampled tree peak (MB)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            except OSError:
                pass
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for t in readers:
        t.start()
    t0 = time.perf_counter()
    _, status, usage = os.wait4(proc.pid, 0)
    process_s = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    for t in readers:
        t.join()
    stdout = b"".join(out_chunks).decode("utf-8", "replace")
    stderr = b"".join(err_chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["tree_peak_rss_mb"] = peak[0] / 1024
    result["process_s"] = process_s
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # with the reaped children: worker processes
    return result


def prefix_file(corpus: Path, mb: float, directory: str) -> Path:
    """The first ``mb`` MB of ``corpus`` cut at a line end (the whole file when mb <= 0)."""
    if mb <= 0:
        return corpus
    limit = int(mb * 1e6)
    out = Path(directory) / f"train_{mb:g}mb.txt"
    size = 0
    with open(corpus, "rb") as src, open(out, "wb") as dst:
        for line in src:
            if size >= limit:
                break
            dst.write(line)
            size += len(line)
    return out


def heldout(train_file: Path, target_bytes: int) -> dict[str, str]:
    from bytepiece.evaluation.corpus import heldout_slice

    from bytepiece.errors import InputError

    train_text = train_file.read_text(encoding="utf-8")
    train_lines = set(train_text.split("\n"))
    # mixed.txt was sampled from these files; hold out lines that are not in it
    full_mixed = SHARED / "corpora" / "mixed.txt"
    if train_file != full_mixed and full_mixed.is_file():
        train_lines |= set(full_mixed.read_text(encoding="utf-8").split("\n"))
    out = {}
    for name in ("zh", "en", "code"):
        src = SHARED / "corpora" / f"{name}.txt"
        if src.is_file():
            try:
                out[name] = heldout_slice(src, train_text, target_bytes=target_bytes, seed=0, name=name,
                                          train_lines=train_lines).text
            except InputError as e:  # the training text covers the whole file: no compression column
                print(f"  no held-out {name} text: {e}", file=sys.stderr)
    return out


def bytes_per_token_bytepiece(model: Path, texts: dict[str, str]) -> dict[str, float]:
    from bytepiece import Tokenizer
    from bytepiece.evaluation.metrics import compression, encode_text

    tok = Tokenizer(model)
    return {name: compression(encode_text(tok, text, name))["bytes_per_token"] for name, text in texts.items()}


def bytes_per_token_spm(model: Path, texts: dict[str, str]) -> dict[str, float]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    out = {}
    for name, text in texts.items():
        tokens = sum(len(ids) for ids in sp.encode(text.split("\n")))
        out[name] = len(text.encode("utf-8")) / max(tokens, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bytepiece training benchmark")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "mixed.txt")
    parser.add_argument("--mb", type=float, default=0, help="train on the first MB of the corpus (0 = all)")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--heldout-bytes", type=int, default=300_000)
    parser.add_argument("--skip", default="", help="comma-separated: ours,original,spm_unigram,spm_bpe")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        print(f"corpus {args.corpus} not found (set BYTEPIECE_SHARED or --corpus)", file=sys.stderr)
        return 1
    workers = [int(w) for w in args.workers.split(",") if w]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    original_python = os.environ.get("BYTEPIECE_ORIGINAL_PYTHON", DEFAULT_ORIGINAL)
    try:
        import sentencepiece  # noqa: F401
        have_spm = True
    except ImportError:
        have_spm = False

    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        train_file = prefix_file(args.corpus, args.mb, tmp)
        size = train_file.stat().st_size
        print(f"training on {train_file.name}: {size / 1e6:.2f} MB, vocab {args.vocab}, order {args.order}, "
              f"min_count {args.min_count}, cpus {os.cpu_count()}", flush=True)
        common = [str(train_file), "", str(args.vocab), str(args.order), str(args.min_count)]

        def record(name: str, w: int, kind: str, model: Path | None, run) -> None:
            if model is None:
                results.append({"trainer": name, "workers": w, "status": run})
                print(f"  {name} (workers={w}): {run}", flush=True)
                return
            try:
                r = run()
            except RuntimeError as e:
                results.append({"trainer": name, "workers": w, "status": f"failed: {e}"})
                print(f"  {name} (workers={w}): failed: {e}", flush=True)
                return
            r.update(trainer=name, workers=w, status="ok", kind=kind, model=str(model))
            results.append(r)
            print(f"  {name} (workers={w}): {r['wall_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(tree {r['tree_peak_rss_mb']:.0f} MB)", flush=True)

        for w in workers:
            if "ours" in skip:
                break
            model = Path(tmp) / f"ours_{w}.model"
            argv_ = [sys.executable, "-c", OURS, *common[:1], str(model), *common[2:], str(w)]
            record("bytepiece (ours)", w, "bytepiece", model, lambda a=argv_: run_child(a, cwd=str(REPO)))
        for w in workers:
            if "original" in skip:
                break
            model = Path(tmp) / f"orig_{w}.model"
            if not Path(original_python).exists():
                record("bytepiece 0.6.3", w, "bytepiece", None, f"skipped ({original_python} not found)")
                continue
            argv_ = [original_python, "-c", ORIGINAL, *common[:1], str(model), *common[2:], str(w)]
            record("bytepiece 0.6.3", w, "bytepiece", model, lambda a=argv_: run_child(a, cwd=tmp))
        spm_threads = max(workers)
        for model_type in ("unigram", "bpe"):
            name = f"sentencepiece {model_type}"
            if f"spm_{model_type}" in skip:
                continue
            if not have_spm:
                record(name, spm_threads, "spm", None, "skipped (pip install sentencepiece)")
                continue
            prefix = Path(tmp) / f"spm_{model_type}"
            argv_ = [sys.executable, "-c", SPM, str(train_file), str(prefix), str(args.vocab), model_type, str(spm_threads)]
            record(name, spm_threads, "spm", prefix.with_suffix(".model"), lambda a=argv_: run_child(a, cwd=tmp))

        texts = heldout(train_file, args.heldout_bytes)
        for r in results:
            if r.get("status") != "ok":
                continue
            model = Path(r["model"])
            r["bytes_per_token"] = (bytes_per_token_bytepiece(model, texts) if r["kind"] == "bytepiece"
                                    else bytes_per_token_spm(model, texts))
            r.pop("model")

    report(results, texts, size)
    if args.json:
        payload = {"corpus": str(args.corpus), "train_bytes": size, "mb": args.mb, "vocab": args.vocab,
                   "order": args.order, "min_count": args.min_count, "cpus": os.cpu_count(),
                   "heldout_bytes": {k: len(v.encode("utf-8")) for k, v in texts.items()}, "results": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def report(results: list[dict], texts: dict[str, str], size: int) -> None:
    from rich.console import Console
    from rich.table import Table

    ok = [r for r in results if r.get("status") == "ok"]
    orig = {r["workers"]: r for r in ok if r["trainer"] == "bytepiece 0.6.3"}
    uni = next((r for r in ok if r["trainer"] == "sentencepiece unigram"), None)
    table = Table(title=f"training on {size / 1e6:.1f} MB (noisy: shared machine)")
    for col in ("trainer", "workers", "wall s", "MB/s", "vs original", "vs spm unigram", "peak RSS MB",
                "tree RSS MB", *[f"{k} B/tok" for k in texts]):
        table.add_column(col, justify="left" if col == "trainer" else "right")
    for r in results:
        if r.get("status") != "ok":
            table.add_row(r["trainer"], str(r["workers"]), r["status"])
            continue
        o = orig.get(r["workers"])
        vs_orig = f"{o['wall_s'] / r['wall_s']:.1f}x faster" if o and r is not o else ""
        vs_uni = f"{uni['wall_s'] / r['wall_s']:.2f}x" if uni and r is not uni else ""
        bpt = r.get("bytes_per_token", {})
        table.add_row(r["trainer"], str(r["workers"]), f"{r['wall_s']:.2f}", f"{size / 1e6 / r['wall_s']:.2f}",
                      vs_orig, vs_uni, f"{r['peak_rss_mb']:.0f}", f"{r['tree_peak_rss_mb']:.0f}",
                      *[f"{bpt.get(k, float('nan')):.3f}" for k in texts])
    Console(width=200).print(table)


if __name__ == "__main__":
    sys.exit(main())
