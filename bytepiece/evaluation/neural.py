"""The transformer LMs of the harness (``bytepiece eval run --lm transformer``): for one
tokenizer, a model trained on the Viterbi segmentation and one on sampled segmentations, each
from token shards written by :func:`bytepiece.tokens.encode_corpus` (what ``bytepiece encode``
writes) and read back through :class:`bytepiece.tokens.TokenDataset`, so the harness runs the
project's real data path.

Every tokenizer reads the same text: the first ``train_bytes // epochs`` bytes of the harness's
LM training text (its chunks, whole), ``epochs`` times; the sampled model gets a fresh sample of
it per epoch (seeds ``seed + epoch``). The budget is in bytes, not tokens, so a larger vocabulary
is not given more text.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..continuation.neural import TransformerConfig, TransformerLM, require_torch
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
                         "pass --lm kn --lm transformer")
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


def train_transformers(tokenizer: Any, parts: Sequence[bytes], config: TransformerConfig, *, alpha: float,
                       say: Callable[[str], None]) -> tuple[dict[str, TransformerLM], dict[str, dict]]:
    """``{"transformer-det": lm, "transformer-sampled": lm}`` and what each training did."""
    text, nbytes = lm_text(parts, config.train_bytes // config.epochs)
    min_id = tokenizer.vocab_size - len(tokenizer.pieces())
    lms: dict[str, TransformerLM] = {}
    info: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bytepiece-lm-") as tmp:
        for name, kind in TRANSFORMER_LMS.items():
            sampled = kind == "sampled"
            t0 = time.perf_counter()
            epoch_data, encode_s = _epochs(tokenizer, text, Path(tmp) / name, alpha if sampled else None, config)
            say(f"{name} ({'alpha=' + str(alpha) if sampled else 'Viterbi'}): training "
                f"{config.epochs} x {nbytes:,} bytes")
            lm, record = TransformerLM.train(config, tokenizer.vocab_size, epoch_data, min_id=min_id)
            lms[name] = lm
            info[name] = {"segmentation": "sampled" if sampled else "viterbi", "alpha": alpha if sampled else None,
                          "epochs": config.epochs, "train_bytes": nbytes * config.epochs, "text_bytes": nbytes,
                          "seed": config.seed, **record, "encode_s": encode_s[0], "total_s": time.perf_counter() - t0}
    return lms, info


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
