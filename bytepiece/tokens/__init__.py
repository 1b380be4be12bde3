"""Token files: a corpus in, token files of any format out (:mod:`.formats`), and back.

:func:`encode_corpus` writes any format (shards with a manifest run on the engine: local
threads or a Dask cluster); :class:`TokenDataset` reads sharded corpora and token files as one
memory-mapped token stream; :func:`decode_corpus` turns any of them back into documents.
Names are imported on first use, so the command line can read :mod:`.formats` cheaply.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dataset import TokenDataset
    from .decode import DecodeSummary, decode_corpus
    from .encode import DEFAULT_SHARD_SIZE, EncodeSummary, encode_corpus, encode_stream
    from .manifest import Manifest, ShardEntry, manifest_path
    from .pipeline import EncodedBatch

_HOMES = {
    "TokenDataset": "dataset", "DecodeSummary": "decode", "decode_corpus": "decode",
    "DEFAULT_SHARD_SIZE": "encode", "EncodeSummary": "encode", "encode_corpus": "encode", "encode_stream": "encode",
    "Manifest": "manifest", "ShardEntry": "manifest", "manifest_path": "manifest", "EncodedBatch": "pipeline",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bytepiece.tokens' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_SHARD_SIZE", "DecodeSummary", "EncodeSummary", "EncodedBatch", "Manifest", "ShardEntry", "TokenDataset",
    "decode_corpus", "encode_corpus", "encode_stream", "manifest_path",
]
