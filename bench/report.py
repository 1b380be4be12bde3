"""The comparison table of ``bench/run.py``: rows of ours against each peer with ratios (> 1:
bytepiece better), printed as a rich table and returned as markdown."""

from __future__ import annotations

from pathlib import Path

from bench.run import ALPHA, STYLES


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def rows(result: dict) -> list[dict]:
    """Comparison rows: metric, ours, theirs, ratio (> 1: bytepiece better), target."""
    enc = result["encode_MBps"]
    cores = result["cores"]
    out: list[dict] = []

    def add(metric, ours, peer, theirs, unit, target=None, higher_is_better=True):
        if ours is None:
            return
        ratio = None
        if isinstance(theirs, (int, float)) and theirs:
            ratio = ours / theirs if higher_is_better else theirs / ours
        out.append({"metric": metric, "ours": ours, "peer": peer, "theirs": theirs if ratio else "skipped",
                    "unit": unit, "ratio": ratio, "target": target,
                    "met": None if ratio is None or target is None else ratio >= target})

    ours = enc.get("bytepiece")
    o = lambda k: _get(ours, k)  # noqa: E731
    for tag, label in (("det", "deterministic"), ("sample", f"sampling alpha={ALPHA}")):
        one, allc = o(f"{tag}/batch_1"), o(f"{tag}/batch_{cores}")
        add(f"{label}, 1 thread", one, "original 0.6.3 (per line)", _get(enc, "original 0.6.3", f"{tag}/per_line_1"),
            "MB/s", 10.0 if tag == "det" else None)
        add(f"{label}, {cores} cores", allc, f"original 0.6.3 (Pool {cores})",
            _get(enc, "original 0.6.3", f"{tag}/pool_{cores}"), "MB/s")
        for style in STYLES:
            target = None
            if style == "byte_fallback":
                target = 2.0 if tag == "det" else 3.0
            add(f"{label}, 1 thread", one, f"sentencepiece {style}", _get(enc, f"sentencepiece {style}", f"{tag}/batch_1"),
                "MB/s", target)
            add(f"{label}, {cores} cores", allc, f"sentencepiece {style}",
                _get(enc, f"sentencepiece {style}", f"{tag}/batch_{cores}"), "MB/s")
        if tag == "det":
            for style in STYLES:
                add(f"{label}, 1 thread", one, f"hf tokenizers {style}", _get(enc, f"hf {style}", "det/batch_1"), "MB/s")
                add(f"{label}, {cores} cores", allc, f"hf tokenizers {style}", _get(enc, f"hf {style}", f"det/batch_{cores}"),
                    "MB/s")
        if tag == "det":
            add(f"{label}, lists, 1 thread", o(f"{tag}/lists_1"), "sentencepiece byte_fallback (lists)",
                _get(enc, "sentencepiece byte_fallback", f"{tag}/batch_1"), "MB/s", 2.0)
        add(f"{label}, per-line encode() loop", o(f"{tag}/per_line_1"), "original 0.6.3 (per line)",
            _get(enc, "original 0.6.3", f"{tag}/per_line_1"), "MB/s")
    add("sampling / deterministic, 1 thread", o("sample/batch_1"), "bytepiece deterministic", o("det/batch_1"), "MB/s", 0.8)
    if cores >= 2:
        add("encode_batch 2 threads / 1 thread", o("det/batch_2"), "bytepiece 1 thread", o("det/batch_1"), "MB/s", 1.8)
    cold = result.get("cold_start", {})
    ours_cold = _get(cold, "bytepiece", "median_s")
    for peer in ("original 0.6.3", "sentencepiece", "hf tokenizers"):
        add("CLI cold start, one line", ours_cold, f"{peer} (python -c)", _get(cold, peer, "median_s"), "s",
            1 / 2.5 if peer == "original 0.6.3" else None, higher_is_better=False)
    train = result.get("train")
    if isinstance(train, dict):
        by = {r["trainer"]: r for r in train.get("results", []) if r.get("status") == "ok"}
        mine = by.get("bytepiece (ours)")
        for peer in ("bytepiece 0.6.3", "sentencepiece unigram"):
            add(f"training time ({train.get('train_bytes', 0) / 1e6:.1f} MB, vocab {train.get('vocab')})",
                _get(mine, "wall_s"), peer, _get(by.get(peer), "wall_s"), "s", higher_is_better=False)
            add("training peak RSS", _get(mine, "peak_rss_mb"), peer, _get(by.get(peer), "peak_rss_mb"), "MB",
                higher_is_better=False)
    return out


def print_report(result: dict) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bytepiece vs peers, {result['date']}, {result['bytes'] / 1e6:.1f} MB of "
                        f"{Path(result['corpus']).name}, model {Path(result['model']).name} "
                        f"(ratio > 1: bytepiece faster / smaller)")
    for col in ("metric", "bytepiece", "peer", "peer value", "ratio", "target"):
        table.add_column(col, justify="left" if col in ("metric", "peer") else "right")
    for r in rows(result):
        fmt = (lambda v: f"{v:.1f}") if r["unit"] != "s" else (lambda v: f"{v:.3f}")
        theirs = fmt(r["theirs"]) + " " + r["unit"] if isinstance(r["theirs"], (int, float)) else r["theirs"]
        target = "" if r["target"] is None else (f">= {r['target']:g}x " + ("ok" if r["met"] else "MISSED"))
        table.add_row(r["metric"], f"{fmt(r['ours'])} {r['unit']}", r["peer"], theirs,
                      f"{r['ratio']:.2f}x" if r["ratio"] else "-", target)
    console = Console(width=200)
    console.print(table)
    cold = _get(result, "cold_start", "bytepiece", "median_s")
    if cold is not None:
        console.print(f"bytepiece CLI cold start (echo hello | bytepiece encode -m MODEL, median of 5): {cold:.3f} s "
                      f"(target <= 0.5 s: {'ok' if cold <= 0.5 else 'MISSED'}; a plain pip-install env is "
                      f"measured by bench/bench_coldstart.py)")
    skipped = [k for k, v in result["encode_MBps"].items() if isinstance(v, str)]
    if skipped:
        console.print("skipped/failed: " + "; ".join(f"{k}: {result['encode_MBps'][k]}" for k in skipped))
    if isinstance(result.get("train"), str):
        console.print(f"training: {result['train']}")
    console.print(f"load average at start {result['load_average_at_start']}, at end {result['load_average_at_end']}")
    return markdown_table(result)


def markdown_table(result: dict) -> str:
    lines = ["| metric | bytepiece | peer | peer value | ours/theirs | target |", "| --- | ---: | --- | ---: | ---: | --- |"]
    for r in rows(result):
        fmt = (lambda v: f"{v:.1f}") if r["unit"] != "s" else (lambda v: f"{v:.3f}")
        theirs = fmt(r["theirs"]) + " " + r["unit"] if isinstance(r["theirs"], (int, float)) else r["theirs"]
        target = "" if r["target"] is None else (f">= {r['target']:g}x " + ("met" if r["met"] else "**missed**"))
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "-"
        lines.append(f"| {r['metric']} | {fmt(r['ours'])} {r['unit']} | {r['peer']} | {theirs} | {ratio} | {target} |")
    return "\n".join(lines)
