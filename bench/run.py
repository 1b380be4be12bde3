"""Side-by-side benchmark: bytepiece against original BytePiece 0.6.3, sentencepiece and HF
tokenizers, on the SAME vocabulary, measured in one run on one machine.

    python -m bench                         # full run (training takes a few minutes: the original is slow)
    python -m bench --mb 1 --skip-train     # quick
    python bench/run.py --json bench.json

What is measured (every library in its own subprocess, one after the other, numba warmed up
and every library's first call made before any clock starts; best of ``--repeat`` runs):

- encode throughput, deterministic: MB/s of UTF-8 input over the first ``--mb`` MB of lines
  of the corpus (one line = one document), one thread and all cores. bytepiece:
  ``encode_batch`` (and a per-line ``encode`` loop); original 0.6.3: a per-line ``encode``
  loop (it has no batch API), all cores with a ``multiprocessing.Pool``; sentencepiece:
  ``encode(lines, num_threads=N)``; HF tokenizers: ``encode_batch`` with
  ``RAYON_NUM_THREADS=N``. The model (default ``bytepiece_80k``) is exported with
  ``to_sentencepiece`` / ``to_hf`` in both styles (``byte_fallback``, ``byte_level``).
- sampling throughput (alpha 0.1): bytepiece ``alpha=0.1``, original ``alpha=0.1``,
  sentencepiece ``enable_sampling=True, alpha=0.1, nbest_size=-1`` (HF has no sampling).
- training time and peak RSS versus the original and sentencepiece Unigram: delegated to
  ``bench/bench_train.py`` (first ``--train-mb`` MB of mixed.txt, vocab ``--train-vocab``, one
  worker); skipped with ``--skip-train`` or when that script is missing.
- CLI cold start with a warm numba cache and model cache: wall time of ``echo hello | bytepiece
  encode -m MODEL`` (one warm-up run, then the median of 5), next to the same one-line job in a
  fresh interpreter for each peer. The targets hold for a plain ``pip install .`` environment
  (``--plain-python ENV/bin/python``; otherwise this environment's script, whose test extras
  can only make it slower); ``bench/bench_coldstart.py`` makes such an environment itself and
  interleaves the runs.
- encode_batch returning lists (one thread) against sentencepiece, whose ``encode`` returns lists.

Ratios are ours / theirs for throughput and theirs / ours for time, so > 1 means bytepiece is
faster. Missing peers are reported as "skipped". The machine may be shared: timings are noisy,
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BYTEPIECE_SHARED", REPO.parent / "shared"))
DEFAULT_MODEL = SHARED / "models" / "bytepiece_80k.model"
DEFAULT_CORPUS = SHARED / "corpora" / "mixed.txt"
ALPHA = 0.1
STYLES = ("byte_fallback", "byte_level")


# -- workers (run in subprocesses) ---------------------------------------------------------------------

def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _read(corpus: str) -> tuple[list[str], int]:
    with open(corpus, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines, sum(len(line.encode("utf-8")) for line in lines)


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_ours(model: str, corpus: str, repeat: int, cores: int) -> dict:
    from bytepiece import Tokenizer

    lines, size = _read(corpus)
    tok = Tokenizer(model)
    tok.warmup()
    mb = size / 1e6
    out = {}
    for alpha, tag in ((-1.0, "det"), (ALPHA, "sample")):
        tok.encode(lines[0], alpha=alpha, seed=0)
        tok.encode_batch(lines[:64], alpha=alpha, seed=0, num_threads=cores)
        out[f"{tag}/per_line_1"] = mb / _best(lambda: [tok.encode(t, alpha=alpha, seed=1) for t in lines], repeat)
        out[f"{tag}/lists_1"] = mb / _best(lambda: tok.encode_batch(lines, alpha=alpha, seed=1, num_threads=1), repeat)
        for n in sorted({1, 2, cores}):
            if n > cores:
                continue
            out[f"{tag}/batch_{n}"] = mb / _best(
                lambda: tok.encode_batch(lines, alpha=alpha, seed=1, num_threads=n, return_flat=True), repeat)
    out["rss_mb"] = _rss_mb()
    return out


def worker_spm(model: str, corpus: str, repeat: int, cores: int) -> dict:
    import sentencepiece as spm

    lines, size = _read(corpus)
    sp = spm.SentencePieceProcessor(model_file=model)
    mb = size / 1e6
    out = {}
    sp.encode(lines[:64])
    sp.encode(lines[:64], enable_sampling=True, alpha=ALPHA, nbest_size=-1)
    for n in sorted({1, cores}):
        out[f"det/batch_{n}"] = mb / _best(lambda: sp.encode(lines, num_threads=n), repeat)
        out[f"sample/batch_{n}"] = mb / _best(
            lambda: sp.encode(lines, enable_sampling=True, alpha=ALPHA, nbest_size=-1, num_threads=n), repeat)
    out["det/per_line_1"] = mb / _best(lambda: [sp.encode(t) for t in lines], repeat)
    out["rss_mb"] = _rss_mb()
    return out


def worker_hf(model: str, corpus: str, repeat: int, cores: int) -> dict:
    # RAYON_NUM_THREADS is set by the parent before this interpreter started
    import tokenizers

    lines, size = _read(corpus)
    tok = tokenizers.Tokenizer.from_file(model)
    tok.encode_special_tokens = True
    mb = size / 1e6
    tok.encode_batch(lines[:64])
    n = int(os.environ.get("RAYON_NUM_THREADS", cores))
    out = {f"det/batch_{n}": mb / _best(lambda: tok.encode_batch(lines), repeat)}
    if n == 1:
        out["det/per_line_1"] = mb / _best(lambda: [tok.encode(t) for t in lines], repeat)
    out["rss_mb"] = _rss_mb()
    return out


# The original runs in its own interpreter, so this script is self-contained.
ORIGINAL_WORKER = r"""
import json, multiprocessing, sys, time
from bytepiece import Tokenizer
model, corpus, repeat, cores, alpha_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
with open(corpus, encoding="utf-8") as f:
    lines = f.read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
