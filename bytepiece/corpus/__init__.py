"""Corpus reading for every pass over text (training, corpus encoding): inputs, shards, documents.

``describe_sources`` decides per input how to read it, ``plan_shards`` cuts the inputs into
shards that workers read themselves, and ``read_shard`` yields a shard's documents as batches of
UTF-8 bytes with offsets.
"""

from .inputs import CorpusInputs, Files, Texts, open_corpus
from .read import DEFAULT_BATCH_BYTES, MAX_CHUNK_CHARS, MAX_NEWLINES, DocBatch, read_shard, reporting_reads
from .plain import file_documents, holds_text, no_text_error, read_plain_text
from .shards import DEFAULT_SHARD_BYTES, Shard, plan_shards
from .sources import Source, describe_source, describe_sources, spool_stdin, spool_texts

__all__ = [
    "CorpusInputs",
    "Files",
    "Texts",
    "open_corpus",
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_SHARD_BYTES",
    "MAX_CHUNK_CHARS",
    "MAX_NEWLINES",
    "DocBatch",
    "Shard",
    "Source",
    "describe_source",
    "describe_sources",
    "file_documents",
    "plan_shards",
    "read_plain_text",
    "holds_text",
    "no_text_error",
    "read_shard",
    "reporting_reads",
    "spool_stdin",
    "spool_texts",
]
