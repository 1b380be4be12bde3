"""The token-file formats: one registry of writers, and one rule for what a file on disk is.

``bytepiece encode --format NAME`` and ``encode_corpus(format=NAME)`` find a format's writer
here; ``bytepiece decode``, ``decode_corpus`` and ``TokenDataset`` ask :func:`token_file_kind`
what they were given (by what is on disk, since names can mislead):

=============  ==========================================================================
``ids``        a line of ids per document (text; a file or standard output)
``pieces``     a line of pieces per document, as ``bytepiece inspect`` spells them (text)
``npy``        ``ids.npy`` + ``ids.offsets.npy`` (:mod:`.npyfile`)
``bin``        ``corpus.bin`` + ``.bin.idx`` + ``.bin.json`` (:mod:`.binfile`); sharded with a
               manifest when the output is a name prefix
``megatron``   Megatron's ``corpus.bin`` + ``corpus.idx`` + our ``.bin.json`` sidecar
               (:mod:`.megatron`); sharded with a manifest when the output is a name prefix
=============  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# This module is the command line's list of formats, read before any command runs: it imports
# the writers (and numpy) only when a format is used.

#: what ``bytepiece encode`` writes without ``--format``
DEFAULT_FORMAT = "ids"


class TokenWriter(Protocol):
    """What every format's writer does: documents in batches, then one commit."""

    @property
    def n_tokens(self) -> int: ...
    @property
    def n_documents(self) -> int: ...

    def write(self, ids: npt.NDArray[np.integer], offsets: npt.NDArray[np.int64]) -> None: ...
    def close(self) -> Path | None: ...
    def abort(self) -> None: ...


@dataclass(frozen=True)
class TokenFormat:
    name: str
    summary: str
    binary: bool  # files only (never a terminal or a pipe)
    layout: str | None  # the token-file layout of formats that shard ("bytepiece", "megatron")
    suffix: str  # what a single output file's name ends in ("" for text: any name)
    files: Callable[[Path], list[Path]]  # every file written for ``-o path`` (not sharded)
    writer: Callable[..., TokenWriter]  # (path or None for stdout, tokenizer, overwrite=, metadata=, model_path=)

    @property
    def shardable(self) -> bool:
        return self.layout is not None

    def sharded(self, out: Path | None) -> bool:
        """Whether ``-o out`` is a shard prefix (a name that does not end in the file suffix)."""
        return self.shardable and out is not None and out.suffix != self.suffix


def piece_names(tokenizer: Any) -> list[str]:
    """How ``--format pieces`` spells each id: a piece escaped once (``summary.display_piece``),
    a reserved or special token by its name."""
    from ..summary import display_piece

    return [name if isinstance(name, str) else display_piece(name)
            for name in map(tokenizer.id_to_piece, range(tokenizer.vocab_size))]


def _text(path: Path | None, tokenizer: Any, *, overwrite: bool, **_: Any) -> TokenWriter:
    from .textfile import TextWriter

    return TextWriter(path, overwrite=overwrite)


def _pieces(path: Path | None, tokenizer: Any, *, overwrite: bool, **_: Any) -> TokenWriter:
    from .textfile import TextWriter

    return TextWriter(path, render=piece_names(tokenizer), overwrite=overwrite)


def _npy(path: Path | None, tokenizer: Any, *, overwrite: bool, **_: Any) -> TokenWriter:
    from .npyfile import NpyWriter

    assert path is not None
    return NpyWriter(path, vocab_size=tokenizer.vocab_size, overwrite=overwrite)


def _bin(path: Path | None, tokenizer: Any, *, overwrite: bool, metadata: dict[str, Any] | None = None,
         model_path: str | os.PathLike | None = None) -> TokenWriter:
    from .binfile import BinWriter

    return BinWriter(path, tokenizer, metadata=metadata, model_path=model_path, overwrite=overwrite)  # type: ignore[arg-type]


def _megatron(path: Path | None, tokenizer: Any, *, overwrite: bool, metadata: dict[str, Any] | None = None,
              model_path: str | os.PathLike | None = None) -> TokenWriter:
    from .binfile import MegatronWriter

    return MegatronWriter(path, tokenizer, metadata=metadata, model_path=model_path,  # type: ignore[arg-type]
                          overwrite=overwrite)


