"""Cold start: wall time of a one-line encode in a fresh process, against peers in the same run.

    python bench/bench_coldstart.py [--python PLAIN_ENV_PYTHON] [--model M] [--runs 15] [--json out.json]

Ours is measured in a plain ``pip install .`` environment (no test extras: nothing that the
package does not need is importable there), made in a temporary directory unless
``--python`` names one. The numba cache and the model-array cache are warm (one untimed run of
every command first); each round runs every command once, in turn, so load on a shared machine
hits all of them alike; medians are reported, of wall time and of the child's CPU time (user +
system): a start is CPU-bound, so on a machine busy with other work its CPU time is what its wall
time would be on an idle core. ``--sample`` is timed as well: sampling always
runs in the numba kernels, so it shows what a start costs when numba has to be loaded. Peers: the original BytePiece 0.6.3
(``$BYTEPIECE_ORIGINAL_PYTHON``, default /work/orig/bin/python) and sentencepiece with the same
vocabulary exported, each as the equivalent ``python -c``; and, for scale, bare interpreters
importing numpy and numba.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BYTEPIECE_SHARED", REPO.parent / "shared"))
DEFAULT_MODEL = SHARED / "models" / "bytepiece_80k.model"
LINE = "hello world, 你好世界\n"


def plain_env(directory: Path) -> Path:
    """A fresh venv with this checkout installed as a user would (``pip install .``), built from
    a copy so that the build leaves nothing behind in the checkout."""
    source = directory / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "venv", str(directory / "venv")], check=True, timeout=600)
    python = directory / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
                   check=True, timeout=1800, cwd=tempfile.gettempdir())
    return python


def original_python() -> str | None:
    candidate = os.environ.get("BYTEPIECE_ORIGINAL_PYTHON", "/work/orig/bin/python")
    return candidate if Path(candidate).exists() else None


def commands(python: Path, model: Path, spm_model: Path | None) -> dict[str, list[str]]:
    bindir = python.parent
    jobs = {
        "bytepiece CLI": [str(bindir / "bytepiece"), "encode", "-m", str(model)],
        # sampling always runs in the numba kernels: what a start costs when they are needed
        "bytepiece CLI --sample": [str(bindir / "bytepiece"), "encode", "-m", str(model), "--sample", "alpha=0.1,seed=1"],
        "bytepiece python -c": [str(python), "-c", "import sys\nfrom bytepiece import Tokenizer\n"
                                f"t = Tokenizer({str(model)!r})\nfor l in sys.stdin: print(*t.encode(l.rstrip('\\n')))"],
        "python: import numpy": [str(python), "-c", "import numpy"],
        "python: import numba": [str(python), "-c", "import numba"],
        "python: nothing": [str(python), "-c", "pass"],
    }
    orig = original_python()
    if orig:
        jobs["original 0.6.3 python -c"] = [
            orig, "-I", "-c", "import sys\nfrom bytepiece import Tokenizer\n"
            f"t = Tokenizer({str(model)!r})\nfor l in sys.stdin: print(*t.encode(l.rstrip('\\n')))"]
    if spm_model is not None:
        jobs["sentencepiece python -c"] = [
            sys.executable, "-c", "import sys, sentencepiece as s\n"
            f"sp = s.SentencePieceProcessor(model_file={str(spm_model)!r})\n"
            "for l in sys.stdin: print(*sp.encode(l.rstrip('\\n')))"]
    return jobs


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, input=LINE, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(),
                          timeout=300)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, done.stdout.strip()


def measure(python: Path, model: Path, runs: int, spm_model: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYTEPIECE_", "PYTHON"))}
    jobs = commands(python, model, spm_model)
    outputs = {name: run_once(argv, env)[2] for name, argv in jobs.items()}  # warm every cache
    times: dict[str, list[float]] = {name: [] for name in jobs}
    cpu: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(runs):
        for name, argv in jobs.items():
            wall, used, _ = run_once(argv, env)
            times[name].append(wall)
            cpu[name].append(used)
    result: dict = {name: {"median_s": statistics.median(t), "runs_s": t, "median_cpu_s": statistics.median(cpu[name]),
                           "cpu_s": cpu[name]} for name, t in times.items()}
    result["outputs"] = outputs
    return result


def report(result: dict) -> list[dict]:
    cold = result["cold_start"]
    ours, ours_cpu = cold["bytepiece CLI"]["median_s"], cold["bytepiece CLI"]["median_cpu_s"]
    rows = [{"metric": "CLI one line, wall (median)", "value_s": ours, "target": "<= 0.5 s", "met": ours <= 0.5},
            {"metric": "CLI one line, CPU (median; the wall time on an idle core)", "value_s": ours_cpu,
             "target": "<= 0.5 s", "met": ours_cpu <= 0.5}]
    orig = cold.get("original 0.6.3 python -c")
    if orig:
        ratio = ours / orig["median_s"]
        rows.append({"metric": "CLI one line / original python -c (wall)", "value": ratio, "target": "<= 2.5x",
                     "met": ratio <= 2.5})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", type=Path, help="python of an existing plain environment with bytepiece installed")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"missing {args.model}: set BYTEPIECE_SHARED or pass --model", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        python = args.python or plain_env(Path(tmp))
        spm_model = None
        try:
            import sentencepiece  # noqa: F401

            from bytepiece import Tokenizer

            spm_model = Tokenizer(args.model).to_sentencepiece(Path(tmp) / "spm.model")
        except ImportError:
            pass
        result: dict = {
            "date": datetime.date.today().isoformat(),
            "machine": machine(),
            "python": platform.python_version(), "model": str(args.model), "line": LINE.strip(),
            "command": "python bench/bench_coldstart.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "load_average_at_start": os.getloadavg(),
            "cold_start": measure(python, args.model, args.runs, spm_model),
            "load_average_at_end": os.getloadavg(),
        }
    result["rows"] = report(result)
    for name, value in result["cold_start"].items():
        if name != "outputs":
            print(f"{name:28s} {value['median_s']:.3f} s wall, {value['median_cpu_s']:.3f} s CPU")
    for row in result["rows"]:
        shown = f"{row['value_s']:.3f} s" if "value_s" in row else f"{row['value']:.2f}x"
        print(f"{row['metric']}: {shown} (target {row['target']}: {'met' if row['met'] else 'MISSED'})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
