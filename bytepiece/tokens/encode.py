"""``encode_corpus``: a whole corpus to token files of any format (:mod:`.formats`).

Two ways to run, one result. A sharded output (``format="bin"`` or ``"megatron"`` with ``out``
a name prefix) runs on the engine: tasks are input ranges of about the input bytes that fill
``SHARD_FILL`` of a shard, each writes its parts into a staging directory, and the parts,
their sidecars and the manifest are committed together at the end; on a Dask cluster the
workers do the reading, encoding and writing. Any other output (a file of ids or pieces,
standard output, an ``.npy`` pair, one ``.bin``) is written as a stream in this process, batch by
batch and in order, so the first documents are written while the rest is still being read.

Every document is encoded by the tokenizer's one document encoder, numbered by its place in
the whole input (a sampled corpus is the same bytes for any plan; with sampling, a sharded run
counts each task's documents first, so that every task knows where its numbering starts).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import DEFAULT_BATCH_BYTES, DEFAULT_SHARD_BYTES, CorpusInputs, open_corpus, plan_shards, read_shard
from ..corpus.once import arrives as input_arrives
from ..corpus.once import waiting as input_waiting
from ..corpus.sources import Source, TextDocument
from ..corpus.utf8 import check_errors
from ..engine import Engine, held_interrupts, make_engine, stands_once_committed
from ..engine.make import check_workers_apply
from ..units import parse_size
from ..errors import InputError
from ..io.atomic import is_stream
from ..model import file_sha256
from ..options import alpha_value
from ..progress import Progress
from ..tokenizer import Tokenizer
from .binfile import layout_dtype
from .formats import TokenFormat, token_format
from .manifest import Manifest, manifest_path
from .output import check_output, commit_output, discard_staging, shard_entries, staging_path
from .pipeline import EncodedBatch, encode_batches, read_ahead
from .task import EncodeJob, EncodeTask, TaskResult, count_task, encode_task, number_documents, plan_tasks
from .task import warm_up_encoding

DEFAULT_SHARD_SIZE = 1 << 30
#: input bytes a task reads at a time (one batch of documents in memory per task, plus one read ahead)
BATCH_BYTES = DEFAULT_BATCH_BYTES
#: tasks are planned to fill this share of a shard, so that a task seldom spills a small extra shard
SHARD_FILL = 0.8
DOCUMENTS = {  # what a document is, by input format (text: by text_document)
    "line": "each line of text, without its newline",
    "file": "each text file, newlines kept",
    "jsonl": "the text field of each record, newlines kept",
    "parquet": "the text column of each row, newlines kept",
}


@dataclass
class EncodeSummary:
    """What ``encode_corpus`` wrote and how it went."""

    path: Path | None  # the manifest (sharded), the token file, or None for standard output
    files: list[Path]  # the token files (ids; shards in corpus order), without their indexes and sidecars
    n_tokens: int
    n_documents: int
    dtype: str
    input_bytes: int
    text_bytes: int  # UTF-8 bytes encoded (after normalization)
    invalid_utf8: int
    seconds: float
    alpha: float | None
    seed: int | None
    tasks: int
    format: str = "bin"
    engine: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.text_bytes / self.seconds / 1e6 if self.seconds else 0.0

    @property
    def sharded(self) -> bool:
        return self.path is not None and self.path.name.endswith(".manifest.json")


@dataclass
class _Run:
    """One call's options, checked and resolved (what both ways of running share)."""

    tokenizer: Tokenizer
    model_file: Path | None
    alpha: float | None
    seed: int | None  # the seed a user can give again (recorded), not the kernels' hash of it
    allowed: tuple[str, ...]
    add_bos: bool
    add_eos: bool
    errors: str
    metadata: dict[str, Any]

    def options(self, shard_bytes: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"shard_size": shard_bytes, "add_bos": self.add_bos, "add_eos": self.add_eos,
                               "alpha": self.alpha, "seed": self.seed, "errors": self.errors,
                               "normalization": self.tokenizer.normalization}
        if self.allowed:
            out["allowed_special"] = list(self.allowed)
        # what decoding needs to turn their ids back into text
        out["special_tokens"] = {token: self.tokenizer.piece_to_id(token) for token in self.tokenizer.special_tokens}
        return out

    def sidecar_metadata(self, sources: list[Source]) -> dict[str, Any]:
        options = self.options(None)
        recorded = ("add_bos", "add_eos", "alpha", "seed", "errors")
        meta: dict[str, Any] = {"inputs": [s.label for s in sources], "documents": _documents(sources),
                                **{k: options[k] for k in recorded}, **self.metadata}
        meta["special_tokens"] = options["special_tokens"]  # decoding reads it: the caller's metadata cannot replace it
        json.dumps(meta)  # fail now, not after the work
        return meta

    def model_file_info(self) -> dict[str, Any]:
        if self.model_file is None:
            return {}
        return {"file": self.model_file.name, "file_sha256": file_sha256(self.model_file)}


