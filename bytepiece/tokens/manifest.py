"""The manifest of a sharded token corpus: which shard files make it, in which order, and how to
check that the files on disk are the ones it lists.

``out/corpus.manifest.json`` describes the shards ``out/corpus-00000.bin``, ... (each a
single-file token file of :mod:`bytepiece.tokens.binfile` in the manifest's ``layout``:
``.bin`` + ``.bin.idx`` + ``.bin.json``, or Megatron's ``.bin`` + ``.idx`` + ``.bin.json``). It is written last, so its presence means every shard it lists was complete
when it was written; readers trust nothing else. Shard paths are names relative to the
manifest's directory and must stay inside it, so a manifest cannot make a reader open files
elsewhere.

Every shard records its full sha256 (``sha256``, ``index_sha256``: checked by
``TokenDataset(..., verify=True)``) and a *probe* hash of its size and three 64 KiB blocks
(start, middle, end), which a reader checks when it first maps the shard: a replaced, truncated
or regenerated file is caught for the price of three small reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeGuard

from ..io.read import open_regular, read_limited
from ..errors import ModelFormatError
from ..model import file_sha256

__all__ = ["Manifest", "ShardEntry", "file_sha256", "manifest_path", "parse_manifest", "probe_sha256", "read_manifest"]

FORMAT = "bytepiece-corpus"
VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
PROBE_BLOCK = 64 << 10
MAX_MANIFEST_BYTES = 256 << 20
#: Per shard, counts below 2**62 (as in a token file's sidecar); the totals must fit int64.
MAX_COUNT = 1 << 62
MAX_TOTAL = (1 << 63) - 1


def manifest_path(prefix: str | os.PathLike) -> Path:
    """``out/corpus`` -> ``out/corpus.manifest.json``."""
    prefix = Path(prefix)
    return prefix.with_name(prefix.name + MANIFEST_SUFFIX)


def shard_file_name(prefix_name: str, number: int) -> str:
    """``corpus``, 3 -> ``corpus-00003.bin``."""
    return f"{prefix_name}-{number:05d}.bin"


def shard_files_pattern(prefix_name: str) -> re.Pattern[str]:
    """Names of the files of a corpus's shards, in either layout (``.bin``, ``.bin.idx`` or
    ``.idx``, ``.bin.json``)."""
    return re.compile(re.escape(prefix_name) + r"-(\d{5,})(\.bin|\.bin\.idx|\.idx|\.bin\.json)")


def probe_sha256(path: str | os.PathLike) -> str:
    """sha256 of the file's size (8 bytes, little-endian) and of its first, middle and last
    ``PROBE_BLOCK`` bytes: three reads, whatever the file's size."""
    f, st = open_regular(path, what="shard file", error=ModelFormatError)
    with f:
        return probe_sha256_of(f, st.st_size)


