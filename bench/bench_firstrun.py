"""First run: CPU and wall time of commands with empty caches, and where the compile time goes.

    python bench/bench_firstrun.py [--runs 3] [--python ENV/bin/python] [--json out.json]
    python bench/bench_firstrun.py --trace train    # per kernel and per specialization

Each job runs in a fresh process with ``NUMBA_CACHE_DIR`` and ``BYTEPIECE_CACHE_DIR`` pointed at
new empty directories, so every kernel compiles and every model's arrays are built, as on a
fresh install; one run of every job per round, in turn, so load on a shared machine hits all of
them alike. Reported: medians of the child's CPU time (user + system, all threads: what the
wall time would be on an idle core), of the wall time and of the peak RSS, as ``/usr/bin/time
-v`` gives them. The jobs are README's main job (``bytepiece train -o sample.model``) and a
one-line sampled encode (``echo hi | bytepiece encode --sample alpha=0.1``), with a plain
one-line encode and a JSON Lines training run from standard input beside them (the warm-up then
compiles the JSON Lines parser too), and a warm-cache run of each for scale.

``--trace JOB`` runs one job in this process with a listener on numba's compile events and
prints every compilation (kernel, argument types, CPU seconds of the compiling thread, nesting depth): a kernel listed twice
was compiled twice, a ``Literal[int]`` argument is a specialization made for a constant.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import machine  # noqa: E402

TARGETS = {"train": 15.0, "encode --sample": 5.0}


def jobs(python: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, stdin)."""
    cli = str(python.parent / "bytepiece")
    return {
        "train": ([cli, "train", "-o", "sample.model"], ""),
        "encode --sample": ([cli, "encode", "--sample", "alpha=0.1"], "hi\n"),
        "encode": ([cli, "encode"], "hi\n"),
        # JSON Lines on stdin: the warm-up compiles the JSON Lines parser too
        "train jsonl": ([cli, "train", "-", "-o", "sample.model", "-v", "1000"], _jsonl_sample()),
    }


def _jsonl_sample() -> str:
    """The first 300 KB of the sample corpus, a JSON Lines document per line."""
    sample = Path(__file__).resolve().parents[1] / "data" / "sample_corpus.txt"
    lines = sample.read_text(encoding="utf-8")[:300_000].splitlines(keepends=True)
    return "".join(json.dumps({"text": line}) + "\n" for line in lines)


def run_once(argv: list[str], stdin: str, *, cold: bool, scratch: Path) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(dir=scratch))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYTEPIECE_", "NUMBA_", "PYTHON"))}
    env["NUMBA_CACHE_DIR"] = str(scratch / "numba") if not cold else tempfile.mkdtemp(dir=scratch)
    env["BYTEPIECE_CACHE_DIR"] = str(scratch / "arrays") if not cold else tempfile.mkdtemp(dir=scratch)
    start = time.perf_counter()
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          cwd=work, text=True) as child:
        child.stdin.write(stdin)
        child.stdin.close()
        err = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {err.strip()[-400:]}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall, "max_rss_mb": usage.ru_maxrss / 1024}


def measure(python: Path, runs: int, only: list[str] | None = None, warm: bool = True) -> dict:
    table = {name: job for name, job in jobs(python).items() if not only or name in only}
    out: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-firstrun-") as tmp:
        scratch = Path(tmp)
        for argv, stdin in table.values() if warm else ():  # fills the shared warm caches
            run_once(argv, stdin, cold=False, scratch=scratch)
        for _ in range(runs):
            for name, (argv, stdin) in table.items():
                for cold in (True, False) if warm else (True,):
                    key = name + (" (empty caches)" if cold else " (warm caches)")
                    got = run_once(argv, stdin, cold=cold, scratch=scratch)
                    for metric, value in got.items():
                        out.setdefault(key, {}).setdefault(metric, []).append(value)
    return {key: {metric: {"median": statistics.median(v), "runs": v} for metric, v in metrics.items()}
            for key, metrics in out.items()}


def trace(job: str, in_order: bool = False) -> None:
    """Run ``job`` here, with empty caches, printing every numba compilation: the costliest
    first, or with ``in_order`` as they finished (a kernel's nested compilations just above it)."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-firstrun-trace-"))
    os.environ["NUMBA_CACHE_DIR"] = str(scratch / "numba")  # before numba reads its configuration
    os.environ["BYTEPIECE_CACHE_DIR"] = str(scratch / "arrays")
    from numba.core import event

    records: list[tuple[str, str, float, int]] = []
    stack: list[float] = []

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append(time.thread_time())

        def on_end(self, ev):
            t0 = stack.pop()
            data = ev.data or {}
            func = getattr(data.get("dispatcher"), "py_func", None)
            name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"
            records.append((name, str(data.get("args")), time.thread_time() - t0, len(stack)))

    argv, stdin = jobs(Path(sys.executable))[job]
    os.chdir(scratch)
    if stdin:  # from a file instead: "-" is JSON Lines, an encode input plain text
        name = scratch / ("in.jsonl" if "-" in argv else "in.txt")
        name.write_text(stdin, encoding="utf-8")
        argv = [str(name) if a == "-" else a for a in argv] if "-" in argv else [*argv, str(name)]
    event.register("numba:compile", Listener())
    sys.argv = ["bytepiece", *argv[1:]]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    from bytepiece_cli.app import main

    try:
        main()
    except SystemExit:
        pass
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    top = [r for r in records if r[3] == 0]
    print(f"\n{job}: {cpu:.2f} s CPU, {wall:.2f} s wall; {len(records)} compilations, "
          f"{len(top)} top-level taking {sum(r[2] for r in top):.2f} s", file=sys.stderr)
    for name, args, seconds, depth in (records if in_order else sorted(records, key=lambda r: -r[2])):
        print(f"{seconds:6.2f} s  {'  ' * depth}{name} {args}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", type=Path, default=Path(sys.executable),
                        help="python of the environment to measure (its bin/ must hold the bytepiece command)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    names = sorted(jobs(Path(sys.executable)))
    parser.add_argument("--trace", choices=names)
    parser.add_argument("--in-order", action="store_true",
                        help="with --trace: list compilations as they finished, not costliest first")
    parser.add_argument("--only", action="append", choices=names, help="measure this job only (repeatable)")
    parser.add_argument("--cold-only", action="store_true", help="skip the warm-cache runs")
    args = parser.parse_args(argv)
    if args.trace:
        trace(args.trace, args.in_order)
        return 0
    result = {"date": datetime.date.today().isoformat(), "machine": machine(),
              "load_average_at_start": os.getloadavg(), "runs": args.runs,
              "first_run": measure(args.python, args.runs, args.only, not args.cold_only), "load_average_at_end": os.getloadavg()}
    rows = []
    for name, limit in TARGETS.items():
        if name + " (empty caches)" not in result["first_run"]:
            continue
        cpu = result["first_run"][name + " (empty caches)"]["cpu_s"]["median"]
        rows.append({"metric": f"{name}, empty caches, CPU (median)", "value_s": cpu, "target": f"<= {limit:g} s",
                     "met": cpu <= limit})
    result["rows"] = rows
    for key, metrics in result["first_run"].items():
        print(f"{key:34s} {metrics['cpu_s']['median']:6.2f} s CPU  {metrics['wall_s']['median']:6.2f} s wall  "
              f"{metrics['max_rss_mb']['median']:6.0f} MB")
    for row in rows:
        print(f"{row['metric']}: {row['value_s']:.2f} s (target {row['target']}: {'met' if row['met'] else 'MISSED'})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
