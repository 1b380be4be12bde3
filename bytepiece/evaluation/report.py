"""Rendering evaluation results: rich tables and markdown tables (the plot: :mod:`.plot`).

Every table is first built as plain data (:class:`TableData`: title, headers, rows of strings),
so the terminal and the markdown show exactly the same numbers, and :func:`fit` splits a wide
table into parts that each fit 80 columns (the key columns repeat in every part).

``python -m bytepiece.evaluation.docsgen RESULTS.json --docs docs/evaluation.md`` rewrites the
results section of a documentation page from the JSON of ``bytepiece eval run`` (see
:mod:`.docsgen`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import PurePath

from ..continuation.healing import STRATEGIES, TOKEN_STRATEGIES
from ..errors import InputError
from .tables import TableData, intrinsic_tables, num, pct

WIDTH = 80
LMS = ("det", "sampled")
NEURAL_LMS = ("transformer-det", "transformer-sampled")  # bytepiece eval run --lm transformer
LM_SHORT = {"det": "d", "sampled": "s", "transformer-det": "td", "transformer-sampled": "ts"}
LM_LABEL = {"det": "det", "sampled": "samp", "transformer-det": "tf det", "transformer-sampled": "tf samp"}
PARTS = (("all", "all"), ("boundary", "bnd"), ("mid_token", "mid"))
STRATEGY_ORDER = (*STRATEGIES, "exact")  # "exact": results written before the exact strategies were named

# The four conditions of the first harness; kept so older code and JSON read the same labels.
CONDITION_LABELS = {
    "naive/det": "naive, det LM",
    "healing/det": "healing, det LM",
    "naive/sampled": "naive, sampled LM",
    "healing/sampled": "healing, sampled LM",
}


def _name(path: str, public: bool) -> str:
    return PurePath(path).name if public else path


def lms_of(res: dict) -> tuple[str, ...]:
    """The LMs of a result: the two KN models, then the two transformers when the run had them."""
    bpb = res["tokenizers"][0]["pooled"]["bits_per_byte"] if res["tokenizers"] else {}
    return LMS + tuple(lm for lm in NEURAL_LMS if lm in bpb)


def _transformer_caption(res: dict) -> str:
    t = res["config"].get("transformer")
    if not t or "transformer" not in res["config"].get("lms", ()):
        return ""
    return (f" tf: a transformer ({t['layers']} layers, width {t['width']}, {t['heads']} heads, {t['context']} "
            f"positions) trained on {t['train_bytes']:,} bytes of text ({t['epochs']} epochs, a fresh sample per "
            f"epoch for tf samp), seed {t['seed']}.")


def strategies_of(res: dict) -> list[str]:
    """Strategies present in a result, in the harness's order (older JSON: naive, healing)."""
    found = {c.split("/")[0] for t in res["tokenizers"] for c in t["pooled"]["continuation"]["conditions"]}
    return [s for s in STRATEGY_ORDER if s in found] + sorted(found - set(STRATEGY_ORDER))


def markdown_width(headers: list[str], rows: list[list[str]]) -> int:
    """Characters of the longest line of the markdown table (``| a | b |``)."""
    return max(sum(len(c) for c in row) + 3 * len(row) + 1 for row in [headers, *rows])


def aligned_width(headers: list[str], rows: list[list[str]]) -> int:
    """Characters of a table whose columns are aligned (a terminal table): the widest cell of
    each column, plus the borders and padding."""
    return sum(max(len(c) for c in col) for col in zip(headers, *rows)) + 3 * len(headers) + 1


def fit(table: TableData, width: int = WIDTH, *, aligned: bool = False) -> list[TableData]:
    """Split ``table`` by columns into parts whose markdown lines fit ``width`` characters (with
    ``aligned``: parts that fit ``width`` once every column is as wide as its widest cell)."""
    measure = aligned_width if aligned else markdown_width
    keys = list(range(table.keys))
    rest = list(range(table.keys, len(table.headers)))
    parts: list[list[int]] = []
    current: list[int] = []
    for col in rest:
        trial = keys + current + [col]
        if current and measure([table.headers[i] for i in trial], [[r[i] for i in trial] for r in table.rows]) > width:
            parts.append(current)
            current = []
        current.append(col)
    if current or not parts:
        parts.append(current)
    if len(parts) == 1:
        return [table]
    parts = _balanced(table, keys, rest, len(parts), width, measure) or parts
    out = []
    for n, cols in enumerate(parts, 1):
        idx = keys + cols
        out.append(replace(table, title=f"{table.title} ({n}/{len(parts)})", headers=[table.headers[i] for i in idx],
                           rows=[[r[i] for i in idx] for r in table.rows],
                           caption=table.caption if n == len(parts) else ""))
    return out