def encode_corpus(
    inputs: Any,
    model: Any,
    out: str | os.PathLike | None = None,
    *,
    format: str = "bin",
    jsonl_field: str | None = None,
    parquet_column: str | None = None,
    text_document: TextDocument = "line",
    shard_size: int | str | None = None,
    add_bos: bool = False,
    add_eos: bool = False,
    alpha: float | None = None,
    seed: int | None = None,
    normalization: str | None = None,
    errors: str = "replace",
    cluster: Any = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool | Progress | None = False,  # or any object with Progress's phase() and status()
    metadata: dict[str, Any] | None = None,
    tmp_dir: str | os.PathLike | None = None,
    special_tokens: Any = (),
    allowed_special: Any = (),
) -> EncodeSummary:
    """Encode every document of ``inputs`` with ``model`` into token files of ``format``.

    ``inputs``: a path (text: one document per line, or per file with
    ``text_document="file"``; JSON Lines ``.jsonl``/``.ndjson``: the ``jsonl_field`` of each
    record; Parquet: the ``parquet_column``; gzip/zstd recognised by their content), a list of
    :class:`pathlib.Path`, ``"-"`` for standard input (read as it arrives), or an iterable of
    texts. ``model``: a :class:`~bytepiece.Tokenizer`, a :class:`~bytepiece.Model` or a model file.
    ``format``: a name of :data:`bytepiece.tokens.formats.FORMATS` (``"ids"``, ``"pieces"``,
    ``"npy"``, ``"bin"``, ``"megatron"``). ``out``: the file to write (``None``: standard output,
    text formats only); for ``"bin"`` and ``"megatron"`` a name without ``.bin`` (``dir/name``) is
    a shard prefix: ``dir/name-00000.bin`` ... and ``dir/name.manifest.json`` (read them with
    :class:`~bytepiece.TokenDataset`). ``shard_size``: bytes of tokens per shard (``"256M"``;
    default 1 GiB), for shards only; no shard holds more, unless a single document does. ``alpha``/``seed``: sample
    segmentations (document i of the input draws from stream i of the seed: the same ids for any
    plan, and as ``Tokenizer.encode_batch`` gives); ``errors="strict"`` stops at invalid UTF-8.
    ``cluster`` (sharded output only): ``None`` (local threads, ``workers`` of them),
    ``"local:N"``, a scheduler address or a ``distributed.Client``; a cluster's workers must see
    the inputs and ``out``'s directory. ``overwrite`` replaces existing output.
    ``special_tokens`` are added to the model's; ``allowed_special`` (``"all"`` or a set) names
    those matched in the text, which then become their ids (as ``Tokenizer.encode`` does).
    """
    t0 = time.perf_counter()
    fmt = check_request(format, out, cluster=cluster, workers=workers)
    path = None if out is None else Path(out)
    check_errors(errors)
    run = _resolve(model, normalization, special_tokens, allowed_special, alpha, seed, add_bos, add_eos, errors,
                   metadata)
    if progress is None or isinstance(progress, bool):
        progress = Progress(progress)
    if fmt.sharded(path):
        assert path is not None
        shard_bytes = parse_size(DEFAULT_SHARD_SIZE if shard_size is None else shard_size, name="shard_size")
        dtype = layout_dtype(fmt.layout or "bytepiece", run.tokenizer.vocab_size)
        if shard_bytes < dtype.itemsize:
            raise InputError(f"shard_size must hold at least one token ({dtype.itemsize} bytes), got {shard_bytes}")
        check_output(path, overwrite=overwrite)
        with open_corpus(inputs, jsonl_field=jsonl_field, parquet_column=parquet_column, errors=errors,
                         text_document=text_document, tmp_dir=tmp_dir) as corpus:
            return _encode_shards(fmt, path, run, corpus, shard_bytes, cluster, workers, progress, t0)
    return _encode_to_file(fmt, path, run, inputs, dict(jsonl_field=jsonl_field, parquet_column=parquet_column,
                           text_document=text_document, errors=errors), workers, overwrite, progress, t0)


