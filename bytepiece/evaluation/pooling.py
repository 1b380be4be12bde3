"""One tokenizer's numbers over all held-out files together: sums of counts, and averages
weighted by what each was measured on (bytes, tokens, cuts), never means of per-file ratios."""

from __future__ import annotations

from typing import Any

from ..compression import Compression
from .exact import pool_generic

PARTS = ("all", "boundary", "mid_token")


def pooled_files(per_file: dict[str, dict]) -> dict:
    """The pooled entry of a tokenizer's results from its per-file entries."""
    files = list(per_file.values())
    pooled = sum((Compression(f["compression"]["bytes"], f["compression"]["chars"], f["compression"]["tokens"])
                  for f in files), Compression())
    return {"compression": pooled.as_dict(), "bits_per_byte": _bits_per_byte(files, pooled),
            "continuation": _continuation(files), "sampling": _sampling(files, pooled)}


def _bits_per_byte(files: list[dict], pooled: Compression) -> dict:
    out = {}
    for lm_name in files[0]["bits_per_byte"] if files else ():
        bits = sum(f["bits_per_byte"][lm_name]["bits"] for f in files)
        out[lm_name] = {"bits": bits, "bits_per_byte": bits / max(pooled.bytes, 1),
                        "bits_per_token": bits / max(pooled.tokens, 1), "tokens": pooled.tokens}
    return out


def _continuation(files: list[dict]) -> dict:
    conts = [f["continuation"] for f in files]
    cuts = sum(c["cuts"] for c in conts)
    mid = sum(c["conditions"][next(iter(c["conditions"]))]["mid_token"]["n"] for c in conts if c["conditions"])
    out: dict[str, Any] = {"cuts": cuts, "mid_token_fraction": mid / cuts if cuts else None, "conditions": {}}
    for cond in list(conts[0]["conditions"]) if conts else []:
        entries = [c["conditions"][cond] for c in conts]
        entry: dict[str, Any] = {part: _cut_weighted([e[part] for e in entries]) for part in PARTS}
        if all("seconds_per_cut" in e for e in entries):
            secs = sum(e["seconds_per_cut"] * c["cuts"] for e, c in zip(entries, conts))
            entry["seconds_per_cut"] = secs / cuts if cuts else None
        out["conditions"][cond] = entry
    generic = pool_generic([c["generic"] for c in conts if "generic" in c])
    if generic is not None:
        out["generic"] = generic
    return out


def _cut_weighted(cells: list[dict]) -> dict:
    """One part (all, boundary or mid-token cuts) of a condition: each rate weighted by its cuts."""
    n = sum(c["n"] for c in cells)
    out: dict[str, Any] = {"n": n}
    for key in cells[0]:
        if key == "n" or any(key not in c for c in cells):
            continue  # results written before the key existed
        total = sum((c[key] or 0.0) * c["n"] for c in cells)
        out[key] = total / n if n else None
    return out


def _sampling(files: list[dict], pooled: Compression) -> list[dict]:
    out = []
    for i, row in enumerate(files[0]["sampling"] if files else []):
        rows = [f["sampling"][i] for f in files]
        n_tok = sum(r["tokens"] for r in rows)
        changed = sum(r["changed_fraction"] * r["tokens"] for r in rows)
        kept = sum(r["viterbi_kept_fraction"] * f["compression"]["tokens"] for r, f in zip(rows, files))
        sampled = Compression(pooled.bytes, pooled.chars, n_tok)
        out.append({"alpha": row["alpha"], "tokens": n_tok, "changed_fraction": changed / max(n_tok, 1),
                    "viterbi_kept_fraction": kept / max(pooled.tokens, 1), "bytes_per_token": sampled.bytes_per_token,
                    "chars_per_token": sampled.chars_per_token})
    return out
