"""Corpus encoding for LM data pipelines: a corpus in, memory-mappable token shards out.

:func:`encode_corpus` runs the whole job on the engine (local threads or a Dask cluster) and
writes shards plus a manifest; :class:`TokenDataset` reads them back as one token stream.
The formats are described in :mod:`.manifest` and :mod:`bytepiece.interop.binfile`.
"""

from .dataset import TokenDataset
from .encode import DEFAULT_SHARD_SIZE, EncodeSummary, encode_corpus, encode_stream
from .pipeline import EncodedBatch
from .manifest import Manifest, ShardEntry, manifest_path

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "EncodeSummary",
    "EncodedBatch",
    "Manifest",
    "ShardEntry",
    "TokenDataset",
    "encode_corpus",
    "encode_stream",
    "manifest_path",
]