def probe_sha256_of(f: IO[bytes], size: int) -> str:
    """:func:`probe_sha256` of the open regular file ``f`` of ``size`` bytes."""
    h = hashlib.sha256(size.to_bytes(8, "little"))
    for start in (0, max(0, size // 2 - PROBE_BLOCK // 2), max(0, size - PROBE_BLOCK)):
        f.seek(start)
        h.update(f.read(PROBE_BLOCK))
    return h.hexdigest()


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``, read (a regular file of at most ``MAX_MANIFEST_BYTES``) and
    validated."""
    return parse_manifest(read_limited(path, limit=MAX_MANIFEST_BYTES, what="manifest", error=ModelFormatError),
                          str(path))


@dataclass(frozen=True)
class ShardEntry:
    """One shard as the manifest lists it."""

    file: str  # the .bin, relative to the manifest's directory
    n_tokens: int
    n_documents: int
    sha256: str
    index_sha256: str
    probe_sha256: str
    index_probe_sha256: str

    def index_file(self, layout: str) -> str:
        """The shard's index (``corpus-00000.bin.idx``; Megatron's: ``corpus-00000.idx``)."""
        return self.file.removesuffix(".bin") + ".idx" if layout == "megatron" else self.file + ".idx"

    @property
    def sidecar_file(self) -> str:
        return self.file + ".json"


@dataclass
class Manifest:
    dtype: str  # numpy name of the little-endian token type: "uint16" or "uint32"
    vocab_size: int
    shards: list[ShardEntry]
    model: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    layout: str = "bytepiece"  # of the shards' token files: "bytepiece" or "megatron"

    @property
    def n_tokens(self) -> int:
        return sum(s.n_tokens for s in self.shards)

    @property
    def n_documents(self) -> int:
        return sum(s.n_documents for s in self.shards)

    def to_json(self) -> str:
        """The manifest's text; a function of the content only (no times, hosts or run ids), so
        the same corpus encoded on any plan gives the same bytes."""
        data = {
            "format": FORMAT,
            "version": VERSION,
            "layout": self.layout,
            "dtype": self.dtype,
            "byteorder": "little",
            "vocab_size": self.vocab_size,
            "n_tokens": self.n_tokens,
            "n_documents": self.n_documents,
            "model": self.model,
            "inputs": self.inputs,
            "options": self.options,
            "stats": self.stats,
            "shards": [asdict(s) for s in self.shards],
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


#: token types of each layout
_DTYPES = {"bytepiece": ("uint16", "uint32"), "megatron": ("uint16", "int32")}
#: the most ids a token type can hold (a larger vocab_size would make the id check meaningless)
_ID_LIMITS = {"uint16": 1 << 16, "uint32": 1 << 32, "int32": 1 << 31}
_SHARD_FIELDS = {"file": str, "n_tokens": int, "n_documents": int, "sha256": str, "index_sha256": str,
                 "probe_sha256": str, "index_probe_sha256": str}


def parse_manifest(text: str | bytes, where: str) -> Manifest:
    """Validate a manifest's JSON (types, counts, shard names) and return it."""
    data = _manifest_json(text, where)
    layout, dtype, vocab_size = _header(data, where)
    raw_shards = data.get("shards")
    if not isinstance(raw_shards, list):
        raise ModelFormatError(f"{where}: 'shards' must be a list")
    shards = [_shard(raw, k, where) for k, raw in enumerate(raw_shards)]
    for name in ("n_tokens", "n_documents"):
        total = sum(getattr(s, name) for s in shards)
        if total > MAX_TOTAL:
            raise ModelFormatError(f"{where}: the shards' {name} add up to {total}, more than 2**63 - 1; the manifest "
                                   "is damaged, re-encode the corpus")
        if data.get(name) != total:
            raise ModelFormatError(f"{where}: {name} is {data.get(name)!r} but its shards add up to {total}")
    model, inputs, options, stats = (data.get("model") or {}, data.get("inputs") or [], data.get("options") or {},
                                     data.get("stats") or {})
    if not (isinstance(model, dict) and isinstance(inputs, list) and isinstance(options, dict) and isinstance(stats, dict)):
        raise ModelFormatError(f"{where}: 'model', 'options' and 'stats' must be objects and 'inputs' a list")
    return Manifest(dtype, vocab_size, shards, model, inputs, options, stats, layout)


def _manifest_json(text: str | bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ModelFormatError(f"{where} is not valid JSON ({e}); the corpus was not written completely, re-encode it") from None
    except RecursionError:
        raise ModelFormatError(f"{where} is not a {FORMAT} manifest (its JSON is nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFormatError(f"{where} is not a {FORMAT} manifest")
    version = data.get("version")
    if not _is_int(version) or version > VERSION:
        raise ModelFormatError(f"{where} has format version {version!r}; upgrade bytepiece to read it")
    return data


def _header(data: dict[str, Any], where: str) -> tuple[str, str, int]:
    """The layout, token type and vocabulary size a manifest declares."""
    layout = data.get("layout", "bytepiece")
    if layout not in _DTYPES:
        raise ModelFormatError(f"{where}: unknown shard layout {layout!r}; upgrade bytepiece to read it")
    dtype = data.get("dtype")
    if dtype not in _DTYPES[layout] or data.get("byteorder", "little") != "little":
        raise ModelFormatError(f"{where}: unsupported token type {dtype!r} / byte order {data.get('byteorder')!r}")
    vocab_size = data.get("vocab_size")
    limit = _ID_LIMITS[dtype]
    if not _is_int(vocab_size) or not 1 <= vocab_size <= limit:
        raise ModelFormatError(f"{where}: vocab_size must be an integer from 1 to {limit} for {dtype} ids, got "
                               f"{vocab_size!r}; the manifest is damaged, re-encode the corpus")
    return layout, dtype, int(vocab_size)


def _shard(raw: Any, k: int, where: str) -> ShardEntry:
    if not isinstance(raw, dict):
        raise ModelFormatError(f"{where}: shard {k} is not an object")
    for name, kind in _SHARD_FIELDS.items():
        value = raw.get(name)
        if not (_is_int(value) if kind is int else isinstance(value, kind)):
            raise ModelFormatError(f"{where}: shard {k} field {name!r} must be {kind.__name__}, got {value!r}")
    if not (0 <= raw["n_tokens"] < MAX_COUNT and 0 <= raw["n_documents"] < MAX_COUNT):
        raise ModelFormatError(f"{where}: shard {k} has n_tokens {raw['n_tokens']} and n_documents "
                               f"{raw['n_documents']}; each must be a count from 0 to 2**62 - 1 (the manifest is "
                               "damaged, re-encode the corpus)")
    check_relative(raw["file"], where)
    return ShardEntry(**{name: raw[name] for name in _SHARD_FIELDS})


def check_relative(name: str, where: str) -> None:
    """Refuse shard paths that could leave the manifest's directory (absolute paths, ``..``,
    drive letters, backslashes)."""
    if (not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name or "\x00" in name
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise ModelFormatError(f"{where}: shard path {name!r} is not a plain name inside the manifest's directory; "
                               "refusing to read it")


def resolve_inside(directory: Path, name: str, where: str) -> Path:
    """``directory / name``, refusing a path that resolves (through symbolic links) outside it."""
    check_relative(name, where)
    path = directory / name
    root = directory.resolve()
    target = path.resolve()
    if target != root and root not in target.parents:
        raise ModelFormatError(f"{where}: shard {name!r} resolves to {target}, outside {root}; refusing to read it")
    return path


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