#: how to ask for shards, in both spellings (see ``cli.messages.in_cli_words``)
SHARDS_HINT = ("use format='bin' (CLI: --format bin) or 'megatron' with an output name prefix, out=PREFIX "
               "(CLI: -o PREFIX), a name without .bin")


def check_request(format: str, out: str | os.PathLike | None, *, cluster: Any = None,
                  workers: int | None = None) -> TokenFormat:
    """The format called ``format``, once the output fits it: a format that writes files needs a
    file path, a cluster needs shards (``bin`` or ``megatron`` into a name prefix) and brings its
    own workers (``workers`` counts local threads).
    ``encode_corpus`` checks this before it loads the model; so does the command line, before it
    reads anything."""
    fmt = token_format(format)
    where = f"format={format!r} (CLI: --format {format})"
    if fmt.binary and out is None:
        example = "out/corpus (shards) or corpus.bin" if fmt.shardable else "ids.npy"
        raise InputError(f"{where} writes files: pass out=PATH (CLI: -o PATH), e.g. {example}")
    if fmt.binary and out is not None and is_stream(out):
        raise InputError(f"{where} writes files beside {os.fspath(out)}; give a regular file path as out= (CLI: -o)")
    if cluster is not None and not fmt.sharded(None if out is None else Path(out)):
        raise InputError(f"cluster= (CLI: --cluster) writes shards: {SHARDS_HINT}")
    check_workers_apply(cluster, workers, cli="--threads")
    return fmt


def _resolve(model: Any, normalization: str | None, special_tokens: Any, allowed_special: Any, alpha: Any,
             seed: int | None, add_bos: bool, add_eos: bool, errors: str, metadata: dict[str, Any] | None) -> _Run:
    tokenizer, model_file = _tokenizer(model, normalization)
    if special_tokens:
        tokenizer.add_special_tokens(special_tokens)
    allowed = tuple(sorted(tokenizer.segmenter.specials.resolve(allowed_special))) if allowed_special else ()
    if allowed_special and not tokenizer.special_tokens:
        warnings.warn("allowed_special (CLI: --allow-special) has no effect: the model has no special tokens and no "
                      "special_tokens (CLI: --special-token) is given", stacklevel=3)
    value = None if alpha is None else alpha_value(alpha)
    value = None if value is None or value < 0 else value
    seed_value = None if value is None else (seed if seed is not None else _random_seed())
    return _Run(tokenizer, model_file, value, seed_value, allowed, add_bos, add_eos, errors, dict(metadata or {}))


# -- one stream, in this process ---------------------------------------------------------------------

def _encode_to_file(fmt: TokenFormat, path: Path | None, run: _Run, inputs: Any, read: dict[str, Any],
                    workers: int | None, overwrite: bool, progress: Progress, t0: float) -> EncodeSummary:
    input_bytes = text_bytes = invalid = 0
    with open_corpus(inputs, once=True, **read) as corpus:
        writer = fmt.writer(path, run.tokenizer, overwrite=overwrite, model_path=run.model_file,
                            metadata=run.sidecar_metadata(corpus.sources))
        try:
            total = sum(s.size for s in corpus.sources if s.size >= 0) or None
            with progress.phase("encode", total) as advance:
                for batch in _stream(corpus, run, workers):
                    writer.write(batch.ids, batch.offsets)
                    input_bytes += batch.input_bytes
                    text_bytes += batch.text_bytes
                    invalid += batch.invalid_utf8
                    advance(batch.input_bytes)
            written = writer.close()
        except BaseException:
            writer.abort()
            raise
    files = [] if written is None else [written]
    dtype = str(getattr(writer, "dtype", run.tokenizer.segmenter.id_dtype).name)
    return EncodeSummary(path=written, files=files, n_tokens=writer.n_tokens, n_documents=writer.n_documents,
                         dtype=dtype, input_bytes=input_bytes, text_bytes=text_bytes, invalid_utf8=invalid,
                         seconds=time.perf_counter() - t0, alpha=run.alpha, seed=run.seed, tasks=1, format=fmt.name,
                         engine={"backend": "local", "workers": workers})


