"""The trie of the model that ships with bytepiece, built ahead of time.

Loading a model whose arrays are not cached yet builds its trie with the numba kernels, and
on a first run compiling them is most of the time of ``echo hi | bytepiece encode`` (4-5 s
of CPU). The default model (``bytepiece_data/default.model``) therefore comes with its trie in
``default.model.trie.npz`` beside it, written by ``data/make_default_trie.py``. It is used for
a model only when the hash of the model's pieces (bytes and order, which is all a trie depends
on) is the one stored with it, so it serves exactly the model it was built from; a test checks
that it equals a fresh build. It is part of the installed package, as trusted as the code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..kernels.trie import Trie

#: the file beside the default model
SUFFIX = ".trie.npz"


def pieces_key(piece_bytes: bytes, offsets: npt.NDArray[np.int64]) -> str:
    """Identity of a piece list: sha256 of the offsets (int64 little-endian) and the bytes."""
    h = hashlib.sha256(np.ascontiguousarray(offsets, dtype="<i8").tobytes())
    h.update(piece_bytes)
    return h.hexdigest()


def default_trie_path() -> Path | None:
    """Where the default model's trie is installed (None without ``bytepiece_data``)."""
    try:
        from bytepiece_data import DEFAULT_MODEL, data_file
    except ImportError:  # pragma: no cover - installed together with bytepiece
        return None
    return data_file(DEFAULT_MODEL + SUFFIX)


def shipped_trie(key: str, path: Path | None = None) -> Trie | None:
    """The shipped trie (``path``, default the installed one) of the pieces whose
    :func:`pieces_key` is ``key``, if there is one."""
    path = path or default_trie_path()
    if path is None or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if str(data["pieces_key"]) != key:
            return None
        return Trie(np.array(data["base_check"], dtype=np.int32), np.array(data["piece"], dtype=np.int32),
                    int(data["max_depth"]))


def write_trie(path: Path, key: str, trie: Trie) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, pieces_key=np.array(key), base_check=trie.base_check, piece=trie.piece,
                            max_depth=np.array(trie.max_depth))
