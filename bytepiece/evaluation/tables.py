"""Tables as plain data, and the tables of the intrinsic metrics.

:class:`TableData` (title, headers, rows of strings) is what every table of the harness is built
as before :mod:`.report` renders it for the terminal or as markdown, so both show the same
numbers. The builders here read the ``intrinsic`` entries that :mod:`.intrinsic` puts into the
results; results written before those entries existed have none, and :func:`intrinsic_tables`
then returns no table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: token-length buckets of the length table: (first, last) bytes, last None for "and longer"
LENGTH_BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 8), (9, 16), (17, None))


@dataclass
class TableData:
    title: str
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    groups: list[int] = field(default_factory=list)  # row indices after which a separator goes
    keys: int = 1  # leading columns that identify a row (repeated when the table is split)


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal ("-" for a missing value)."""
    return "-" if x is None else f"{100 * x:.1f}"


def num(x: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals ("-" for a missing value)."""
    return "-" if x is None else f"{x:.{digits}f}"


def has_intrinsic(res: dict) -> bool:
    """Whether every tokenizer of ``res`` carries the intrinsic metrics."""
    return bool(res["tokenizers"]) and all("intrinsic" in t["pooled"] for t in res["tokenizers"])


def _alphas(res: dict) -> list[str]:
    return list(res["tokenizers"][0]["pooled"]["intrinsic"]["renyi_efficiency"])


def intrinsic_table(res: dict) -> TableData:
    """Pooled over the held-out files: vocabulary utilization, Rényi efficiency at each order,
    the parity ratio of tokens per byte between the files."""
    alphas = _alphas(res)
    headers = ["tokenizer", "vocab", "used %"] + [f"eff a={a}" for a in alphas] + ["parity"]
    rows = []
    for t in res["tokenizers"]:
        m = t["pooled"]["intrinsic"]
        rows.append([t["name"], f"{m['vocab_size']:,}", pct(m["vocabulary_utilization"])]
                    + [num(m["renyi_efficiency"].get(a), 3) for a in alphas] + [num(m["parity"]["ratio"])])
    return TableData("Intrinsic metrics of the held-out tokens, all held-out files", headers, rows,
                     caption="used: pieces of the vocabulary that occur at least once; eff a: Rényi entropy of "
                             "order a of the token distribution over the log of the vocabulary size (a=1: "
                             "Shannon); parity: the highest tokens per byte of a file over the lowest (1 is "
                             "parity). Definitions in docs/evaluation.md")


def intrinsic_files_table(res: dict) -> TableData:
    """Per tokenizer and held-out file: tokens per byte and its premium over the best-served
    file, utilization and the efficiency at the first order above 2 (2.5 by default)."""
    files = [h["name"] for h in res["heldout"]]
    alphas = _alphas(res)
    alpha = next((a for a in alphas if float(a) > 2), alphas[-1])
    headers = ["tokenizer", "file", "tok/B", "premium", "used %", f"eff a={alpha}", "mean B"]
    rows, groups = [], []
    for t in res["tokenizers"]:
        premium = t["pooled"]["intrinsic"]["parity"]["premium"]
        for f in files:
            m = t["heldout"][f]["intrinsic"]
            rows.append([t["name"], f, num(m["tokens_per_byte"], 3), num(premium.get(f)),
                         pct(m["vocabulary_utilization"]), num(m["renyi_efficiency"].get(alpha), 3),
                         num(m["token_length"]["mean"])])
        groups.append(len(rows) - 1)
    return TableData("Intrinsic metrics per held-out file", headers, rows, groups=groups[:-1], keys=2,
                     caption="tok/B: tokens per UTF-8 byte; premium: tok/B over the lowest tok/B of the files for "
                             "the same tokenizer; mean B: mean token length in bytes (normalized text)")


def _bucket_share(shares: list[float], first: int, last: int | None) -> float:
    return float(sum(shares[first - 1 : last]))


def length_table(res: dict) -> TableData:
    """Pooled over the held-out files: mean and quantiles of token lengths in bytes, and the
    share of tokens in each length bucket."""
    labels = [f"{a}" if a == b else (f"{a}+" if b is None else f"{a}-{b}") for a, b in LENGTH_BUCKETS]
    headers = ["tokenizer", "mean", "vocab mean", "p50", "p90", "max"] + [f"{lab} B %" for lab in labels]
    rows = []
    for t in res["tokenizers"]:
        m = t["pooled"]["intrinsic"]["token_length"]
        rows.append([t["name"], num(m["mean"]), num(m["vocabulary_mean"]), str(m["median"]), str(m["p90"]),
                     str(m["max"])] + [pct(_bucket_share(m["shares"], a, b)) for a, b in LENGTH_BUCKETS])
    return TableData("Token lengths in bytes, all held-out files", headers, rows,
                     caption="mean, p50, p90, max: over the held-out tokens; vocab mean: over the pieces of the "
                             "vocabulary, each once; n B %: share of held-out tokens that are n bytes long")


def intrinsic_tables(res: dict) -> list[TableData]:
    """The tables of the intrinsic metrics (none for results written without them)."""
    if not has_intrinsic(res):
        return []
    return [intrinsic_table(res), intrinsic_files_table(res), length_table(res)]


__all__ = ["LENGTH_BUCKETS", "TableData", "has_intrinsic", "intrinsic_files_table", "intrinsic_table",
           "intrinsic_tables", "length_table", "num", "pct"]