def _stream(corpus: CorpusInputs, run: _Run, workers: int | None) -> Iterator[EncodedBatch]:
    encoder = run.tokenizer.document_encoder(
        alpha=-1.0 if run.alpha is None else run.alpha, seed=run.seed, add_bos=run.add_bos, add_eos=run.add_eos,
        allowed_special=run.allowed, num_threads=workers)
    index = 0
    for piece in plan_shards(corpus.sources, DEFAULT_SHARD_BYTES):
        batches = read_shard(piece, purpose="encode", errors=run.errors, normalize=run.tokenizer.normalization == "nfc")
        more_waiting = None
        if piece.source.once and input_arrives(piece.source.path):
            # read here, not ahead on a thread: a Ctrl-C then ends a read that waits for input,
            # and what is encoded goes out before the next read waits
            more_waiting = functools.partial(input_waiting, piece.source.path)
        else:
            batches = read_ahead(batches)
        try:
            for encoded in encode_batches(batches, encoder, first_index=index, dtype=run.tokenizer.segmenter.id_dtype,
                                          more_waiting=more_waiting):
                index += encoded.n_documents
                yield encoded
        finally:
            batches.close()


def encode_stream(inputs: Any, tokenizer: Tokenizer, *, jsonl_field: str | None = None,
                  parquet_column: str | None = None, text_document: TextDocument = "line", add_bos: bool = False,
                  add_eos: bool = False, alpha: float | None = None, seed: int | None = None, errors: str = "replace",
                  workers: int | None = None, allowed_special: Any = ()) -> Iterator[EncodedBatch]:
    """The documents of ``inputs`` encoded batch by batch, in order, on this process's threads:
    what ``encode_corpus`` writes to files and standard output, for callers that consume the ids
    themselves. Sampled ids are those ``encode_corpus`` writes for the same inputs and seed."""
    check_errors(errors)
    run = _resolve(tokenizer, None, (), allowed_special, alpha, seed, add_bos, add_eos, errors, None)
    with open_corpus(inputs, jsonl_field=jsonl_field, parquet_column=parquet_column, errors=errors,
                     text_document=text_document, once=True) as corpus:
        yield from _stream(corpus, run, workers)


# -- shards, on the engine ----------------------------------------------------------------------------

def _encode_shards(fmt: TokenFormat, out: Path, run: _Run, corpus: CorpusInputs, shard_bytes: int, cluster: Any,
                   workers: int | None, progress: Progress, t0: float) -> EncodeSummary:
    tokenizer = run.tokenizer
    layout = fmt.layout or "bytepiece"
    dtype = layout_dtype(layout, tokenizer.vocab_size)
    shard_tokens = shard_bytes // dtype.itemsize
    tasks = plan_tasks(corpus.sources, int(SHARD_FILL * shard_tokens * _expected_bytes_per_token(tokenizer)))
    options = {**run.options(shard_bytes), "documents": _documents(corpus.sources), "metadata": run.metadata}
    sidecar = json.dumps(run.sidecar_metadata(corpus.sources))
    with make_engine(cluster, workers=workers) as engine, stands_once_committed() as committed:
        staging = staging_path(out)
        try:
            staging.mkdir()
            # absolute: the working directory of a cluster's workers is not ours
            job = EncodeJob(os.path.abspath(staging), shard_tokens, -1.0 if run.alpha is None else run.alpha,
                            run.seed, run.add_bos, run.add_eos, run.errors,
                            tokenizer.normalization == "nfc", BATCH_BYTES, engine.workers if engine.is_local else 1,
                            engine.is_local, sidecar, run.allowed, layout)
            results = _run_tasks(engine, tasks, job, tokenizer, progress)
            parts = [part for result in results for part in result.parts]
            model_info = {"sha256": tokenizer.model_sha256, "normalization": tokenizer.normalization,
                          **run.model_file_info()}
            manifest = Manifest(dtype.name, tokenizer.vocab_size, shard_entries(parts, out.name), model_info,
                                [_describe(s) for s in corpus.sources], options, _stats(results), layout=layout)
            with held_interrupts():  # the output is complete once the commit returns: no Ctrl-C in between
                commit_output(staging, parts, out, manifest=manifest, extra_model=run.model_file_info())
                files = [out.parent / entry.file for entry in manifest.shards]
                description = engine.describe()
                committed()
        finally:
            discard_staging(staging)
    return EncodeSummary(
        path=manifest_path(out), files=files, n_tokens=sum(p.n_tokens for p in parts),
        n_documents=sum(p.n_documents for p in parts), dtype=dtype.name,
        input_bytes=sum(r.input_bytes for r in results), text_bytes=sum(r.text_bytes for r in results),
        invalid_utf8=sum(r.invalid_utf8 for r in results), seconds=time.perf_counter() - t0, alpha=run.alpha,
        seed=run.seed, tasks=len(tasks), format=fmt.name, engine=description)