def _balanced(table: TableData, keys: list[int], rest: list[int], k: int, width: int,
              measure: Callable[[list[str], list[list[str]]], int] = markdown_width) -> list[list[int]] | None:
    """``rest`` in ``k`` contiguous groups of nearly equal size, if each still fits."""
    sizes = [len(rest) // k + (1 if i < len(rest) % k else 0) for i in range(k)]
    parts, at = [], 0
    for s in sizes:
        cols = rest[at : at + s]
        at += s
        idx = keys + cols
        if measure([table.headers[i] for i in idx], [[r[i] for i in idx] for r in table.rows]) > width:
            return None
        parts.append(cols)
    return parts


# -- tables -----------------------------------------------------------------------------------------
def compression_table(res: dict) -> TableData:
    files = [h["name"] for h in res["heldout"]]
    headers = ["tokenizer", "vocab"] + [f"{f} B/tok" for f in files] + [f"{f} ch/tok" for f in files] + ["all B/tok"]
    rows = []
    for t in res["tokenizers"]:
        row = [t["name"], f"{t['vocab_size']:,}"]
        row += [num(t["heldout"][f]["compression"]["bytes_per_token"]) for f in files]
        row += [num(t["heldout"][f]["compression"]["chars_per_token"]) for f in files]
        row.append(num(t["pooled"]["compression"]["bytes_per_token"]))
        rows.append(row)
    return TableData("Compression of the held-out texts (UTF-8 bytes / characters per token; higher is better)",
                     headers, rows)


def bpb_table(res: dict) -> TableData:
    files = [h["name"] for h in res["heldout"]]
    order = res["config"]["order"]
    lms = lms_of(res)
    headers = ["tokenizer"] + [f"{f} {LM_LABEL[lm]}" for lm in lms for f in files] + [f"all {LM_LABEL[lm]}" for lm in lms]
    rows = []
    for t in res["tokenizers"]:
        row = [t["name"]]
        for lm in lms:
            row += [num(t["heldout"][f]["bits_per_byte"][lm]["bits_per_byte"], 3) for f in files]
        row += [num(t["pooled"]["bits_per_byte"][lm]["bits_per_byte"], 3) for lm in lms]
        rows.append(row)
    cfg = res["config"]
    tokens = ", ".join(f"{t['name']} {t['lm']['det']['train_tokens']:,} / {t['lm']['sampled']['train_tokens']:,}"
                       for t in res["tokenizers"])
    which = f"token {order}-gram KN LM" + (" and transformer (tf)" if len(lms) > len(LMS) else "")
    return TableData(f"Bits per byte of the held-out texts, {which} (lower is better)", headers, rows,
                     caption=f"det: LM trained on the Viterbi segmentation; samp: on {cfg['passes']} sampled "
                             f"segmentation pass(es), alpha={cfg['alpha_train']}; both score the Viterbi tokens. "
                             f"LM training tokens (det / samp): {tokens}.{_transformer_caption(res)}")


_METRICS = {
    "next_char": ("Next-character exact match (%, greedy; higher is better)", pct),
    "next_bytes": ("Next {nb} bytes exact match (%, greedy; higher is better)", pct),
    "logloss_bits": ("Log-loss of the true next character (bits; lower is better)", num),
    "matched_bytes": ("Bytes matched before the first error (mean; higher is better)", num),
}


def strategy_table(res: dict, metric: str, file: str | None = None) -> TableData:
    """Rows tokenizer x strategy; columns LM x cut type. ``file=None`` pools the held-out files."""
    title, fmt = _METRICS[metric]
    title = title.format(nb=res["config"]["target_bytes"])
    lms = lms_of(res)
    headers = ["tokenizer", "strategy"] + [f"{LM_SHORT[lm]}:{short}" for lm in lms for _, short in PARTS]
    rows, groups = [], []
    for t in res["tokenizers"]:
        c = t["pooled"]["continuation"] if file is None else t["heldout"][file]["continuation"]
        for s in strategies_of(res):
            row = [t["name"], s]
            for lm in lms:
                cell = c["conditions"].get(f"{s}/{lm}")
                row += [fmt(cell[part].get(metric)) if cell else "-" for part, _ in PARTS]
            rows.append(row)
        groups.append(len(rows) - 1)
    where = "all held-out files" if file is None else file
    return TableData(f"{title}, {where}", headers, rows, groups=groups[:-1], keys=2,
                     caption="d: LM trained on Viterbi tokens, s: on sampled segmentations; all / bnd / mid: every "
                             "cut, cuts on a token boundary, cuts inside a token"
                             + ("; td, ts: the transformers, on "
                                f"{res['config'].get('transformer_cuts')} of each file's cuts (spread over them)"
                                if len(lms) > len(LMS) else ""))


def cuts_table(res: dict) -> TableData:
    """How many cuts, and how many of them fall inside a token."""
    files = [h["name"] for h in res["heldout"]]
    headers = ["tokenizer", "cuts"] + [f"{f} mid %" for f in files] + ["all mid %"]
    rows = []
    for t in res["tokenizers"]:
        c = t["pooled"]["continuation"]
        rows.append([t["name"], f"{c['cuts']:,}"] + [pct(t["heldout"][f]["continuation"]["mid_token_fraction"])
                                                    for f in files] + [pct(c["mid_token_fraction"])])
    return TableData("Continuation cuts and the share that falls inside a token (%)", headers, rows)


def time_table(res: dict) -> TableData:
    """Milliseconds per cut of each strategy (rows) for each tokenizer (columns)."""
    toks = res["tokenizers"]
    headers = ["strategy"] + [t["name"] for t in toks]
    rows = []
    for s in strategies_of(res):
        row = [s]
        for t in toks:
            c = t["pooled"]["continuation"]["conditions"]
            secs = [c.get(f"{s}/{lm}", {}).get("seconds_per_cut") for lm in LMS]
            row.append("-" if None in secs else f"{1000 * sum(secs) / len(secs):.2f}")
        rows.append(row)
    return TableData("Milliseconds per cut and LM, by strategy", headers, rows,
                     caption="greedy continuation plus the log-loss of the next character, one thread, mean of the "
                             "det and sampled LMs")


def files_table(res: dict, lm: str) -> TableData:
    """Per file and tokenizer: next-character accuracy at boundary / mid-token cuts per strategy."""
    files = [h["name"] for h in res["heldout"]]
    strategies = strategies_of(res)
    headers = ["tokenizer", "file", "mid %"] + strategies
    rows, groups = [], []
    for t in res["tokenizers"]:
        for f in files:
            c = t["heldout"][f]["continuation"]
            row = [t["name"], f, pct(c["mid_token_fraction"])]
            for s in strategies:
                cell = c["conditions"].get(f"{s}/{lm}")
                row.append("-" if cell is None else
                           f"{pct(cell['boundary']['next_char'])}/{pct(cell['mid_token']['next_char'])}")
            rows.append(row)
        groups.append(len(rows) - 1)
    return TableData(f"Next-character match per held-out file, {lm} LM (%, boundary/mid-token cuts)", headers, rows,
                     groups=groups[:-1], keys=2)


def exact_gap_table(res: dict) -> TableData:
    """Each exact strategy minus naive and minus the best heuristic of each cell, on the same cuts:
    where a heuristic beats the byte-level distribution, and by how much."""
    headers = ["tokenizer", "LM", "strategy"] + [f"-naive {short}" for _, short in PARTS] + \
              [f"-best {short}" for _, short in PARTS]
    rows, groups = [], []
    for t in res["tokenizers"]:
        c = t["pooled"]["continuation"]["conditions"]
        for lm in lms_of(res):
            for s in (s for s in strategies_of(res) if s.startswith("exact")):
                ex = c.get(f"{s}/{lm}")
                if ex is None:
                    continue
                row = [t["name"], lm, s]
                for versus in ("naive", "best"):
                    for part, _ in PARTS:
                        rivals = [c[f"{h}/{lm}"][part]["next_char"] for h in TOKEN_STRATEGIES
                                  if f"{h}/{lm}" in c and (versus == "best" or h == "naive")]
                        rivals = [x for x in rivals if x is not None]
                        mine = ex[part]["next_char"]
                        row.append("-" if mine is None or not rivals else f"{100 * (mine - max(rivals)):+.1f}")
                rows.append(row)
            if rows:
                groups.append(len(rows) - 1)
    return TableData("Each exact strategy minus naive and minus the best heuristic of the same cuts, next-character "
                     "match (percentage points; negative: a heuristic is ahead)", headers, rows, keys=3,
                     groups=sorted(set(groups))[:-1],
                     caption="best: the most accurate of naive, healing, healing-d1, healing-3 and soft in each "
                             "column; all / bnd / mid: every cut, cuts on a token boundary, cuts inside a token")


def boundary_table(res: dict) -> TableData:
    """exact-canonical split by where a token starts: how much of its next-byte mass says "a new
    token starts at the cut", and how accurate it is when told so."""
    headers = ["tokenizer", "LM", "naive bnd", "canon bnd", "told bnd", "P(start) bnd", "P(start) mid"]
    rows = []
    for t in res["tokenizers"]:
        c = t["pooled"]["continuation"]["conditions"]
        for lm in lms_of(res):
            ex, naive = c.get(f"exact-canonical/{lm}"), c.get(f"naive/{lm}")
            if ex is None or "boundary_mass" not in ex["all"]:
                continue
            rows.append([t["name"], lm, pct(naive["boundary"]["next_char"]) if naive else "-",
                         pct(ex["boundary"]["next_char"]), pct(ex["boundary"].get("next_char_given_boundary")),
                         pct(ex["boundary"].get("boundary_mass")), pct(ex["mid_token"].get("boundary_mass"))])
    return TableData("Where exact-canonical puts the next token: next-character match (%) at cuts on a token "
                     "boundary, and its mass on a token starting at the cut (%)", headers, rows, keys=2,
                     caption="told bnd: the same distribution restricted to the sequences whose next token starts "
                             "at the cut (what naive assumes); P(start): the share of its next-byte mass on those "
                             "sequences, at boundary and at mid-token cuts")


def generic_table(res: dict) -> TableData:
    """The exact strategies through the generic LM path (the det LM behind next_token_logprobs)."""
    headers = ["tokenizer", "strategy", "cuts", "next char %", "same %", "max dlog", "ms generic", "ms kernel"]
    rows = []
    for t in res["tokenizers"]:
        g = t["pooled"]["continuation"].get("generic")
        if not g:
            continue
        for s, cell in g["strategies"].items():
            rows.append([t["name"], s, f"{g['cuts']:,}", pct(cell["next_char"]), pct(cell["same_continuation"]),
                         f"{cell['max_logloss_diff_bits']:.1e}", f"{1000 * cell['seconds_per_cut']:.0f}",
                         f"{1000 * cell['kernel_seconds_per_cut']:.1f}"])
    return TableData("The exact strategies through the generic LM path, first cuts of each file", headers, rows,
                     keys=2, caption="the det LM seen only through next_token_logprobs (as any other LM is): next-"
                     "character match, greedy continuations identical to the Kneser-Ney kernels' (same %), the "
                     "largest log-loss difference from them (bits), milliseconds per cut of each path")


def sampling_table(res: dict) -> TableData:
    alphas = res["config"]["alphas"]
    headers = ["tokenizer", "Viterbi B/tok"] + [f"a={a:g} chg %" for a in alphas] + [f"a={a:g} B/tok" for a in alphas]
    rows = []
    for t in res["tokenizers"]:
        p = t["pooled"]
        row = [t["name"], num(p["compression"]["bytes_per_token"])]
        row += [pct(s["changed_fraction"]) for s in p["sampling"]]
        row += [num(s["bytes_per_token"]) for s in p["sampling"]]
        rows.append(row)
    return TableData("Sampling profile, all held-out files: tokens not in the Viterbi segmentation (chg), compression",
                     headers, rows)


def heldout_table(res: dict, *, public: bool = False) -> TableData:
    headers = ["file", "source", "bytes", "chars", "lines", "source lines in training", "sha256"]
    rows = [[h["name"], _name(h["source"], public), f"{h['bytes']:,}", f"{h['chars']:,}", f"{h['lines']:,}",
             f"{h['source_lines_seen_in_training']:,} / {h['source_lines']:,}", h["sha256"][:12]]
            for h in res["heldout"]]
    return TableData("Held-out slices (no distinctive training line in any of them)", headers, rows)


def all_tables(res: dict, *, per_file: bool = True, width: int | None = WIDTH, aligned: bool = False) -> list[TableData]:
    out = [compression_table(res), bpb_table(res), cuts_table(res), time_table(res)]
    out += [strategy_table(res, m) for m in ("next_char", "next_bytes", "logloss_bits")]
    if any(c.startswith("exact") for t in res["tokenizers"] for c in t["pooled"]["continuation"]["conditions"]):
        out.append(exact_gap_table(res))
    conditions = [v for t in res["tokenizers"] for v in t["pooled"]["continuation"]["conditions"].values()]
    if any("boundary_mass" in v["all"] for v in conditions):
        out.append(boundary_table(res))
    if any(t["pooled"]["continuation"].get("generic") for t in res["tokenizers"]):
        out.append(generic_table(res))
    if per_file and len(res["heldout"]) > 1:
        out += [files_table(res, lm) for lm in LMS]
    out.append(sampling_table(res))
    out += intrinsic_tables(res)
    if width is None:
        return out
    return [part for t in out for part in fit(t, width, aligned=aligned)]


# -- rendering --------------------------------------------------------------------------------------
def to_rich(table: TableData):
    from rich.table import Table

    t = Table(title=table.title, caption=table.caption or None, title_justify="left", caption_justify="left")
    for i, h in enumerate(table.headers):
        # a value wider than the terminal (a long path) is folded onto more lines, never cut off
        t.add_column(h, justify="left" if i < table.keys else "right", no_wrap=i < table.keys, overflow="fold")
    marks = set(table.groups)
    for i, row in enumerate(table.rows):
        t.add_row(*row, end_section=i in marks)
    return t


def to_markdown(table: TableData) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [wrap_markdown(f"**{esc(table.title)}**"), "", "| " + " | ".join(esc(h) for h in table.headers) + " |",
             "| " + " | ".join("---" if i < table.keys else "---:" for i in range(len(table.headers))) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", wrap_markdown(f"_{table.caption}_")]
    return "\n".join(lines) + "\n"


def wrap_markdown(text: str) -> str:
    """Prose lines of the markdown kept to the page width (a paragraph renders the same)."""
    import textwrap

    return textwrap.fill(text, width=WIDTH + 16, break_long_words=False, break_on_hyphens=False)


def markdown_report(res: dict, *, public: bool = False) -> str:
    return "\n".join(to_markdown(t) for t in [*fit(heldout_table(res, public=public)), *all_tables(res)])


def summary_lines(res: dict) -> list[str]:
    """A few plain lines for the end of a run: timing and next-character accuracy over all cuts."""
    out = [f"total time {res['timings']['total']:.1f} s"]
    for t in res["tokenizers"]:
        c = t["pooled"]["continuation"]
        parts = [f"{cond} {pct(v['all']['next_char'])}" for cond, v in c["conditions"].items()]
        out.append(f"{t['name']} (vocab {t['vocab_size']:,}, {pct(c['mid_token_fraction'])}% mid-token cuts): "
                   "next-char accuracy % " + ", ".join(parts))
    return out


def vocabulary_notes(res: dict) -> list[str]:
    """One line per trained tokenizer whose vocabulary came out smaller than asked: the numbers
    in every table are for the size it has, not the size on its name."""
    out = []
    for t in res["tokenizers"]:
        asked = t.get("requested_vocab_size")
        if asked is None or t["vocab_size"] >= asked:
            continue
        why = "; ".join(t.get("notices") or []) or "redundant pieces were pruned"
        out.append(f"{t['name']}: asked for a vocabulary of {asked:,}, got {t['vocab_size']:,} ({why})")
    return out


__all__ = ["CONDITION_LABELS", "TableData", "all_tables", "boundary_table", "exact_gap_table", "fit", "generic_table",
           "heldout_table", "load_results", "markdown_report",
           "strategies_of", "strategy_table", "summary_lines", "to_markdown", "to_rich", "vocabulary_notes"]


#: the format of ``bytepiece eval run --json``
RESULTS_FORMAT = "bytepiece-eval/1"
MAX_RESULTS_BYTES = 256 << 20


def load_results(path: str | os.PathLike) -> dict:
    """The results of ``bytepiece eval run --json`` read from ``path``, checked by rendering
    every table once: a file that is not such JSON, or a damaged or partial one, is one
    ``InputError`` that says so (never a ``KeyError`` from deep inside a table)."""
    import json

    from ..io.read import read_limited

    data = read_limited(path, limit=MAX_RESULTS_BYTES, what="results file", error=InputError)
    try:
        res = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InputError(f"{path} is not a JSON file ({e})") from None
    if not isinstance(res, dict) or res.get("format") != RESULTS_FORMAT:
        raise InputError(f"{path} is not the JSON of bytepiece eval run --json")
    try:
        heldout_table(res)
        all_tables(res)
        summary_lines(res)
        vocabulary_notes(res)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
        what = f"no {e.args[0]!r}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise InputError(f"{path} is incomplete or damaged ({what}); write it again with bytepiece eval run "
                         "--json") from None
    return res

