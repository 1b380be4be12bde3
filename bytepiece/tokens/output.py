"""Where a corpus encoding writes, and how its output appears: checked before the work, staged
during it, committed at the end.

Tasks write their parts into a hidden staging directory beside the output
(``.corpus.encoding-HOST-PID-XXXX``). :func:`commit_output` is the one place where output
appears: it renames the parts to their final names and writes the manifest last, so a manifest
exists only when every shard it lists is complete; until then a previous corpus of the same
name stays whole. :func:`discard_staging` removes the staging directory on success, error and
Ctrl-C alike; renaming it away first makes every task still running stop at its next batch
(and fail to create files) instead of writing into a directory being deleted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write, check_writable
from ..io.stale import run_dir_name
from ..errors import InputError
from ..interop.binfile import index_path, meta_path
from .manifest import Manifest, ShardEntry, manifest_path, shard_file_name, shard_files_pattern

_STAGING = ".{name}.encoding-"


def is_single_file(out: Path) -> bool:
    """``-o corpus.bin`` is one token file (no manifest); any other name is a shard prefix."""
    return out.suffix == ".bin"


def check_output(out: Path, *, overwrite: bool) -> None:
    """Fail before any work if the output cannot be written or would replace another corpus."""
    if is_single_file(out):
        check_writable([out, index_path(out), meta_path(out)], overwrite=overwrite)
        return
    if out.is_dir():
        raise InputError(f"output {out} is a directory; give a name prefix inside it, such as {out / 'corpus'} "
                         f"(writes {out / 'corpus'}-00000.bin, ... and {out / 'corpus'}.manifest.json)")
    if not out.name or out.name in (".", ".."):
        raise InputError(f"output {str(out)!r} needs a file name prefix, such as out/corpus")
    check_writable([manifest_path(out)], overwrite=True)
    existing = existing_corpus_files(out)
    if existing and not overwrite:
        shown = ", ".join(p.name for p in existing[:3]) + (f" (+{len(existing) - 3} more)" if len(existing) > 3 else "")
        raise FileExistsError(f"{out.parent or '.'} already holds a corpus named {out.name!r} ({shown}); "
                              "pass overwrite=True (CLI: --force) to replace it, or choose another output name")


def existing_corpus_files(out: Path) -> list[Path]:
    """The manifest and shard files of a corpus named ``out`` (sorted)."""
    directory = out.parent if str(out.parent) else Path(".")
    pattern = shard_files_pattern(out.name)
    found = [p for p in directory.iterdir() if pattern.fullmatch(p.name)] if directory.is_dir() else []
    manifest = manifest_path(out)
    if manifest.exists():
        found.append(manifest)
    return sorted(found)


def staging_path(out: Path) -> Path:
    """A fresh name for the run's staging directory beside ``out`` (created by the caller inside
    its cleanup scope, so an interruption at any point leaves nothing behind); stale staging
    directories of dead runs on this host are removed."""
    directory = (out.parent if str(out.parent) else Path(".")).resolve()
    return run_dir_name(directory, _STAGING.format(name=out.name))


def discard_staging(staging: Path) -> None:
    """Remove the staging directory and whatever is in it (see the module docstring); nothing
    to do when it was never created."""
    if not staging.exists():
        return
    trash = staging.with_name(staging.name + ".discarded")
    try:
        os.replace(staging, trash)
    except OSError:
        trash = staging
    shutil.rmtree(trash, ignore_errors=True)


def final_sidecar(staging: Path, part: ShardEntry, final_name: str, extra_model: dict[str, Any],
                  extra_metadata: dict[str, Any]) -> str:
    """The sidecar of a part under its final name (the index file it names changes)."""
    meta = json.loads((staging / (part.file + ".json")).read_text(encoding="utf-8"))
    meta["index"]["file"] = index_path(final_name).name
    meta["model"] = {**meta.get("model", {}), **extra_model}
    meta["metadata"] = {**meta.get("metadata", {}), **extra_metadata}
    return json.dumps(meta, indent=2)


def shard_entries(parts: Sequence[ShardEntry], prefix_name: str) -> list[ShardEntry]:
    """The staged parts under their final shard names."""
    return [dataclasses.replace(p, file=shard_file_name(prefix_name, k)) for k, p in enumerate(parts)]


def commit_output(staging: Path, parts: Sequence[ShardEntry], out: Path, *, manifest: Manifest | None,
                  extra_model: dict[str, Any]) -> list[Path]:
    """Move the finished parts into place and write the manifest (sharded output) or the sidecar
    (single file) last; returns the token files written, in order.

    Sidecars under their final names are prepared in the staging directory first, so the commit
    itself is renames plus one small atomic write: the old manifest is removed, the new shards are
    renamed into place, the new manifest is written, and only then are shards of the old corpus
    beyond the new count deleted. An interruption inside that window leaves no manifest (the
    corpus is then unreadable rather than mixed)."""
    directory = out.parent if str(out.parent) else Path(".")
    if manifest is None:  # single file
        (part,) = parts
        side = staging / "final.json"
        atomic_write(side, final_sidecar(staging, part, out.name, extra_model, {}))
        meta_path(out).unlink(missing_ok=True)  # never pair an old sidecar with new data
        os.replace(staging / index_path(part.file).name, index_path(out))
        os.replace(staging / part.file, out)
        os.replace(side, meta_path(out))
        return [out]
    names = [entry.file for entry in manifest.shards]
    for k, (part, name) in enumerate(zip(parts, names)):
        extra = {"shard": k, "manifest": manifest_path(out).name}
        atomic_write(staging / (name + ".json"), final_sidecar(staging, part, name, extra_model, extra))
    manifest_path(out).unlink(missing_ok=True)
    written = []
    for part, name in zip(parts, names):
        os.replace(staging / index_path(part.file).name, directory / index_path(name).name)
        os.replace(staging / part.file, directory / name)
        os.replace(staging / (name + ".json"), directory / meta_path(name).name)
        written.append(directory / name)
    atomic_write(manifest_path(out), manifest.to_json())
    keep = {p.name for p in written} | {index_path(p).name for p in written} | {meta_path(p).name for p in written}
    for stale in existing_corpus_files(out):
        if stale.name not in keep and stale != manifest_path(out):
            stale.unlink(missing_ok=True)
    return written