def _run_tasks(engine: Engine, tasks: list[EncodeTask], job: EncodeJob, tokenizer: Tokenizer,
               progress: Progress) -> list[TaskResult]:
    with progress.status("loading kernels (compiled on the first run)"):
        warm_up_encoding()
        engine.run_on_workers(warm_up_encoding, error=InputError)
    # a cluster's workers may not see the model file: they get the model itself
    handle = engine.share(tokenizer if engine.is_local else tokenizer.by_value(), error=InputError)
    if job.alpha >= 0:
        with progress.phase("number documents", sum(t.size for t in tasks)) as advance:
            counts = []
            for task, count in engine.map(count_task, tasks, job, error=InputError):
                counts.append(count)
                advance(task.size)
        tasks = number_documents(tasks, counts)
    results: list[TaskResult] = []
    with progress.phase("encode", sum(t.size for t in tasks)) as advance:
        report = advance if engine.is_local else None
        try:
            for task, result in engine.map(encode_task, tasks, job, handle, report, error=InputError):
                results.append(result)
                advance(max(0, task.size - result.input_bytes) if report is not None else task.size)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise InputError(f"no space left on the device of {Path(job.staging).parent} while writing token "
                             "shards; nothing was written and any previous output is untouched; free some space "
                             "or write elsewhere (-o)") from e
    return results


# -- helpers ---------------------------------------------------------------------------------------

def _tokenizer(model: Any, normalization: str | None) -> tuple[Tokenizer, Path | None]:
    """The tokenizer, and the model file it was named by (recorded in the output)."""
    path = Path(model) if isinstance(model, (str, os.PathLike)) else None
    return Tokenizer.of(model, normalization=normalization), path  # type: ignore[arg-type]


def _random_seed() -> int:
    import random

    return random.SystemRandom().getrandbits(63)


def _expected_bytes_per_token(tokenizer: Tokenizer) -> float:
    """The model's expected bytes per token (its pieces' lengths weighted by their counts)."""
    model = tokenizer.model
    lengths = np.fromiter(map(len, model.pieces), dtype=np.float64, count=len(model.pieces))
    counts = model.counts.astype(np.float64)
    return float((lengths * counts).sum() / counts.sum()) if counts.sum() > 0 else 1.0


def _documents(sources: list[Source]) -> dict[str, str]:
    return {s.format: DOCUMENTS[s.text_document if s.format == "text" else s.format] for s in sources}


def _describe(source: Source) -> dict[str, Any]:
    info: dict[str, Any] = {"path": source.label, "format": source.format, "compression": source.compression}
    if source.format == "text":
        info["documents"] = source.text_document
    else:
        info["field"] = source.field
    info["bytes"] = source.size
    return info


def _stats(results: list[TaskResult]) -> dict[str, int]:
    return {"input_bytes": sum(r.input_bytes for r in results), "texts": sum(r.texts for r in results),
            "text_bytes": sum(r.text_bytes for r in results), "invalid_utf8": sum(r.invalid_utf8 for r in results)}
