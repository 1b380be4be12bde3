"""Write ``data/default.model.trie.npz``: the trie of the default model, shipped beside it.

With it, loading the default model with an empty cache needs no numba compile (see
``bytepiece.tokenizer.shipped``). Run after ``default.model`` changes:

    python data/make_default_trie.py            # rewrites data/default.model.trie.npz
    python data/make_default_trie.py --check    # exit 1 if it is not the trie of default.model

The file is used only for the pieces it was built from, so a stale one is ignored, not wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = HERE / "default.model"


def build():
    """(pieces key, trie) of the default model, built by the kernels."""
    from bytepiece.kernels.trie import build_trie
    from bytepiece.model import load_model
    from bytepiece.tokenizer.shipped import pieces_key
    from bytepiece.vocab import FIRST_PIECE_ID

    pieces = load_model(MODEL).pieces
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    trie = build_trie([p[::-1] for p in pieces], np.arange(FIRST_PIECE_ID, FIRST_PIECE_ID + len(pieces), dtype=np.int32))
    return pieces_key(b"".join(pieces), offsets), trie


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the existing file")
    args = parser.parse_args(argv)
    from bytepiece.tokenizer.shipped import SUFFIX, shipped_trie, write_trie

    key, trie = build()
    path = MODEL.with_name(MODEL.name + SUFFIX)
    if args.check:
        found = shipped_trie(key, path)
        same = found is not None and all(np.array_equal(a, b) for a, b in zip(found, trie))
        print(f"{path.name}: {'up to date' if same else 'stale or missing'}")
        return 0 if same else 1
    write_trie(path, key, trie)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
