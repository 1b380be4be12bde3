"""The experiment runner behind ``bytepiece eval run`` (DESIGN section 7).

Given training text, held-out text files and a set of tokenizers (model files, or vocabulary
sizes trained here with :class:`bytepiece.Trainer`), it measures for every tokenizer:

* compression of each held-out text (UTF-8 bytes and characters per token);
* bits per byte of each held-out text under two token n-gram LMs trained on the training text:
  one on its deterministic (Viterbi) segmentation, one on ``passes`` sampled segmentations
  (``alpha_train``). Both score the deterministic tokens of the held-out text;
* the continuation experiment (:mod:`.continuation`) for every strategy in ``strategies``
  (default: all of :data:`bytepiece.continuation.healing.STRATEGIES`) x {det, sampled}, on the same cuts,
  and the exact strategies again on the first ``generic_cuts`` cuts of each file with the det LM
  seen only through ``next_token_logprobs`` (the generic path any other LM takes);
* the sampling profile (:func:`.metrics.sampling_profile`) for every alpha in ``alphas``;
* the intrinsic metrics of the deterministic tokens (:mod:`.intrinsic`), per file and pooled with
  the parity of tokens per byte between the files.

Held-out texts are carved with :func:`.corpus.heldout_slice` so that no distinctive line of the
training text occurs in them (checked again after slicing and recorded in the output). Every
random choice derives from ``seed``: the held-out slices, the cut points (same cuts for every
tokenizer with the same normalization, so results are paired), the sampled LM training data and
the sampling profile.

The result is one JSON-ready dict (configuration, corpus descriptions with sha256, per-tokenizer
numbers, pooled numbers and timings); :mod:`.report` renders it.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import holds_text, no_text_error
from ..engine.interrupts import call_interruptibly
from ..engine.pool import process_jobs
from ..errors import InputError
from ..io.read import check_file
from ..model import file_sha256
from ..continuation.healing import DEFAULT_SOFT_BIAS, STRATEGIES
from ..normalize import chunks
from .continuation import DEFAULT_CUTS, DEFAULT_TARGET_BYTES, continuation_experiment
from .corpus import (
    DEFAULT_HELDOUT_BYTES,
    DEFAULT_SEGMENTS,
    describe_text,
    distinctive_lines_in,
    heldout_names,
    heldout_slice,
    read_text,
)
from .intrinsic import pooled_profile, profile, token_counts
from .neural import (
    DEFAULT_TRANSFORMER_CUTS,
    DEFAULT_TRANSFORMER_MAX_STATES,
    TRANSFORMER_LMS,
    TransformerJob,
    check_lms,
    job_processes,
    merge_job_result,
    run_transformer_job,
    transformer_config,
    transformer_jobs,
)
from .pooling import pooled_files
from .metrics import bits_per_byte, compression, encode_text, piece_lengths, sampling_profile, training_ids

DEFAULT_ALPHAS = (0.01, 0.1, 0.5, 1.0)
DEFAULT_ALPHA_TRAIN = 0.1
DEFAULT_ORDER = 4
DEFAULT_GENERIC_CUTS = 2
LM_NAMES = ("det", "sampled")

Progress = Callable[[str], None]


@dataclass
class EvalConfig:
    """Everything that defines one evaluation run (stored verbatim in the JSON output)."""

    train: Sequence[str | os.PathLike]
    heldout: Sequence[str | os.PathLike]
    models: Sequence[str | os.PathLike] = ()
    vocab_sizes: Sequence[int] = ()
    order: int = DEFAULT_ORDER
    cuts: int = DEFAULT_CUTS
    alpha_train: float = DEFAULT_ALPHA_TRAIN
    passes: int = 1
    alphas: Sequence[float] = DEFAULT_ALPHAS
    seed: int = 0
    strategies: Sequence[str] = STRATEGIES
    soft_bias: float = DEFAULT_SOFT_BIAS  # nats added to the agreeing tokens by the "soft" strategy
    generic_cuts: int = DEFAULT_GENERIC_CUTS  # per file: exact strategies again through the generic LM path
    target_bytes: int = DEFAULT_TARGET_BYTES
    heldout_bytes: int = DEFAULT_HELDOUT_BYTES
    heldout_segments: int = DEFAULT_SEGMENTS
    lm_train_bytes: int | None = None  # cap on the LM training text (None: all of it)
    workers: int = 2  # trainer threads
    num_threads: int | None = None  # encoding threads (None: all cores)
    save_models: str | os.PathLike | None = None  # directory for the trained models
    trainer_options: dict[str, Any] = field(default_factory=dict)
    lms: Sequence[str] = ("kn",)  # "kn" (always), "transformer"
    transformer: dict[str, Any] = field(default_factory=dict)  # TransformerConfig fields that differ from its defaults
    transformer_cuts: int = DEFAULT_TRANSFORMER_CUTS  # per file, spread over the cuts; the transformer's conditions
    transformer_max_states: int = DEFAULT_TRANSFORMER_MAX_STATES  # state cap of its exact strategies
    transformer_processes: int | None = None  # transformers at once, a process each (None: a core each on a CPU,
    # 1 on a GPU; 1: one by one in this process)

    def transformer_config(self) -> Any:
        """The :class:`bytepiece.continuation.neural.TransformerConfig` of ``--lm transformer``."""
        return transformer_config(self.seed, self.transformer)

    def _check_inputs(self) -> None:
        if not self.train:
            raise InputError("no training text given; pass --train FILE")
        if not self.heldout:
            raise InputError("no held-out text given; pass --heldout FILE")
        if not self.models and not self.vocab_sizes:
            raise InputError("no tokenizer given; pass -m MODEL and/or --vocab-size N")
        for what, paths in (("training text", self.train), ("held-out text", self.heldout), ("model", self.models)):
            for p in paths:
                if what == "model" and Path(p).is_dir():
                    continue  # a directory holding a tokenizer.json (read_tokenizer checks it)
                check_file(p, what=what, error=InputError)

    def _check_strategies(self) -> None:
        if not self.strategies:
            raise InputError(f"strategies must list at least one of {', '.join(STRATEGIES)}")
        for strategy in self.strategies:
            if strategy not in STRATEGIES:
                raise InputError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        if len(set(self.strategies)) != len(self.strategies):
            raise InputError(f"strategies lists a strategy twice: {', '.join(self.strategies)}")

    def validate(self) -> None:
        def whole(name: str, value: Any, low: int, high: int | None = None) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
                high is not None and value > high
            ):
                rng = f"from {low} to {high}" if high is not None else f">= {low}"
                raise InputError(f"{name} must be an integer {rng}, got {value!r}")

        self._check_inputs()
        for s in self.vocab_sizes:
            whole("vocab size", s, 259)
        whole("order", self.order, 1, 10)
        whole("cuts", self.cuts, 0)
        whole("generic_cuts", self.generic_cuts, 0)
        whole("passes", self.passes, 1)
        whole("seed", self.seed, 0)
        self._check_strategies()
        check_lms(self.lms, self.seed, self.transformer)
        whole("transformer_cuts", self.transformer_cuts, 1)
        whole("transformer_max_states", self.transformer_max_states, 1)
        if self.transformer_processes is not None:
            whole("transformer_processes", self.transformer_processes, 1)
        if isinstance(self.soft_bias, bool) or not isinstance(self.soft_bias, (int, float)) or not math.isfinite(self.soft_bias):
            raise InputError(f"soft_bias must be a finite number of nats, got {self.soft_bias!r}")
        whole("target_bytes", self.target_bytes, 1)
        whole("heldout_bytes", self.heldout_bytes, 1)
        whole("heldout_segments", self.heldout_segments, 1)
        whole("workers", self.workers, 1)
        if self.lm_train_bytes is not None:
            whole("lm_train_bytes", self.lm_train_bytes, 1)
        for name, a in [("alpha_train", self.alpha_train), *(("alphas", a) for a in self.alphas)]:
            if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a < 0:
                raise InputError(f"{name} must be finite numbers >= 0, got {a!r}")
        if not self.alphas:
            raise InputError("alphas must list at least one value")

    def saved_model_paths(self) -> list[Path]:
        """Where ``save_models`` puts the tokenizers trained for ``vocab_sizes`` (smallest first)."""
        if self.save_models is None:
            return []
        prefix = "refined" if self.trainer_options.get("refine") else "bnlm"
        return [Path(self.save_models) / f"{prefix}-{size}.model" for size in sorted({int(s) for s in self.vocab_sizes})]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("train", "heldout", "models"):
            d[key] = [str(p) for p in d[key]]
        d["vocab_sizes"] = [int(s) for s in self.vocab_sizes]
        d["alphas"] = [float(a) for a in self.alphas]
        d["strategies"] = [str(s) for s in self.strategies]
        d["soft_bias"] = float(self.soft_bias)
        d["save_models"] = str(self.save_models) if self.save_models is not None else None
        d["lms"] = [str(lm) for lm in self.lms]
        if "transformer" in self.lms:
            d["transformer"] = self.transformer_config().as_dict()
        return d


@dataclass
class _Candidate:
    name: str
    tokenizer: Any
    info: dict[str, Any]


def _quiet(_: str) -> None:
    pass


def run_evaluation(config: EvalConfig, *, on_progress: Progress | None = None) -> dict[str, Any]:
    """Run the whole experiment; returns the JSON-ready result (see the module docstring). Its
    kernels run on this thread, so a Ctrl-C meanwhile is held out of their results' conversion
    (``engine.interrupts.call_interruptibly``). With ``--lm transformer`` on a CPU it starts
    worker processes with ``spawn``, which imports the calling script again in each: call it
    under ``if __name__ == "__main__":``."""
    config.validate()
    return call_interruptibly(_run, config, on_progress or _quiet)


def _run(config: EvalConfig, say: Progress) -> dict[str, Any]:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    # -- training text ----------------------------------------------------------------------
    t0 = time.perf_counter()
    train_texts = [read_text(p) for p in config.train]
    for path, text in zip(config.train, train_texts):
        if not holds_text(text):  # the LMs would be trained on nothing and the tables filled with zeros
            raise no_text_error(f"training text {path}")
    train_info = [{"path": str(p), **describe_text(t)} for p, t in zip(config.train, train_texts)]
    train_lines: set[str] = set()
    for t in train_texts:
        train_lines.update(t.split("\n"))
    timings["read training text"] = time.perf_counter() - t0

    # -- held-out slices --------------------------------------------------------------------
    t0 = time.perf_counter()
    heldout = []
    names = heldout_names(config.heldout)
    for path, name in zip(config.heldout, names):
        say(f"held-out slice of {path}")
        sl = heldout_slice(path, "", target_bytes=config.heldout_bytes, segments=config.heldout_segments,
                           seed=config.seed, name=name, train_lines=train_lines)
        desc = sl.describe()
        desc["distinctive_lines_in_training"] = distinctive_lines_in(sl.text, train_lines)
        if desc["distinctive_lines_in_training"]:  # cannot happen with heldout_slice; a guard for edits
            raise InputError(f"the held-out slice of {path} shares lines with the training text")
        heldout.append((name, sl.text, desc))
    timings["held-out slices"] = time.perf_counter() - t0

    # -- tokenizers -------------------------------------------------------------------------
    candidates = _tokenizers(config, say, timings)

    # -- the transformer jobs start (in worker processes), then the KN work runs here ----------
    jobs, processes = _transformer_jobs(config, candidates, train_texts, heldout)
    ordered = sorted(jobs, key=lambda j: j.sort_key)
    with process_jobs(processes) as running:
        if jobs:
            where = f"{processes} at once in worker processes" if processes > 1 else "after the KN LMs"
            say(f"transformers: {len(jobs)} to train and score, {where}")
        for job in ordered:
            running.submit(run_transformer_job, job)
        results = []
        for cand in candidates:
            results.append(_evaluate_one(cand, config, train_texts, heldout, say))
            running.check()  # a job that failed fails the run now, not after all the KN work
        t0 = time.perf_counter()
        finished = running.results(on_result=lambda k, n: say(f"{ordered[k].tokenizer_name}: {ordered[k].lm_name} "
                                                                  f"trained and scored ({n} of {len(jobs)})"))
        if jobs:
            timings["waiting for the transformers"] = time.perf_counter() - t0
    by_name = {r["name"]: r for r in results}
    done = {(job.tokenizer_name, job.lm_name): result for job, result in zip(ordered, finished)}
    for job in jobs:  # in the order of the tokenizers and LMs, whatever order they ran in
        merge_job_result(by_name[job.tokenizer_name], job.lm_name, done[job.tokenizer_name, job.lm_name])
    for r in results:
        r["pooled"] = {**pooled_files(r["heldout"]), **r["pooled"]}

    out = {
        "format": "bytepiece-eval/1",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config.as_dict(),
        "environment": _environment(),
        "train": train_info,
        "heldout": [d for _, _, d in heldout],
        "tokenizers": results,
        "timings": {**timings, "total": time.perf_counter() - t_start},
    }
    return out


# -- tokenizers ---------------------------------------------------------------------------------
def _tokenizers(config: EvalConfig, say: Progress, timings: dict[str, float]) -> list[_Candidate]:
    from ..tokenizer import Tokenizer

    out: list[_Candidate] = []
    if config.vocab_sizes:
        from ..training import Trainer

        sizes = sorted({int(s) for s in config.vocab_sizes})
        say(f"training vocabularies {', '.join(map(str, sizes))} on {', '.join(map(str, config.train))}")
        t0 = time.perf_counter()
        trainer = Trainer(max_vocab_size=sizes, workers=config.workers, progress=False, **config.trainer_options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models = trainer.train([Path(p) for p in config.train])
        timings["train vocabularies"] = time.perf_counter() - t0
        prefix = "refined" if trainer.refine else "bnlm"
        by_size = dict(zip(trainer.max_vocab_size, models))
        saved = dict(zip(sizes, config.saved_model_paths()))
        for size, saved_path in saved.items():
            saved_path.parent.mkdir(parents=True, exist_ok=True)
            by_size[size].save(saved_path, overwrite=True)
        for size in sizes:
            tok = Tokenizer(by_size[size])
            path = saved.get(size)
            notices = [n for n in trainer.report.notices if f"size {size} " in n]
            out.append(_Candidate(f"{prefix}-{size}", tok, {
                "source": "trained", "requested_vocab_size": size, "vocab_size": tok.vocab_size,
                "trainer_options": {**trainer.options(), "workers": config.workers}, "trainer_timings": {"compile": trainer.report.compile_s, "total": trainer.report.total_s, **{k: v.wall_s for k, v in trainer.report.phases.items()}},
                "notices": notices, "saved_to": str(path) if path else None}))
    for model_path in config.models:
        say(f"loading {model_path}")
        tok = Tokenizer(model_path)
        out.append(_Candidate(Path(model_path).name.removesuffix(".model"), tok, {
            "source": str(model_path), "sha256": file_sha256(model_path), "vocab_size": tok.vocab_size}))
    seen: dict[str, int] = {}
    for c in out:  # unique names
        k = seen.get(c.name, 0)
        seen[c.name] = k + 1
        if k:
            c.name = f"{c.name}#{k + 1}"
    return out


def _transformer_jobs(config: EvalConfig, candidates: list[_Candidate], train_texts: list[str],
                      heldout: list[tuple[str, str, dict]]) -> tuple[list[TransformerJob], int]:
    """The transformers to train and score (two per tokenizer, in its order), and how many
    processes run them at once."""
    if "transformer" not in config.lms:
        return [], 1
    processes, threads = job_processes(config, len(TRANSFORMER_LMS) * len(candidates))
    pairs = [(name, text) for name, text, _ in heldout]
    jobs: list[TransformerJob] = []
    for cand in candidates:
        jobs += transformer_jobs(cand.name, cand.tokenizer, _lm_parts(cand.tokenizer, train_texts, config), config,
                                 pairs, threads=threads)
    return jobs, processes


# -- one tokenizer ------------------------------------------------------------------------------
def _lm_parts(tok: Any, train_texts: list[str], config: EvalConfig) -> list[bytes]:
    """The tokenizer's LM training text: the training text normalized its way, in chunks (the
    units it segments on their own, so none is cut), as many as fit in ``lm_train_bytes``."""
    parts: list[bytes] = []
    for text in train_texts:
        parts.extend(chunks(tok.normalize(text)))
    if config.lm_train_bytes is not None:
        sizes = np.cumsum([len(p) for p in parts])
        keep = int(np.searchsorted(sizes, config.lm_train_bytes, side="right"))
        if keep == 0:
            raise InputError(f"lm_train_bytes is {config.lm_train_bytes}, less than the first line of the training "
                             f"text ({int(sizes[0])} bytes); the LMs train on whole lines, so give at least that")
        parts = parts[:keep]
    return parts


def _evaluate_one(cand: _Candidate, config: EvalConfig, train_texts: list[str], heldout, say: Progress) -> dict:
    """Everything of one tokenizer but its transformers (:func:`.neural.merge_job_result` adds them)
    and its pooled numbers but the intrinsic ones (made once all LMs are in)."""
    from ..continuation.lm import NGramLM
    from ..continuation.vocab import VocabIndex

    tok = cand.tokenizer
    t_tok = time.perf_counter()
    timings: dict[str, float] = {}
    lengths = piece_lengths(tok)
    min_id = tok.first_piece_id
    pieces_end = min_id + len(tok.pieces())  # added special tokens come after the pieces

    say(f"{cand.name}: LM training data")
    t0 = time.perf_counter()
    parts = _lm_parts(tok, train_texts, config)
    lm_bytes = int(sum(len(p) for p in parts))
    timings["normalize training text"] = time.perf_counter() - t0

    lms: dict[str, NGramLM] = {}
    lm_info: dict[str, dict] = {}
    for lm_name in LM_NAMES:
        t0 = time.perf_counter()
        alpha = -1.0 if lm_name == "det" else float(config.alpha_train)
        passes = 1 if lm_name == "det" else config.passes
        say(f"{cand.name}: {lm_name} LM ({'Viterbi' if alpha < 0 else f'alpha={alpha}, {passes} pass(es)'})")
        ids, offsets = training_ids(tok, parts, alpha=alpha, passes=passes, seed=config.seed,
                                    num_threads=config.num_threads)
        t1 = time.perf_counter()
        lm = NGramLM.train(ids, tok.vocab_size, order=config.order, offsets=offsets, min_id=min_id)
        lms[lm_name] = lm
        lm_info[lm_name] = {"segmentation": "viterbi" if alpha < 0 else "sampled", "alpha": None if alpha < 0 else alpha,
                            "passes": passes, "seed": config.seed if alpha >= 0 else None, "train_bytes": lm_bytes,
                            "train_tokens": int(len(ids)), "ngrams": [int(x) for x in lm.level_sizes],
                            "discounts": lm.discounts.tolist(), "tokenize_s": t1 - t0,
                            "count_s": time.perf_counter() - t1}
        timings[f"{lm_name} LM"] = time.perf_counter() - t0
        del ids, offsets

    index = VocabIndex.from_tokenizer(tok)
    per_file: dict[str, dict] = {}
    counts: dict[str, tuple[np.ndarray, int]] = {}
    t_cont = t_samp = t_bpb = 0.0
    for name, text, _desc in heldout:
        enc = encode_text(tok, text, name, lengths, num_threads=config.num_threads)
        t0 = time.perf_counter()
        bpb = {k: bits_per_byte(lm, enc) for k, lm in lms.items()}
        t_bpb += time.perf_counter() - t0
        say(f"{cand.name}: continuation on {name} ({config.cuts} cuts)")
        t0 = time.perf_counter()
        cont = continuation_experiment(tok, enc, lms, cuts=config.cuts, seed=config.seed,
                                       target_bytes=config.target_bytes, index=index, num_threads=config.num_threads,
                                       strategies=config.strategies, soft_bias=config.soft_bias,
                                       generic_cuts=config.generic_cuts)
        t_cont += time.perf_counter() - t0
        t0 = time.perf_counter()
        samp = sampling_profile(tok, enc, config.alphas, seed=config.seed, lengths=lengths,
                                num_threads=config.num_threads)
        t_samp += time.perf_counter() - t0
        counts[name] = (token_counts(enc.ids, pieces_end, first_id=min_id), enc.raw_bytes)
        per_file[name] = {"compression": compression(enc), "bits_per_byte": bpb, "continuation": cont,
                          "sampling": samp, "intrinsic": profile(counts[name][0], lengths[min_id:pieces_end],
                                                                 raw_bytes=enc.raw_bytes)}
    timings["bits per byte"] = t_bpb
    timings["continuation"] = t_cont
    timings["sampling profile"] = t_samp
    timings["total"] = time.perf_counter() - t_tok
    pooled = {"intrinsic": pooled_profile(counts, lengths[min_id:pieces_end])}
    return {"name": cand.name, **cand.info, "lm": lm_info, "heldout": per_file, "pooled": pooled,
            "timings": timings}


# -- helpers ------------------------------------------------------------------------------------
def _environment() -> dict[str, Any]:
    import numba

    from .. import __version__

    return {"bytepiece": __version__, "numpy": np.__version__, "numba": numba.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
