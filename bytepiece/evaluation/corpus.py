"""Reading evaluation texts, describing them (size, hash) and carving held-out slices.

A held-out slice is taken from a source corpus so that none of its distinctive lines occur in
the training text (``heldout_slice``). The dev corpora of this project were sampled line by
line (prose) and file by file (code) into the training mix, so the rule works on lines:

* a line is *distinctive* if it has at least ``min_chars`` non-space characters; a distinctive
  line is *seen* if the same line (without its newline) occurs in the training text;
* a short line (``}``, ``else:``, a blank line) carries no evidence of its own and inherits it
  from the nearest distinctive lines around it (up to ``window`` lines away): it is seen when
  those neighbours are seen, so the braces of a file that was copied into the training text go
  with it, while the braces of an unseen file stay in place;
* the slice is ``segments`` runs of consecutive unseen lines starting at seeded random lines,
  each about ``target_bytes / segments`` long, in source order. Contiguous runs keep code
  readable as code (functions stay whole) while still mixing several files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..corpus import holds_text, no_text_error, read_plain_text

DEFAULT_HELDOUT_BYTES = 300_000
DEFAULT_SEGMENTS = 8
MIN_DISTINCTIVE_CHARS = 20
NEIGHBOUR_WINDOW = 8

def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file as ``str`` (newlines kept as they are), read and checked as every
    corpus input is (gzip or zstd decompressed; binary, corrupt or truncated data refused)."""
    data = read_plain_text(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{os.fspath(path)} is not valid UTF-8 (byte {e.start}); {_utf8_hint(data, e)}") from None


def _utf8_hint(data: bytes, error: UnicodeDecodeError) -> str:
    """What to do about ``error``: a file cut inside a character (``head -c``, ``tail -c``) is
    UTF-8 that needs a clean cut; anything else needs converting."""
    starts_inside = error.start == 0 and 0x80 <= data[0] < 0xC0
    ends_inside = error.end == len(data) and error.reason == "unexpected end of data"
    if starts_inside or ends_inside:
        return (f"it {'starts' if starts_inside else 'ends'} inside a character, as a file cut by bytes "
                "(head -c, tail -c) does; cut it at a line break instead (head -n, tail -n)")
    return "convert it to UTF-8 first, e.g. iconv -f LATIN1 -t UTF-8 for a Latin-1 file"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe_text(text: str, path: str | os.PathLike | None = None) -> dict:
    data = text.encode("utf-8")
    out = {"bytes": len(data), "chars": len(text), "lines": text.count("\n") + (0 if text.endswith("\n") or not text else 1),
           "sha256": sha256_bytes(data)}
    if path is not None:
        out = {"path": str(path), **out}
    return out


@dataclass(frozen=True)
class HeldoutSlice:
    name: str
    text: str
    source: str
    source_sha256: str
    lines_total: int
    lines_seen: int
    lines_taken: int
    segments: int
    seed: int

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "source_sha256": self.source_sha256,
                "rule": {"min_distinctive_chars": MIN_DISTINCTIVE_CHARS, "neighbour_window": NEIGHBOUR_WINDOW,
                         "segments": self.segments, "seed": self.seed},
                "source_lines": self.lines_total, "source_lines_seen_in_training": self.lines_seen,
                "lines_taken": self.lines_taken, **describe_text(self.text)}


def seen_lines(lines: list[str], train_lines: set[str], *, min_chars: int = MIN_DISTINCTIVE_CHARS,
               window: int = NEIGHBOUR_WINDOW) -> np.ndarray:
    """Boolean per line of ``lines`` (without newlines): seen in training (see module doc)."""
    n = len(lines)
    distinctive = np.fromiter((len("".join(line.split())) >= min_chars for line in lines), dtype=bool, count=n)
    seen = np.fromiter((line in train_lines for line in lines), dtype=bool, count=n) & distinctive
    idx = np.flatnonzero(distinctive)
    out = seen.copy()
    if len(idx) == 0:
        return out
    for i in np.flatnonzero(~distinctive):
        k = int(np.searchsorted(idx, i))
        prev = idx[k - 1] if k > 0 and i - idx[k - 1] <= window else -1
        nxt = idx[k] if k < len(idx) and idx[k] - i <= window else -1
        votes = [seen[j] for j in (prev, nxt) if j >= 0]
        out[i] = bool(votes) and all(votes)
    return out


def heldout_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """A name per held-out file, for the tables: its stem, numbered where two are the same."""
    names = []
    for p in paths:
        base = Path(p).stem or "text"
        name, k = base, 2
        while name in names:
            name, k = f"{base}{k}", k + 1
        names.append(name)
    return names


def distinctive_lines_in(text: str, train_lines: set[str]) -> int:
    """Distinctive lines of ``text`` that occur in the training text (0 for a proper slice)."""
    return sum(1 for line in text.split("\n")
               if len("".join(line.split())) >= MIN_DISTINCTIVE_CHARS and line in train_lines)


def heldout_slice(source: str | os.PathLike, train_text: str, *, target_bytes: int = DEFAULT_HELDOUT_BYTES,
                  segments: int = DEFAULT_SEGMENTS, seed: int = 0, name: str | None = None,
                  train_lines: set[str] | None = None) -> HeldoutSlice:
    """About ``target_bytes`` of ``source`` whose lines do not occur in ``train_text``."""
    if target_bytes <= 0 or segments <= 0:
        raise InputError("target_bytes and segments must be positive")
    path = Path(source)
    text = read_text(path)
    if not holds_text(text):  # a slice of it would be a lone newline the slicing adds
        raise no_text_error(f"held-out text {path}")
    lines = text.split("\n")  # after a final newline, an empty last item (kept: it is in the slices' draw)
    if train_lines is None:
        train_lines = set(train_text.split("\n"))
    seen = seen_lines(lines, train_lines)
    sizes = np.fromiter((len(line.encode("utf-8")) + 1 for line in lines), dtype=np.int64, count=len(lines))
    free = ~seen
    if not any(holds_text(lines[i]) for i in np.flatnonzero(free)):  # blank lines alone are no held-out text
        raise InputError(f"every line of {path} occurs in the training text; no held-out text can be taken from it")
    rng = np.random.default_rng(seed)
    taken = np.zeros(len(lines), dtype=bool)
    per_segment = max(1, target_bytes // segments)
    total = 0
    starts = rng.permutation(np.flatnonzero(free))
    for start in starts:
        if total >= target_bytes:
            break
        if taken[start]:
            continue
        got = 0
        i = int(start)
        while i < len(lines) and got < per_segment and total < target_bytes and not taken[i]:
            if free[i]:
                taken[i] = True
                got += int(sizes[i])
                total += int(sizes[i])
            i += 1
    picked = [lines[i] for i in np.flatnonzero(taken)]
    if not any(map(holds_text, picked)):
        raise InputError(f"the slice of {path} took only blank lines; take a larger slice than {target_bytes} bytes")
    out = "\n".join(picked).strip("\n") + "\n"
    return HeldoutSlice(name or path.stem, out, str(path), sha256_bytes(text.encode("utf-8")),
                        len(lines) - (lines[-1] == ""),
                        int(seen.sum()), len(picked), segments, seed)
