"""Shards: the units of work of every corpus pass, described (never carried) as file + range.

A worker receives a :class:`Shard` and reads its part of the input itself, so nothing large
travels from the client to a cluster. Uncompressed text and JSON Lines are cut into byte ranges
at any offset: a shard owns the lines that *start* inside its range (the reader skips a line cut
at its start and reads past its end to finish the last one), so every line is read exactly once
whatever the cut points. A compressed file is one shard (a gzip or zstd stream cannot be
entered in the middle); a Parquet file is cut between row groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError
from .sources import Source

DEFAULT_SHARD_BYTES = 64 << 20
MIN_SHARD_BYTES = 1 << 12


@dataclass(frozen=True)
class Shard:
    """Lines starting at byte ``start`` up to (not including) ``end`` of ``source``, or row groups
    ``start..end-1`` of a Parquet file; ``index`` is the shard's place in corpus order."""

    source: Source
    start: int
    end: int
    index: int
    size: int  # input bytes it covers (for progress bars and scheduling)


def plan_shards(sources: Sequence[Source], shard_bytes: int = DEFAULT_SHARD_BYTES) -> list[Shard]:
    """Shards of about ``shard_bytes`` input bytes each, in corpus order."""
    if shard_bytes < MIN_SHARD_BYTES:
        raise InputError(f"shard size must be at least {MIN_SHARD_BYTES} bytes, got {shard_bytes}")
    shards: list[Shard] = []
    for source in sources:
        if source.format == "parquet":
            ranges = _parquet_ranges(source, shard_bytes)
        elif source.splittable and source.size > shard_bytes:
            n = -(-source.size // shard_bytes)
            cuts = [source.size * i // n for i in range(n + 1)]
            ranges = [(a, b, b - a) for a, b in zip(cuts[:-1], cuts[1:])]
        else:
            ranges = [(0, source.size, source.size)]
        for start, end, size in ranges:
            shards.append(Shard(source, start, end, len(shards), size))
    return shards


def _parquet_ranges(source: Source, shard_bytes: int) -> list[tuple[int, int, int]]:
    """Row-group ranges of about ``shard_bytes`` (compressed) each; sizes are compressed bytes."""
    pf = open_parquet(source)
    meta = pf.metadata
    if source.field not in pf.schema_arrow.names:
        raise InputError(f"{source.label}: no column {source.field!r} (columns: {', '.join(pf.schema_arrow.names[:8])}); "
                         "pick the text column with parquet_column (CLI: --parquet-column)")
    ranges: list[tuple[int, int, int]] = []
    start, acc = 0, 0
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        acc += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        if acc >= shard_bytes:
            ranges.append((start, rg + 1, acc))
            start, acc = rg + 1, 0
    if start < meta.num_row_groups or not ranges:
        ranges.append((start, meta.num_row_groups, acc))
    return ranges


def open_parquet(source: Source):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{source.label} is a Parquet file; reading it needs the parquet extra: "
                         'pip install "bytepiece-tk[parquet]"') from None
    from .sources import open_raw

    try:
        return pq.ParquetFile(open_raw(source.path))
    except Exception as e:  # pyarrow raises ArrowInvalid and friends for corrupt files
        raise InputError(f"{source.label}: not a readable Parquet file ({e})") from None