size = sum(len(l.encode("utf-8")) for l in lines)
tok = Tokenizer(model)
_tok = None
def init():
    global _tok
    _tok = Tokenizer(model)
def work(args):
    chunk, alpha = args
    return sum(len(_tok.encode(t, alpha=alpha)) for t in chunk)
def best(fn):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts)
out = {}
for alpha, tag in ((-1, "det"), (alpha_s, "sample")):
    tok.encode(lines[0], alpha=alpha)
    out[tag + "/per_line_1"] = size / 1e6 / best(lambda: [tok.encode(t, alpha=alpha) for t in lines])
if cores > 1:
    step = max(1, len(lines) // (cores * 8))
    with multiprocessing.Pool(cores, initializer=init) as pool:
        for alpha, tag in ((-1, "det"), (alpha_s, "sample")):
            chunks = [(lines[i:i + step], alpha) for i in range(0, len(lines), step)]
            pool.map(work, chunks[:cores])
            out[tag + "/pool_%d" % cores] = size / 1e6 / best(lambda: pool.map(work, chunks))
print(json.dumps(out))
"""


# -- parent --------------------------------------------------------------------------------------------

def original_python() -> str | None:
    candidates = [os.environ.get("BYTEPIECE_ORIGINAL_PYTHON"), "/work/orig/bin/python", "/tmp/orig/bin/python"]
    return next((c for c in candidates if c and Path(c).exists()), None)


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run_json(argv: list[str], *, env: dict | None = None, cwd: str | None = None, timeout: float = 3600) -> dict:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-800:] or f"exit status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_worker(name: str, model: Path, corpus: Path, repeat: int, cores: int, env_extra: dict | None = None) -> dict:
    env = {**os.environ, **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--model", str(model),
            "--corpus", str(corpus), "--repeat", str(repeat), "--cores", str(cores)]
    return run_json(argv, env=env, cwd=str(REPO))


def prefix_lines(corpus: Path, mb: float, directory: Path) -> Path:
    out = directory / "lines.txt"
    limit, size = int(mb * 1e6), 0
    with open(corpus, "rb") as src, open(out, "wb") as dst:
        for line in src:
            if size >= limit:
                break
            dst.write(line if line.endswith(b"\n") else line + b"\n")
            size += len(line)
    return out


def cold_start(model: Path, spm_model: Path | None, hf_model: Path | None, runs: int = 5,
               plain_python: Path | None = None) -> dict:
    """Median wall time (s) of encoding one line in a fresh process, after one warm-up run.
    ``plain_python``: the interpreter of a plain ``pip install .`` environment, whose
    ``bytepiece`` script is measured (bench/bench_coldstart.py makes one and interleaves runs)."""
    candidates = [Path(sys.executable).parent / "bytepiece", shutil.which("bytepiece")]
    if plain_python is not None:
        candidates.insert(0, plain_python.parent / "bytepiece")
    script = next((str(c) for c in candidates if c and Path(c).exists()), None)
    jobs: dict[str, tuple[list[str], str | None] | str] = {}
    jobs["bytepiece"] = ([script, "encode", "-m", str(model)], None) if script else "skipped (no bytepiece script)"
    orig = original_python()
    jobs["original 0.6.3"] = (
        [orig, "-I", "-c", "import sys\nfrom bytepiece import Tokenizer\n"
         f"t = Tokenizer({str(model)!r})\nfor l in sys.stdin: print(*t.encode(l.rstrip('\\n')))"],
        tempfile.gettempdir()) if orig else "skipped (no original python)"
    jobs["sentencepiece"] = (
        [sys.executable, "-c", "import sys, sentencepiece as s\n"
         f"sp = s.SentencePieceProcessor(model_file={str(spm_model)!r})\n"
         "for l in sys.stdin: print(*sp.encode(l.rstrip('\\n')))"], None) if spm_model else "skipped"
    jobs["hf tokenizers"] = (
        [sys.executable, "-c", "import sys, tokenizers as t\n"
         f"tok = t.Tokenizer.from_file({str(hf_model)!r})\n"
         "for l in sys.stdin: print(*tok.encode(l.rstrip('\\n')).ids)"], None) if hf_model else "skipped"
    out: dict = {}
    for name, job in jobs.items():
        if isinstance(job, str):
            out[name] = job
            continue
        argv, cwd = job
        times = []
        for i in range(runs + 1):
            start = time.perf_counter()
            done = subprocess.run(argv, input="hello\n", capture_output=True, text=True, cwd=cwd)
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                times = None
                out[name] = f"failed: {done.stderr.strip()[-300:]}"
                break
            if i:
                times.append(elapsed)
        if times:
            out[name] = {"median_s": statistics.median(times), "runs_s": times, "output": done.stdout.strip()}
    out["bytepiece_script"] = script
    return out


def train_bench(mb: float, vocab: int) -> dict | str:
    script = REPO / "bench" / "bench_train.py"
    if not script.exists():
        return "skipped (bench/bench_train.py not found)"
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out = Path(tmp) / "train.json"
        argv = [sys.executable, str(script), "--mb", str(mb), "--vocab", str(vocab), "--workers", "1",
                "--skip", "spm_bpe", "--heldout-bytes", "50000", "--json", str(out)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO))
        if done.returncode != 0 or not out.exists():
            return f"failed: {done.stderr.strip()[-500:]}"
        return json.loads(out.read_text())


def measure(args) -> dict:
    cores = os.cpu_count() or 1
    result: dict = {
        "date": datetime.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
        f"{cores} cores, {platform.system()} {platform.release()}", "python": platform.python_version(),
        "model": str(args.model), "corpus": str(args.corpus), "alpha": ALPHA, "cores": cores,
        "load_average_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp_s:
        tmp = Path(tmp_s)
        corpus = prefix_lines(args.corpus, args.mb, tmp)
        lines = corpus.read_bytes().count(b"\n")
        result["bytes"] = corpus.stat().st_size - lines
        result["lines"] = lines
        print(f"{result['bytes'] / 1e6:.2f} MB, {lines} lines of {args.corpus.name}; model {args.model.name}; "
              f"{cores} cores", flush=True)
        from bytepiece import Tokenizer
        from bytepiece.interop.hf import export_hf
        from bytepiece.interop.sentencepiece import export_sentencepiece

        tok = Tokenizer(args.model)
        exports: dict[str, Path] = {}
        for style in STYLES:
            exports[f"sentencepiece/{style}"] = export_sentencepiece(tok, tmp / f"spm.{style}.model", style=style)
            exports[f"hf/{style}"] = export_hf(tok, tmp / f"hf.{style}.json", style=style)
        enc: dict = {}

        def step(name: str, fn) -> None:
            print(f"  {name} ...", end="", flush=True)
            t0 = time.perf_counter()
            try:
                enc[name] = fn()
                print(f" {time.perf_counter() - t0:.0f} s", flush=True)
            except Exception as e:  # a failing peer must not sink the run
                enc[name] = f"failed: {e}"
                print(" failed", flush=True)

        step("bytepiece", lambda: run_worker("ours", args.model, corpus, args.repeat, cores))
        orig = original_python()
        if orig and "original" not in args.skip:
            step("original 0.6.3", lambda: run_json(
                [orig, "-I", "-c", ORIGINAL_WORKER, str(args.model.resolve()), str(corpus), str(args.repeat),
                 str(cores), str(ALPHA)], cwd=tempfile.gettempdir()))
        else:
            enc["original 0.6.3"] = "skipped" + ("" if orig else " (set BYTEPIECE_ORIGINAL_PYTHON)")
        for style in STYLES:
            key = f"sentencepiece {style}"
            if have("sentencepiece") and "sentencepiece" not in args.skip:
                step(key, lambda s=style: run_worker("spm", exports[f"sentencepiece/{s}"], corpus, args.repeat, cores))
            else:
                enc[key] = "skipped (pip install sentencepiece)"
            key = f"hf {style}"
            if have("tokenizers") and "hf" not in args.skip:
                def hf_run(s=style):
                    r = {}
                    for n in sorted({1, cores}):
                        r.update(run_worker("hf", exports[f"hf/{s}"], corpus, args.repeat, cores,
                                            {"RAYON_NUM_THREADS": str(n), "TOKENIZERS_PARALLELISM": "true"}))
                    return r
                step(key, hf_run)
            else:
                enc[key] = "skipped (pip install tokenizers)"
        result["encode_MBps"] = enc
        print("  cold start ...", flush=True)
        result["cold_start"] = cold_start(
            args.model, exports["sentencepiece/byte_fallback"] if have("sentencepiece") else None,
            exports["hf/byte_level"] if have("tokenizers") else None, plain_python=args.plain_python)
    if args.skip_train:
        result["train"] = "skipped (--skip-train)"
    else:
        print(f"  training ({args.train_mb} MB, vocab {args.train_vocab}) ...", flush=True)
        result["train"] = train_bench(args.train_mb, args.train_vocab)
    result["load_average_at_end"] = os.getloadavg()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--mb", type=float, default=4.0, help="MB of corpus lines to encode (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions, best kept (default 3)")
    parser.add_argument("--skip-train", action="store_true", help="skip the training comparison")
    parser.add_argument("--train-mb", type=float, default=3.0, help="MB of the corpus to train on (default 3)")
    parser.add_argument("--train-vocab", type=int, default=8000)
    parser.add_argument("--skip", default="", help="comma-separated peers to skip: original,sentencepiece,hf")
    parser.add_argument("--plain-python", type=Path, default=None,
                        help="python of a plain `pip install .` env whose bytepiece script the cold start times")
    parser.add_argument("--json", type=Path, default=None, help="write the results here (default: bench_results.json "
                        "in the current directory)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the ratio table as markdown")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        fn = {"ours": worker_ours, "spm": worker_spm, "hf": worker_hf}[args.worker]
        print(json.dumps(fn(str(args.model), str(args.corpus), args.repeat, args.cores)))
        return 0
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not args.model.is_file() or not args.corpus.is_file():
        print(f"missing {args.model} or {args.corpus}: set BYTEPIECE_SHARED or pass --model/--corpus", file=sys.stderr)
        return 1
    result = measure(args)
    if __package__ in (None, ""):  # run as a script (python bench/run.py): the package is the repo's
        sys.path.insert(0, str(REPO))
    from bench.report import print_report, rows

    result["rows"] = rows(result)
    md = print_report(result)
    out = args.json or Path("bench_results.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if args.markdown:
        args.markdown.write_text(md + "\n")
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
