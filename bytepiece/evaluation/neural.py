"""The transformer LMs of the harness (``bytepiece eval run --lm transformer``): for one
tokenizer, a model trained on the Viterbi segmentation and one on sampled segmentations, each
from token shards written by :func:`bytepiece.tokens.encode_corpus` (what ``bytepiece encode``
writes) and read back through :class:`bytepiece.tokens.TokenDataset`, so the harness runs the
project's real data path.

Every tokenizer reads the same text: the first ``train_bytes // epochs`` bytes of the harness's
LM training text (its chunks, whole), ``epochs`` times; the sampled model gets a fresh sample of
it per epoch (seeds ``seed + epoch``). The budget is in bytes, not tokens, so a larger vocabulary
is not given more text.

Each model is a :class:`TransformerJob`, trained and then scored on the held-out files by
:func:`run_transformer_job`; the runner hands the jobs to worker processes
(:func:`bytepiece.engine.pool.process_jobs`, :func:`job_processes` says how many) and merges
their results (:func:`merge_job_result`).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..continuation.neural import TransformerConfig, TransformerLM, require_torch, torch_threads
from ..engine.local import default_workers
from ..errors import InputError
from ..tokens import TokenDataset, encode_corpus
from .continuation import continuation_experiment

LM_KINDS = ("kn", "transformer")
TRANSFORMER_LMS = {"transformer-det": None, "transformer-sampled": "sampled"}
DEFAULT_TRANSFORMER_CUTS = 15  # per file: a few minutes per vocabulary on two CPU cores
DEFAULT_TRANSFORMER_MAX_STATES = 64
# Strategies whose dynamic program walks far more bytes than the cut's neighbourhood: cheap in the KN
# kernels, hours for a transformer on CPU (one pass per byte). The library runs them with any LM
# (ByteLevelLM, tokenizations "all" and "canonical"); the harness leaves them out for the transformer.
TRANSFORMER_SKIPS = {
    "exact-all": "walks the whole held-out text from its first byte (one transformer pass per byte and state)",
    "exact-canonical": "walks the prompt's whole last chunk, paragraph-long in prose (16 KB in en), one transformer "
                       "pass per byte",
}


def transformer_config(seed: int, options: dict[str, Any]) -> TransformerConfig:
    """The run's transformer configuration: ``options`` over the defaults, the run's seed unless
    ``options`` names one."""
    try:
        cfg = TransformerConfig(**{"seed": seed, **options})
    except TypeError as e:
        raise InputError(f"transformer options: {e}") from None
    cfg.validate()
    return cfg


def check_lms(lms: Sequence[str], seed: int, options: dict[str, Any]) -> None:
    """``lms`` names known LMs, each once, kn among them (the transformer is compared with it)."""
    for lm in lms:
        if lm not in LM_KINDS:
            raise InputError(f"unknown LM {lm!r}; choose from {', '.join(LM_KINDS)}")
    if len(set(lms)) != len(lms):
        raise InputError(f"lms lists an LM twice: {', '.join(lms)}")
    if "kn" not in lms:
        raise InputError("the harness always runs the kn LM (the transformer is compared with it); "
                         "list kn in lms too (the CLI adds it)")
    if "transformer" in lms:
        transformer_config(seed, options)
        require_torch()  # before any work: a missing lm extra is one error, not a failure after the KN models


def lm_text(parts: Sequence[bytes], nbytes: int) -> tuple[str, int]:
    """The first chunks of ``parts`` holding at most ``nbytes`` bytes (at least one), as text."""
    taken: list[bytes] = []
    total = 0
    for p in parts:
        if taken and total + len(p) > nbytes:
            break
        taken.append(p)
        total += len(p)
    return b"".join(taken).decode("utf-8", "replace"), total


@dataclass(frozen=True)
class TransformerJob:
    """One transformer of one tokenizer, trained on ``text`` (``alpha``: sampled segmentations;
    None: Viterbi) and then scored on every held-out file: bits per byte and the continuation
    conditions of ``eval_config`` (the run's :class:`~bytepiece.evaluation.runner.EvalConfig`).
    It carries everything it needs, so that it runs the same in a worker process as here."""

    tokenizer_name: str
    tokenizer: Any
    lm_name: str  # a key of TRANSFORMER_LMS
    text: str
    text_bytes: int
    config: TransformerConfig
    alpha: float | None
    heldout: tuple[tuple[str, str], ...]  # (name, text) of every held-out file
    eval_config: Any

    @property
    def sort_key(self) -> tuple[bool, int]:
        """Longest first: a sampled model reads a new sample per epoch and trains on more tokens
        (about 1.5x a Viterbi one), and a larger vocabulary costs more per token."""
        return (self.alpha is None, -int(self.tokenizer.vocab_size))


def transformer_jobs(tokenizer_name: str, tokenizer: Any, parts: Sequence[bytes], eval_config: Any,
                     heldout: Sequence[tuple[str, str]], *, threads: int | None) -> list[TransformerJob]:
    """The jobs of one tokenizer: its Viterbi and its sampled transformer, on the first
    ``train_bytes // epochs`` bytes of its LM training text ``parts``; ``threads``: torch and
    encoding threads of each (None: as configured)."""
    config = eval_config.transformer_config()
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
        eval_config = dataclasses.replace(eval_config, num_threads=threads)
    text, nbytes = lm_text(parts, config.train_bytes // config.epochs)
    return [TransformerJob(tokenizer_name, tokenizer, name, text, nbytes, config,
                           eval_config.alpha_train if kind == "sampled" else None, tuple(heldout), eval_config)
            for name, kind in TRANSFORMER_LMS.items()]


def run_transformer_job(job: TransformerJob) -> dict[str, Any]:
    """Train and score one job: ``{"lm": what the training did, "bits_per_byte": {file: ...},
    "conditions": {file: {condition: ...}}, "train_s", "evaluate_s"}``."""
    from ..continuation.vocab import VocabIndex
    from .metrics import bits_per_byte, encode_text, piece_lengths

    tok, run = job.tokenizer, job.eval_config
    with torch_threads(job.config.threads):  # scoring too, on the threads it trained on
        t0 = time.perf_counter()
        lm, info = train_transformer(tok, job.text, job.text_bytes, job.config, alpha=job.alpha)
        t1 = time.perf_counter()
        lengths = piece_lengths(tok)
        index = VocabIndex.from_tokenizer(tok)
        bpb: dict[str, dict] = {}
        conditions: dict[str, dict] = {}
        for name, text in job.heldout:
            enc = encode_text(tok, text, name, lengths, num_threads=run.num_threads)
            bpb[name] = bits_per_byte(lm, enc)
            conditions[name] = transformer_conditions(tok, enc, {job.lm_name: lm}, run, index)
    return {"lm": info, "bits_per_byte": bpb, "conditions": conditions, "train_s": t1 - t0,
            "evaluate_s": time.perf_counter() - t1}


def merge_job_result(result: dict, lm_name: str, job: dict[str, Any]) -> None:
    """A transformer job's numbers into its tokenizer's result, beside the KN LMs'. Its timings
    are the job's own (it ran beside other work)."""
    result["lm"][lm_name] = job["lm"]
    for name, entry in result["heldout"].items():
        entry["bits_per_byte"][lm_name] = job["bits_per_byte"][name]
        entry["continuation"]["conditions"].update(job["conditions"][name])
    timings = result["timings"]
    timings["transformer LMs"] = timings.get("transformer LMs", 0.0) + job["train_s"]
    timings["transformer evaluation"] = timings.get("transformer evaluation", 0.0) + job["evaluate_s"]


def job_processes(eval_config: Any, jobs: int) -> tuple[int, int | None]:
    """How many of ``jobs`` run at once, a process each, and the threads each gets (None: as
    configured). On a CPU two one-thread models train 1.3x faster than one model on two threads,
    and the continuation strategies use one thread whatever they are given, so by default every
    core (or every ``threads`` of them, when configured) runs a job of its own. A GPU runs them
    one by one in this process, as does ``transformer_processes`` 1."""
    config = eval_config.transformer_config()
    cores = default_workers()
    if eval_config.transformer_processes is not None:
        processes = eval_config.transformer_processes
    elif config.device == "cpu":
        processes = max(1, cores // (config.threads or 1))
    else:
        processes = 1
    processes = max(1, min(processes, jobs))
    if processes == 1 or config.threads is not None:
        return processes, None
    return processes, max(1, cores // processes)


def train_transformer(tokenizer: Any, text: str, nbytes: int, config: TransformerConfig, *,
                      alpha: float | None) -> tuple[TransformerLM, dict[str, Any]]:
    """One transformer on ``text`` (``nbytes`` of LM training text, read ``config.epochs``
    times), on its Viterbi segmentation (``alpha`` None) or on a fresh sample per epoch."""
    min_id = tokenizer.first_piece_id
    sampled = alpha is not None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bytepiece-lm-") as tmp:
        epoch_data, encode_s = _epochs(tokenizer, text, Path(tmp) / "tokens", alpha, config)
        lm, record = TransformerLM.train(config, tokenizer.vocab_size, epoch_data, min_id=min_id)
    info = {"segmentation": "sampled" if sampled else "viterbi", "alpha": alpha, "epochs": config.epochs,
            "train_bytes": nbytes * config.epochs, "text_bytes": nbytes, "seed": config.seed, **record,
            "encode_s": encode_s[0], "total_s": time.perf_counter() - t0}
    return lm, info


def _epochs(tokenizer: Any, text: str, prefix: Path, alpha: float | None,
            config: TransformerConfig) -> tuple[Callable[[int], TokenDataset], list[float]]:
    """``epoch_data(e)``: epoch e's token shards (one encoding for the Viterbi segmentation, a
    new sample per epoch otherwise), written and opened on first use; and the seconds spent
    encoding (a one-element list that grows as epochs are encoded)."""
    made: dict[int, TokenDataset] = {}
    seconds = [0.0]

    def epoch_data(e: int) -> TokenDataset:
        key = e if alpha is not None else 0
        if key not in made:
            t = time.perf_counter()
            out = prefix.with_name(f"{prefix.name}-{key}")
            encode_corpus([text], tokenizer, out, format="bin", alpha=alpha,
                          seed=config.seed + key if alpha is not None else None, workers=config.threads)
            made[key] = TokenDataset(out)
            seconds[0] += time.perf_counter() - t
        return made[key]

    return epoch_data, seconds


def transformer_conditions(tokenizer: Any, enc: Any, lms: dict[str, TransformerLM], config: Any,
                           index: Any) -> dict[str, Any]:
    """The continuation conditions of the transformers: the run's strategies less
    :data:`TRANSFORMER_SKIPS`, on ``config.transformer_cuts`` of the run's cuts (spread over them),
    with the state cap ``config.transformer_max_states``."""
    strategies = [s for s in config.strategies if s not in TRANSFORMER_SKIPS]
    if not strategies:
        return {}
    cont = continuation_experiment(tokenizer, enc, lms, cuts=config.cuts, seed=config.seed,
                                   target_bytes=config.target_bytes, index=index, num_threads=config.num_threads,
                                   strategies=strategies, soft_bias=config.soft_bias, subset=config.transformer_cuts,
                                   max_states=config.transformer_max_states)
    return cont["conditions"]
