"""Where a sharded corpus encoding writes, and how its output appears: checked before the work,
staged during it, committed at the end.

Tasks write their parts into a hidden staging directory beside the output
(``.corpus.encoding-HOST-PID-XXXX``). :func:`commit_output` is the one place where output
appears: the parts, their sidecars and the manifest are published as one atomic set, so a
previous corpus of the same name stays whole until the new one replaces it entirely. :func:`discard_staging` removes the staging directory on success, error and
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

from ..io.atomic import OutputSet, check_writable
from ..io.stale import remove_stale_dirs, run_dir_name
from ..errors import InputError
from .manifest import Manifest, ShardEntry, manifest_path, shard_file_name, shard_files_pattern

_STAGING = ".{name}.encoding-"


def check_output(out: Path, *, overwrite: bool) -> None:
    """Fail before any work if the output cannot be written or would replace another corpus."""
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
    # those of every corpus in the directory, not only this one's: a killed run of another name
    # would otherwise keep its parts until that name is written again
    remove_stale_dirs(directory, "", prefix_pattern=r"\..+\.encoding-")
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


def final_sidecar(staging: Path, part: ShardEntry, entry: ShardEntry, layout: str, extra_model: dict[str, Any],
                  extra_metadata: dict[str, Any]) -> str:
    """The sidecar of a part under its final name (the index file it names changes)."""
    meta = json.loads((staging / part.sidecar_file).read_text(encoding="utf-8"))
    meta["index"]["file"] = entry.index_file(layout)
    meta["model"] = {**meta.get("model", {}), **extra_model}
    meta["metadata"] = {**meta.get("metadata", {}), **extra_metadata}
    return json.dumps(meta, indent=2)


def shard_entries(parts: Sequence[ShardEntry], prefix_name: str) -> list[ShardEntry]:
    """The staged parts under their final shard names."""
    return [dataclasses.replace(p, file=shard_file_name(prefix_name, k)) for k, p in enumerate(parts)]


def commit_output(staging: Path, parts: Sequence[ShardEntry], out: Path, *, manifest: Manifest,
                  extra_model: dict[str, Any]) -> list[Path]:
    """Publish the finished parts under their final names, their sidecars and the manifest as
    one atomic set (:class:`bytepiece.io.atomic.OutputSet`): a reader finds the complete old
    corpus or the complete new one, never a mix, whatever interrupts the commit (a killed
    commit is completed by the next write into the directory). Files of an old corpus of the
    same name beyond the new one are removed in the same set. Returns every file written, in
    corpus order."""
    directory = out.parent if str(out.parent) else Path(".")
    layout = manifest.layout
    written: list[Path] = []
    with OutputSet(overwrite=True) as commit:
        for k, (part, entry) in enumerate(zip(parts, manifest.shards)):
            extra = {"shard": k, "manifest": manifest_path(out).name}
            final = directory / entry.file
            commit.adopt(final, staging / part.file)
            commit.adopt(directory / entry.index_file(layout), staging / part.index_file(layout))
            commit.write(directory / entry.sidecar_file, final_sidecar(staging, part, entry, layout, extra_model, extra))
            written += [final, directory / entry.index_file(layout), directory / entry.sidecar_file]
        commit.write(manifest_path(out), manifest.to_json())
        keep = {p.name for p in written}
        for stale in existing_corpus_files(out):
            if stale.name not in keep and stale != manifest_path(out):
                commit.remove(stale)
    return written + [manifest_path(out)]