def _npy_files(path: Path) -> list[Path]:
    from .npyfile import offsets_path

    return [path, offsets_path(path)]


def _bin_files(layout: str) -> Callable[[Path], list[Path]]:
    def files(path: Path) -> list[Path]:
        from .binfile import index_path, meta_path

        return [path, index_path(path, layout), meta_path(path)]
    return files


FORMATS: dict[str, TokenFormat] = {f.name: f for f in (
    TokenFormat("ids", "a line of token ids per document", False, None, "", lambda p: [p], _text),
    TokenFormat("pieces", "a line of pieces per document", False, None, "", lambda p: [p], _pieces),
    TokenFormat("npy", "ids.npy and ids.offsets.npy", True, None, ".npy", _npy_files, _npy),
    TokenFormat("bin", "token file, index and sidecar; shards with -o PREFIX", True, "bytepiece", ".bin",
                _bin_files("bytepiece"), _bin),
    TokenFormat("megatron", "Megatron .bin/.idx (+ sidecar); shards with -o PREFIX", True, "megatron", ".bin",
                _bin_files("megatron"), _megatron),
)}


def token_format(name: str) -> TokenFormat:
    """The format called ``name`` (an ``InputError`` listing them otherwise)."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown token format {name!r}; choose from {', '.join(FORMATS)}") from None


#: what :func:`token_file_kind` finds
TokenFileKind = Literal["corpus", "npy", "bin", "lines"]


def token_file_kind(path: str | os.PathLike) -> TokenFileKind:
    """What ``path`` holds: a sharded ``corpus`` (its manifest, its name prefix, or a folder
    holding one manifest), an ``npy`` token file (by its content: ``encode --format npy -o
    ids.bin`` writes one), a ``bin`` file of either layout (its sidecar beside it, or a ``.bin``
    name), else ``lines`` of ids. The index, sidecar or offsets file of a token file, given in its
    place, is an ``InputError`` naming the token file (read as lines of ids, its bytes would only
    make a puzzling "is not a token id")."""
    from .binfile import meta_path
    from .manifest import MANIFEST_SUFFIX, manifest_path
    from .npyfile import is_npy

    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX) or path.is_dir() or (
        not path.exists() and os.path.lexists(manifest_path(path))
    ):
        return "corpus"
    _refuse_companion(path)
    if is_npy(path):
        return "npy"
    if os.path.lexists(meta_path(path)) or (path.suffix == ".bin" and path.is_file()):
        return "bin"
    return "lines"


def _refuse_companion(path: Path) -> None:
    from .binfile import INDEX_SUFFIX, META_SUFFIX
    from .npyfile import OFFSETS_SUFFIX

    name = str(path)
    for suffix, what in ((INDEX_SUFFIX, "index"), (META_SUFFIX, "sidecar"), (OFFSETS_SUFFIX, "offsets file")):
        if not name.endswith(suffix):
            continue
        owners = [Path(name.removesuffix(suffix))]
        if suffix == INDEX_SUFFIX:  # Megatron's layout: corpus.bin and corpus.idx
            owners.append(path.with_suffix(".bin"))
        if suffix == OFFSETS_SUFFIX:  # ids.npy and ids.offsets.npy
            owners.append(path.with_name(path.name.removesuffix(suffix) + ".npy"))
        for owner in owners:
            if owner != path and owner.is_file():
                raise InputError(f"{path} is the {what} of the token file {owner}; decode {owner} instead")


def open_token_file(path: str | os.PathLike) -> tuple[np.ndarray, Any] | None:
    """``(tokens, offsets)`` of a binary token file (``.npy`` with its offsets, or a ``.bin`` of
    either layout with its index and sidecar), as :func:`token_file_kind` finds it; ``None`` for
    lines of ids."""
    from .binfile import open_bin
    from .npyfile import open_npy

    kind = token_file_kind(path)
    if kind == "npy":
        return open_npy(Path(path))
    if kind == "bin":
        return open_bin(Path(path))
    return None
