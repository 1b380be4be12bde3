"""Write the local golden set: the ids and pieces the original BytePiece 0.6.3 gives for the texts
of ``texts.py`` with this project's shipped model ``data/default.model``.

It must run under a Python that has the *original* ``bytepiece`` installed (never this project:
both are imported as ``bytepiece``), with pyahocorasick built in bytes mode, because that is the
only configuration in which the original encodes at all::

    python3 -m venv /tmp/orig
    /tmp/orig/bin/pip install cython numpy tqdm setuptools wheel  # the original's setup.py needs Cython
    AHOCORASICK_BYTES=1 /tmp/orig/bin/pip install --no-cache-dir --no-build-isolation \\
        --no-binary pyahocorasick "pyahocorasick==2.3.1" "bytepiece==0.6.3"
    /tmp/orig/bin/python tests/golden/make_golden.py          # rewrite the files
    /tmp/orig/bin/python tests/golden/make_golden.py --check  # exit 1 if they would change

The script refuses to run anywhere else rather than write ids that did not come from the original.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import platform
import sys
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODEL = REPO / "data" / "default.model"
RECORDS = HERE / "default_model.jsonl"
META = HERE / "meta.json"
ORIGINAL_VERSION = "0.6.3"
MAX_TOTAL_BYTES = 1 << 20

INSTALL_HINT = (
    "Run this script with the original BytePiece's interpreter, e.g.\n"
    "  python3 -m venv /tmp/orig\n"
    "  /tmp/orig/bin/pip install cython numpy tqdm setuptools wheel\n"
    "  AHOCORASICK_BYTES=1 /tmp/orig/bin/pip install --no-cache-dir --no-build-isolation "
    "--no-binary pyahocorasick 'pyahocorasick==2.3.1' 'bytepiece==0.6.3'\n"
    "  /tmp/orig/bin/python tests/golden/make_golden.py"
)


def _refuse(reason: str) -> None:
    sys.exit(f"make_golden.py: {reason}\n{INSTALL_HINT}")


def load_original():
    """The original's ``Tokenizer`` class and the versions to record, after checking that it is
    really the original (not this project) and that pyahocorasick works on bytes."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() not in (REPO, HERE)]
    try:
        import ahocorasick
        import bytepiece
        from bytepiece import Tokenizer
    except ImportError as e:
        _refuse(f"the original BytePiece is not importable ({e}).")
    origin = Path(bytepiece.__file__).resolve()
    if REPO in origin.parents or not hasattr(bytepiece, "faster"):
        _refuse(f"'bytepiece' here is {origin}, not the original {ORIGINAL_VERSION}.")
    from importlib import metadata

    try:
        version = metadata.version("bytepiece")
    except metadata.PackageNotFoundError:
        version = "unknown"
    if version != ORIGINAL_VERSION:
        _refuse(f"found bytepiece {version}; the golden set is defined by {ORIGINAL_VERSION}.")
    if ahocorasick.unicode:
        _refuse("pyahocorasick was built in unicode mode; the original needs it built with AHOCORASICK_BYTES=1.")
    versions = {"bytepiece": version, "pyahocorasick": metadata.version("pyahocorasick"), "ahocorasick_unicode": False}
    return Tokenizer, versions


def build(tokenizer_class, versions: dict) -> tuple[list[dict], dict]:
    sys.path.insert(0, str(HERE))
    from texts import SEED, golden_texts

    tokenizer = tokenizer_class(str(MODEL))
    records = []
    categories: dict[str, int] = {}
    for name, text in golden_texts():
        ids = [int(i) for i in tokenizer.encode(text)]
        pieces = tokenizer.tokenize(text)
        nfc = unicodedata.normalize("NFC", text)
        # Consistency of what is being recorded, checked on the original itself.
        if tokenizer.pieces_to_ids(pieces) != ids or b"".join(pieces) != nfc.encode("utf-8"):
            sys.exit(f"make_golden.py: the original's pieces and ids disagree for {name!r}")
        if tokenizer.decode(ids) != nfc:
            sys.exit(f"make_golden.py: the original does not decode {name!r} to its NFC text")
        records.append({"name": name, "text": text, "ids": ids,
                        "pieces": [base64.b64encode(p).decode("ascii") for p in pieces]})
        category = name.split("/")[0]
        categories[category] = categories.get(category, 0) + 1
    meta = {
        "made_by": "tests/golden/make_golden.py",
        "original": versions,
        "python": platform.python_version(),
        "unicodedata": unicodedata.unidata_version,
        "model": {"file": "data/default.model", "sha256": hashlib.sha256(MODEL.read_bytes()).hexdigest(),
                  "vocab_size": tokenizer.vocab_size},
        "seed": SEED,
        "n_texts": len(records),
        "categories": categories,
        "total_ids": sum(len(r["ids"]) for r in records),
    }
    return records, meta


def render(records: list[dict], meta: dict) -> tuple[str, str]:
    # ensure_ascii: every line is ASCII, so no editor or tool can normalize the non-NFC texts and
    # U+2028/U+0085 inside texts cannot be taken for line breaks.
    lines = "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records)
    return lines, json.dumps(meta, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = parser.parse_args(argv)
    tokenizer_class, versions = load_original()
    records, meta = build(tokenizer_class, versions)
    lines, meta_text = render(records, meta)
    if len(lines) + len(meta_text) > MAX_TOTAL_BYTES:
        sys.exit(f"make_golden.py: the set would take {len(lines):,} bytes; keep it under 1 MB (shorten texts.py)")
    if args.check:
        same = RECORDS.is_file() and RECORDS.read_text(encoding="ascii") == lines
        same_meta = META.is_file() and json.loads(META.read_text())["model"] == meta["model"]
        print("golden set is up to date" if same and same_meta else "golden set differs; rerun without --check")
        return 0 if same and same_meta else 1
    RECORDS.write_text(lines, encoding="ascii")
    META.write_text(meta_text, encoding="ascii")
    print(f"wrote {len(records)} texts, {meta['total_ids']:,} ids ({len(lines):,} bytes) to {RECORDS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
