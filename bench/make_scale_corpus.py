"""Build a GB-sized real corpus for the scale benchmarks: the Linux kernel source as JSON Lines.

The Debian package ``linux-source-6.1`` holds the kernel tree as one ``.tar.xz`` (about 140 MB
compressed, 1.3 GB of text in ~76,000 files: C, headers, documentation, scripts). Every regular
file that is valid UTF-8 text (no NUL byte) becomes one JSON Lines document
``{"text": <file content>, "path": <path in the tree>}``, in archive order, so a document keeps
its newlines exactly as a source file does. Nothing of it is committed: the script is the recipe.

    python bench/make_scale_corpus.py --out /work/scale            # linux.jsonl (+ quarter/tenth slices)
    python bench/make_scale_corpus.py --out /work/scale --deb FILE # use an already downloaded .deb

Also writes ``linux.quarter.jsonl`` and ``linux.tenth.jsonl``: the first quarter and tenth of the
documents by bytes, for the "memory does not grow with the corpus" comparisons.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "linux-source-6.1"


def fetch_deb(out: Path) -> Path:
    found = sorted(glob.glob(str(out / f"{PACKAGE}_*.deb")))
    if found:
        return Path(found[-1])
    subprocess.run(["apt-get", "download", PACKAGE], cwd=out, check=True)
    return Path(sorted(glob.glob(str(out / f"{PACKAGE}_*.deb")))[-1])


def source_tarball(deb: Path, workdir: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir)], check=True)
    found = glob.glob(str(workdir / "usr" / "src" / "linux-source-*.tar.*"))
    if not found:
        sys.exit(f"no kernel tarball inside {deb}")
    return Path(found[0])


def write_corpus(tarball: Path, out: Path) -> tuple[int, int, int]:
    docs = skipped = total = 0
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tarball, "r:*") as tar, open(tmp, "w", encoding="utf-8") as f:
        for member in tar:
            if not member.isfile() or member.size == 0:
                continue
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if b"\0" in data:
                skipped += 1
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                skipped += 1
                continue
            f.write(json.dumps({"text": text, "path": member.name}, ensure_ascii=False))
            f.write("\n")
            docs += 1
            total += len(data)
    os.replace(tmp, out)
    return docs, skipped, total


def write_prefix(src: Path, dst: Path, fraction: float) -> None:
    limit = src.stat().st_size * fraction
    done = 0
    with open(src, "rb") as f, open(dst, "wb") as g:
        for line in f:
            if done >= limit:
                break
            g.write(line)
            done += len(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bytepiece-scale"))
    ap.add_argument("--deb", type=Path, default=None, help="an already downloaded linux-source .deb")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    deb = args.deb or fetch_deb(args.out)
    corpus = args.out / "linux.jsonl"
    with tempfile.TemporaryDirectory(dir=args.out) as work:
        tarball = source_tarball(deb, Path(work))
        docs, skipped, total = write_corpus(tarball, corpus)
    print(f"{corpus}: {docs:,} documents, {total / 1e9:.2f} GB of text ({skipped} binary files skipped), "
          f"{corpus.stat().st_size / 1e9:.2f} GB on disk")
    for name, fraction in (("quarter", 0.25), ("tenth", 0.1)):
        dst = args.out / f"linux.{name}.jsonl"
        write_prefix(corpus, dst, fraction)
        print(f"{dst}: {dst.stat().st_size / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
