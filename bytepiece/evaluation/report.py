"""Rendering evaluation results: rich tables, markdown tables and an optional plot.

Every table is first built as plain data (:class:`TableData`: title, headers, rows of strings),
so the terminal and the markdown show exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ..errors import InputError

CONDITION_LABELS = {
    "naive/det": "naive, det LM",
    "healing/det": "healing, det LM",
    "naive/sampled": "naive, sampled LM",
    "healing/sampled": "healing, sampled LM",
}


@dataclass
class TableData:
    title: str
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    groups: list[int] = field(default_factory=list)  # row indices after which a separator goes


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def compression_table(res: dict) -> TableData:
    files = [h["name"] for h in res["heldout"]]
    headers = ["tokenizer", "vocab"] + [f"{f} B/tok" for f in files] + [f"{f} ch/tok" for f in files] + ["all B/tok"]
    rows = []
    for t in res["tokenizers"]:
        row = [t["name"], f"{t['vocab_size']:,}"]
        row += [_f(t["heldout"][f]["compression"]["bytes_per_token"]) for f in files]
        row += [_f(t["heldout"][f]["compression"]["chars_per_token"]) for f in files]
        row.append(_f(t["pooled"]["compression"]["bytes_per_token"]))
        rows.append(row)
    return TableData("Compression of the held-out texts (UTF-8 bytes / characters per token; higher is better)",
                     headers, rows)


def bpb_table(res: dict) -> TableData:
    files = [h["name"] for h in res["heldout"]]
    order = res["config"]["order"]
    headers = ["tokenizer", "LM tokens det", "LM tokens samp"] + [f"{f} det" for f in files] + \
              [f"{f} samp" for f in files] + ["all det", "all samp"]
    rows = []
    for t in res["tokenizers"]:
        row = [t["name"], f"{t['lm']['det']['train_tokens']:,}", f"{t['lm']['sampled']['train_tokens']:,}"]
        for lm in ("det", "sampled"):
            row += [_f(t["heldout"][f]["bits_per_byte"][lm]["bits_per_byte"], 3) for f in files]
        row += [_f(t["pooled"]["bits_per_byte"][lm]["bits_per_byte"], 3) for lm in ("det", "sampled")]
        rows.append(row)
    cfg = res["config"]
    return TableData(f"Bits per byte of the held-out texts, token {order}-gram KN LM (lower is better)", headers, rows,
                     caption=f"det: LM trained on the Viterbi segmentation; samp: on {cfg['passes']} sampled "
                             f"segmentation pass(es), alpha={cfg['alpha_train']}; both score the Viterbi tokens")


def continuation_table(res: dict, file: str | None = None) -> TableData:
    """Rows tokenizer x condition; ``file=None`` pools all held-out files."""
    cfg = res["config"]
    nb = cfg["target_bytes"]
    headers = ["tokenizer", "condition", "cuts", "mid-token %", "char@all", "char@boundary", "char@mid",
               f"{nb}B@all", f"{nb}B@boundary", f"{nb}B@mid", "matched B"]
    rows, groups = [], []
    for t in res["tokenizers"]:
        c = t["pooled"]["continuation"] if file is None else t["heldout"][file]["continuation"]
        for cond, label in CONDITION_LABELS.items():
            if cond not in c["conditions"]:
                continue
            s = c["conditions"][cond]
            rows.append([t["name"], label, str(c["cuts"]), _pct(c["mid_token_fraction"]), _pct(s["all"]["next_char"]),
                         _pct(s["boundary"]["next_char"]), _pct(s["mid_token"]["next_char"]),
                         _pct(s["all"]["next_bytes"]), _pct(s["boundary"]["next_bytes"]),
                         _pct(s["mid_token"]["next_bytes"]), _f(s["all"]["matched_bytes"])])
        groups.append(len(rows) - 1)
    where = "all held-out files" if file is None else file
    return TableData(f"Continuation, {where}: greedy exact match of the next character / next {nb} bytes (%)",
                     headers, rows, groups=groups[:-1],
                     caption=f"healing backs off {cfg['heal_k']} token(s); matched B = mean common prefix of the "
                             "greedy continuation and the text, in bytes (all cuts)")


def continuation_files_table(res: dict) -> TableData:
    """Per file and tokenizer: mid-token share and next-char accuracy (boundary / mid) per condition."""
    files = [h["name"] for h in res["heldout"]]
    headers = ["tokenizer", "file", "mid-token %"] + [f"{lab} (b / m)" for lab in CONDITION_LABELS.values()]
    rows, groups = [], []
    for t in res["tokenizers"]:
        for f in files:
            c = t["heldout"][f]["continuation"]
            row = [t["name"], f, _pct(c["mid_token_fraction"])]
            for cond in CONDITION_LABELS:
                s = c["conditions"].get(cond)
                row.append("-" if s is None else f"{_pct(s['boundary']['next_char'])} / {_pct(s['mid_token']['next_char'])}")
            rows.append(row)
        groups.append(len(rows) - 1)
    return TableData("Next-character accuracy per held-out file (%; boundary cuts / mid-token cuts)", headers, rows,
                     groups=groups[:-1])


def sampling_table(res: dict) -> TableData:
    alphas = res["config"]["alphas"]
    headers = ["tokenizer", "Viterbi B/tok"] + [f"a={a:g} changed %" for a in alphas] + [f"a={a:g} B/tok" for a in alphas]
    rows = []
    for t in res["tokenizers"]:
        p = t["pooled"]
        row = [t["name"], _f(p["compression"]["bytes_per_token"])]
        row += [_pct(s["changed_fraction"]) for s in p["sampling"]]
        row += [_f(s["bytes_per_token"]) for s in p["sampling"]]
        rows.append(row)
    return TableData("Sampling profile, all held-out files: tokens not in the Viterbi segmentation, compression",
                     headers, rows)


def all_tables(res: dict, *, per_file: bool = True) -> list[TableData]:
    out = [compression_table(res), bpb_table(res), continuation_table(res)]
    if per_file and len(res["heldout"]) > 1:
        out.append(continuation_files_table(res))
    out.append(sampling_table(res))
    return out


def heldout_table(res: dict) -> TableData:
    headers = ["file", "source", "bytes", "chars", "lines", "source lines seen in training", "sha256"]
    rows = [[h["name"], h["source"], f"{h['bytes']:,}", f"{h['chars']:,}", f"{h['lines']:,}",
             f"{h['source_lines_seen_in_training']:,} / {h['source_lines']:,}", h["sha256"][:16]]
            for h in res["heldout"]]
    return TableData("Held-out slices (no distinctive training line in any of them)", headers, rows)


# -- rendering ----------------------------------------------------------------------------------
def to_rich(table: TableData):
    from rich.table import Table

    t = Table(title=table.title, caption=table.caption or None, title_justify="left", caption_justify="left")
    for i, h in enumerate(table.headers):
        t.add_column(h, justify="left" if i < 2 else "right", no_wrap=i < 2)
    marks = set(table.groups)
    for i, row in enumerate(table.rows):
        t.add_row(*row, end_section=i in marks)
    return t


def to_markdown(table: TableData) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [f"**{esc(table.title)}**", "", "| " + " | ".join(esc(h) for h in table.headers) + " |",
             "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(table.headers))) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", f"_{table.caption}_"]
    return "\n".join(lines) + "\n"


def markdown_report(res: dict) -> str:
    return "\n".join(to_markdown(t) for t in [heldout_table(res), *all_tables(res)])


# -- plot ---------------------------------------------------------------------------------------
def plot(res: dict, path) -> None:
    """Compression and next-character accuracy against vocabulary size (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib; install it with pip install 'bytepiece-tk[plot]' "
                         "(or pip install matplotlib)") from None
    toks = sorted(res["tokenizers"], key=lambda t: t["vocab_size"])
    xs = [t["vocab_size"] for t in toks]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    for h in res["heldout"]:
        ax.plot(xs, [t["heldout"][h["name"]]["compression"]["bytes_per_token"] for t in toks], "o-", label=h["name"])
    ax.set_title("compression")
    ax.set_ylabel("UTF-8 bytes per token")
    ax = axes[1]
    ax.plot(xs, [t["pooled"]["continuation"]["mid_token_fraction"] for t in toks], "o-", color="k")
    ax.set_title("cuts that fall inside a token")
    ax.set_ylabel("fraction of cuts")
    ax = axes[2]
    styles = {"naive/det": "o-", "healing/det": "s-", "naive/sampled": "o--", "healing/sampled": "s--"}
    for cond, label in CONDITION_LABELS.items():
        ys = [t["pooled"]["continuation"]["conditions"].get(cond, {}).get("mid_token", {}).get("next_char") for t in toks]
        ax.plot(xs, ys, styles[cond], label=f"{label} (mid-token)")
    ys = [t["pooled"]["continuation"]["conditions"]["naive/det"]["boundary"]["next_char"] for t in toks]
    ax.plot(xs, ys, "^:", color="gray", label="naive, det LM (boundary)")
    ax.set_title("next-character exact match")
    ax.set_ylabel("accuracy")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("vocabulary size")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_lines(res: dict) -> list[str]:
    """A few plain lines for the end of a run: timing and next-character accuracy over all cuts."""
    out = [f"total time {res['timings']['total']:.1f} s"]
    for t in res["tokenizers"]:
        c = t["pooled"]["continuation"]
        parts = [f"{cond} {_pct(c['conditions'][cond]['all']['next_char'])}"
                 for cond in CONDITION_LABELS if cond in c["conditions"]]
        out.append(f"{t['name']} (vocab {t['vocab_size']:,}, {_pct(c['mid_token_fraction'])}% mid-token cuts): "
                   "next-char accuracy % " + ", ".join(parts))
    return out


__all__ = ["TableData", "all_tables", "heldout_table", "markdown_report", "plot", "to_markdown", "to_rich",
           "summary_lines"]
