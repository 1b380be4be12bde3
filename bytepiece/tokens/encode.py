"""``encode_corpus``: a whole corpus to token shards (or one token file), on the engine.

The plan is a function of the inputs and the shard size only: tasks are input ranges of about
the input bytes that fill ``SHARD_FILL`` of a shard (estimated from the model's bytes per token),
and a task starts a new shard when the next document would overflow the current one. Documents
are encoded the same way wherever they run (sampling streams are named by input and position),
so the shards, their sidecars and the manifest are the same bytes for local threads and for any
cluster.

On the local engine every task hands its batches to one pool of kernel threads, so all cores
encode even when there are fewer tasks than cores (a small corpus is one task), while each task
reads ahead on its own thread. On a Dask cluster each task encodes on its worker thread.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import DEFAULT_BATCH_BYTES, DEFAULT_SHARD_BYTES, open_corpus, plan_shards, read_shard
from ..corpus.sources import Source
from ..corpus.utf8 import check_errors
from ..engine import Engine, make_engine, parse_size, stands_once_committed
from ..errors import InputError
from ..interop.binfile import model_sha256, token_dtype
from ..model import BOS_ID, EOS_ID, file_sha256
from ..progress import Progress
from ..options import kernel_seed
from ..tokenizer import Tokenizer
from .pipeline import EncodedBatch, encode_batches, read_ahead
from .manifest import Manifest, manifest_path
from .output import check_output, commit_output, discard_staging, is_single_file, shard_entries, staging_path
from .task import (EncodeJob, EncodeTask, TaskResult, count_task, encode_task, number_documents, plan_tasks,
                   warm_up_encoding)

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

    path: Path  # the manifest (sharded output) or the token file (single file)
    files: list[Path]  # the token files, in corpus order
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
    engine: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.text_bytes / self.seconds / 1e6 if self.seconds else 0.0


def encode_corpus(
    inputs: Any,
    model: Any,
    out: str | os.PathLike,
    *,
    jsonl_field: str | None = None,
    parquet_column: str | None = None,
    text_document: str = "line",
    shard_size: int | str = DEFAULT_SHARD_SIZE,
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
    """Encode every document of ``inputs`` with ``model`` into token files under ``out``.

    ``inputs``: a path (text: one document per line; JSON Lines ``.jsonl``/``.ndjson``: the
    ``jsonl_field`` of each record; Parquet: the ``parquet_column``; gzip/zstd recognised by
    their content), a list of :class:`pathlib.Path`, ``"-"`` for stdin, or an iterable of texts.
    ``model``: a :class:`~bytepiece.Tokenizer`, a :class:`~bytepiece.Model` or a model file.
    ``out``: ``dir/name`` writes ``dir/name-00000.bin`` ... (each with ``.idx`` and ``.json``)
    and ``dir/name.manifest.json`` (read them with :class:`~bytepiece.TokenDataset`); a name
    ending in ``.bin`` writes one token file instead (:func:`~bytepiece.interop.binfile.open_bin`).
    ``shard_size``: bytes of tokens per shard (``"256M"``; default 1 GiB); no shard holds more,
    unless a single document does. ``alpha``/``seed``: sample segmentations (each document from
    its own stream, reproducible for any plan); ``errors="strict"`` stops at invalid UTF-8
    instead of replacing it. ``cluster``: ``None`` (local threads, ``workers`` of them),
    ``"local:N"``, a scheduler address or a ``distributed.Client``; a cluster's workers must see
    the inputs and ``out``'s directory. ``overwrite`` replaces an existing corpus of that name.
    ``special_tokens`` are added to the model's; ``allowed_special`` (``"all"`` or a set) names
    those matched in the text, which then become their ids (as ``Tokenizer.encode`` does).
    """
    t0 = time.perf_counter()
    out = Path(out)
    single = is_single_file(out)
    shard_bytes = parse_size(shard_size, name="shard_size")
    check_errors(errors)
    tokenizer, model_file = _tokenizer(model, normalization)
    if special_tokens:
        tokenizer.add_special_tokens(special_tokens)
    allowed = tuple(sorted(tokenizer.segmenter.specials.resolve(allowed_special))) if allowed_special else ()
    dtype = token_dtype(tokenizer.vocab_size)
    if shard_bytes < dtype.itemsize:
        raise InputError(f"shard_size must hold at least one token ({dtype.itemsize} bytes), got {shard_bytes}")
    alpha_value = _alpha(alpha)
    # the seed a user can give again (recorded in the manifest), and the kernels' hash of it
    seed_value = None if alpha_value is None else (seed if seed is not None else _random_seed())
    stream_seed = 0 if seed_value is None else int(kernel_seed(seed_value))
    if progress is None or isinstance(progress, bool):
        progress = Progress(progress)
    check_output(out, overwrite=overwrite)
    metadata = dict(metadata or {})
    options: dict[str, Any] = {
        "shard_size": None if single else shard_bytes,
        "add_bos": add_bos, "add_eos": add_eos, "alpha": alpha_value, "seed": seed_value,
        "errors": errors, "normalization": tokenizer.normalization,
    }
    if allowed:
        options["allowed_special"] = list(allowed)
    corpus = open_corpus(inputs, jsonl_field=jsonl_field, parquet_column=parquet_column, errors=errors,
                         text_document=text_document,
                         tmp_dir=tmp_dir)
    with corpus:
        options["documents"] = {s.format: DOCUMENTS[s.text_document if s.format == "text" else s.format]
                                for s in corpus.sources}
        shard_tokens = None if single else shard_bytes // dtype.itemsize
        target = DEFAULT_SHARD_BYTES if single else int(SHARD_FILL * (shard_tokens or 1) * bytes_per_token(tokenizer))
        tasks = plan_tasks(corpus.sources, target, single=single)
        sidecar_metadata = {"inputs": [s.label for s in corpus.sources], **{k: options[k] for k in
                            ("add_bos", "add_eos", "alpha", "seed", "errors")}, **metadata}
        json.dumps(sidecar_metadata)  # fail now, not after the work
        with make_engine(cluster, workers=workers) as engine, stands_once_committed() as committed:
            staging = staging_path(out)
            try:
                staging.mkdir()
                # absolute: the working directory of a cluster's workers is not ours
                job = EncodeJob(os.path.abspath(staging), shard_tokens, -1.0 if alpha_value is None else alpha_value,
                                stream_seed, BOS_ID if add_bos else -1, EOS_ID if add_eos else -1, errors,
                                tokenizer.normalization == "nfc", BATCH_BYTES,
                                engine.workers if engine.is_local else 1, engine.is_local,
                                json.dumps(sidecar_metadata), allowed)
                results = _run(engine, tasks, job, tokenizer, progress)
                parts = [part for result in results for part in result.parts]
                extra_model = {} if model_file is None else {"file": model_file.name, "file_sha256": file_sha256(model_file)}
                manifest = None
                if not single:
                    model_info = {"sha256": model_sha256(tokenizer.model), "normalization": tokenizer.normalization,
                                  **extra_model}
                    manifest = Manifest(dtype.name, tokenizer.vocab_size, shard_entries(parts, out.name), model_info,
                                        [_describe(s) for s in corpus.sources], {**options, "metadata": metadata},
                                        _stats(results))
                files = commit_output(staging, parts, out, manifest=manifest, extra_model=extra_model)
                description = engine.describe()
                committed()
            finally:
                discard_staging(staging)
    return EncodeSummary(
        path=out if single else manifest_path(out), files=files,
        n_tokens=sum(p.n_tokens for p in parts), n_documents=sum(p.n_documents for p in parts), dtype=dtype.name,
        input_bytes=sum(r.input_bytes for r in results), text_bytes=sum(r.text_bytes for r in results),
        invalid_utf8=sum(r.invalid_utf8 for r in results), seconds=time.perf_counter() - t0,
        alpha=alpha_value, seed=seed_value, tasks=len(tasks), engine=description)


def _run(engine: Engine, tasks: list[EncodeTask], job: EncodeJob, tokenizer: Tokenizer,
         progress: Progress) -> list[TaskResult]:
    with progress.status("compiling kernels (first run only)"):
        warm_up_encoding()
        engine.run_on_workers(warm_up_encoding)
    handle = engine.share(tokenizer)
    if job.alpha >= 0:
        with progress.phase("number documents", sum(t.size for t in tasks)) as advance:
            counts = []
            for task, count in engine.map(count_task, tasks, job):
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
            if not _disk_full(e):
                raise
            raise InputError(f"no space left on the device of {Path(job.staging).parent} while writing token "
                             "shards; nothing was written and any previous output is untouched; free some space "
                             "or write elsewhere (-o)") from e
    return results


def _disk_full(e: OSError) -> bool:
    import errno

    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def _tokenizer(model: Any, normalization: str | None) -> tuple[Tokenizer, Path | None]:
    if isinstance(model, Tokenizer):
        if normalization is not None and normalization != model.normalization:
            model = Tokenizer(model.model, normalization=normalization)  # type: ignore[arg-type]
        return model, None
    path = Path(model) if isinstance(model, (str, os.PathLike)) else None
    if normalization is None:
        return Tokenizer(model), path
    return Tokenizer(model, normalization=normalization), path  # type: ignore[arg-type]


def _random_seed() -> int:
    import random

    return random.SystemRandom().getrandbits(63)


def _alpha(alpha: float | None) -> float | None:
    """``None`` or a negative value: deterministic (Viterbi); otherwise the sampling alpha."""
    if alpha is None:
        return None
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not np.isfinite(alpha):
        raise InputError(f"alpha must be a finite number (or None for deterministic encoding), got {alpha!r}")
    return None if alpha < 0 else float(alpha)


def bytes_per_token(tokenizer: Tokenizer) -> float:
    """The model's expected bytes per token (its pieces' lengths weighted by their counts)."""
    model = tokenizer.model
    lengths = np.fromiter(map(len, model.pieces), dtype=np.float64, count=len(model.pieces))
    counts = model.counts.astype(np.float64)
    return float((lengths * counts).sum() / counts.sum()) if counts.sum() > 0 else 1.0


def _describe(source: Source) -> dict[str, Any]:
    info: dict[str, Any] = {"path": source.label, "format": source.format, "compression": source.compression}
    if source.format != "text":
        info["field"] = source.field
    info["bytes"] = source.size
    return info


def _stats(results: list[TaskResult]) -> dict[str, int]:
    return {"input_bytes": sum(r.input_bytes for r in results), "texts": sum(r.texts for r in results),
            "text_bytes": sum(r.text_bytes for r in results), "invalid_utf8": sum(r.invalid_utf8 for r in results)}


def encode_stream(
    inputs: Any,
    tokenizer: Tokenizer,
    *,
    jsonl_field: str | None = None,
    parquet_column: str | None = None,
    text_document: str = "line",
    add_bos: bool = False,
    add_eos: bool = False,
    alpha: float | None = None,
    seed: int | None = None,
    errors: str = "replace",
    workers: int | None = None,
    allowed_special: Any = (),
) -> Iterator[EncodedBatch]:
    """The documents of ``inputs`` encoded batch by batch, in order, on this process's threads
    (for outputs that are written as a stream: id lines, ``.npy``). Sampled ids are the same as
    ``encode_corpus`` writes for the same inputs, seed and alpha."""
    check_errors(errors)
    alpha_value = _alpha(alpha)
    encoder = tokenizer.document_encoder(alpha=-1.0 if alpha_value is None else alpha_value,
                                         seed=seed if seed is not None else _random_seed(), add_bos=add_bos,
                                         add_eos=add_eos, allowed_special=allowed_special, num_threads=workers)
    index = 0
    with open_corpus(inputs, jsonl_field=jsonl_field, parquet_column=parquet_column, errors=errors,
                     text_document=text_document) as corpus:
        for piece in plan_shards(corpus.sources, DEFAULT_SHARD_BYTES):
            batches = read_ahead(read_shard(piece, purpose="encode", errors=errors,
                                            normalize=tokenizer.normalization == "nfc"))
            try:
                for encoded in encode_batches(batches, encoder, first_index=index, dtype=tokenizer.segmenter.id_dtype):
                    index += encoded.n_documents
                    yield encoded
            finally:
                batches.close()

