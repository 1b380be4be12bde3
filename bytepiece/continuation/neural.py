"""A small transformer as a token LM (:class:`TransformerLM`): trained from token windows,
scored on documents, and queried by every continuation strategy through ``next_token_logprobs``.

PyTorch is an optional extra (``lm``); it is imported when a model is made or trained, and a
missing torch is one :class:`~bytepiece.errors.InputError` naming the extra.

Which tokens the model sees. A model of ``context`` positions reads the BOS id and at most
``window = context - 1`` tokens. A history of ``n`` tokens is read from token ``start(n)`` on:
``0`` while it fits, else the smallest multiple of ``stride`` that leaves at most ``window``
tokens. The start moves in steps of ``stride``, so a history extended by one token is usually
read from the same start: its keys and values are those of the shorter history plus one
position (a KV cache keyed by the tokens read serves them), and only every ``stride``-th token
recomputes a window. Scoring a document (:meth:`TransformerLM.token_logprobs`) uses the same
rule, so bits per byte and the continuation strategies see one and the same model. The start
depends on the history's length, so the model declares no ``context_size``: the byte-level
recursion keeps whole histories apart (it merges none) and its state cap applies.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError

__all__ = ["TransformerConfig", "TransformerLM", "require_torch"]

ROWS_PER_PASS = 128


def require_torch() -> Any:
    """``torch``, or the one-line error that says how to get it."""
    try:
        import torch
    except ImportError:
        raise InputError("the transformer LM needs PyTorch, which is not installed; install the lm extra: "
                         "pip install 'bytepiece-tk[lm]'") from None
    return torch


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` for the block, as they were after it: the setting
    is the whole process's, and a library call should not change it for the caller (None: left
    as it is)."""
    if threads is None:
        yield
        return
    torch = require_torch()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_device(torch: Any, device: str) -> None:
    """An InputError for a device torch does not know or this machine does not have."""
    try:
        torch.empty(1, device=device)
    except (RuntimeError, ValueError, AssertionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot use device {device!r}: {first}; pass --device cpu or an available GPU") from None


@dataclass(frozen=True)
class TransformerConfig:
    """The few numbers that define a model and its training (the harness's ``--transformer-*``).

    ``train_bytes``: bytes of text the model reads in training, all epochs together, the same for
    every vocabulary so that they are compared under one budget; each of the ``epochs`` reads
    ``train_bytes // epochs`` bytes (a fresh sampled segmentation per epoch when sampling)."""

    layers: int = 2
    width: int = 64
    heads: int = 4
    context: int = 128
    train_bytes: int = 6_000_000
    epochs: int = 1
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 10
    weight_decay: float = 0.1
    softmax_head: int = 2048  # ids in the adaptive softmax's first cluster; 0: a full softmax
    ngrams: int = 3  # n-gram input tables: the 2-, 3-, ... (ngrams + 1)-grams ending at each position; 0: none
    ngram_min_count: int = 2  # occurrences in the training tokens that give an n-gram a row
    ngram_lr: float = 0.09  # peak learning rate of the n-gram tables (sparse Adam)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None  # torch CPU threads (None: torch's default, all cores)

    def validate(self) -> None:
        for name in ("layers", "width", "heads", "context", "train_bytes", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"transformer {name} must be a positive integer, got {value!r}")
        if isinstance(self.softmax_head, bool) or not isinstance(self.softmax_head, (int, np.integer)) \
                or self.softmax_head < 0:
            raise InputError(f"transformer softmax_head must be 0 (a full softmax) or a positive integer, "
                             f"got {self.softmax_head!r}")
        if self.context < 2:
            raise InputError(f"transformer context must be at least 2 positions (BOS and one token), got {self.context}")
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise InputError(f"transformer width {self.width} must split into {self.heads} heads of an even width")
        for name in ("lr", "ngram_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"transformer {name} must be a positive number, got {value!r}")
        for name, low in (("ngrams", 0), ("ngram_min_count", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise InputError(f"transformer {name} must be an integer >= {low}, got {value!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise InputError(f"transformer threads must be a positive integer, got {self.threads!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TransformerLM:
    """``next_token_logprobs`` (batched, KV-cached) and document scores from a
    :class:`.transformer.TinyTransformer` over the ids ``0 .. vocab_size - 1`` plus a BOS row.

    Ids below ``min_id`` (special tokens) are never predicted. ``stride``: how far the read start
    moves (default half the window); ``cache_entries``: windows whose keys and values are kept.
    ``order``: the token ids by falling training frequency; the model numbers them ``0, 1, ...``
    in that order (the adaptive softmax's clusters follow it) and BOS last. Default: the ids as
    they are.
    """

    context_size = None  # the read start depends on the history's length (module docstring)

    def __init__(self, model: Any, *, vocab_size: int, min_id: int = 0, device: str = "cpu",
                 stride: int | None = None, cache_entries: int = 1024,
                 order: npt.NDArray[np.integer] | None = None) -> None:
        torch = self._torch = require_torch()
        if model.vocab_size != vocab_size + 1:
            raise InputError(f"the model has {model.vocab_size} rows; a TransformerLM over {vocab_size} ids "
                             f"needs {vocab_size + 1} (the ids and BOS)")
        self.model = model.to(device).eval()
        self.vocab_size = vocab_size
        self.min_id = min_id
        self.bos_id = vocab_size
        self.device = device
        self.order = np.arange(vocab_size) if order is None else np.asarray(order, dtype=np.int64)
        if sorted(self.order.tolist()) != list(range(vocab_size)):
            raise InputError(f"order must list each of the ids 0..{vocab_size - 1} once")
        rank = np.empty(vocab_size + 1, dtype=np.int64)
        rank[self.order] = np.arange(vocab_size)
        rank[vocab_size] = vocab_size  # BOS
        self._rank = torch.from_numpy(rank)  # id -> the model's number
        self._to_ids = torch.from_numpy(rank[:vocab_size]).to(device)  # log-probs by number -> by id
        self.window = model.context - 1
        self.stride = stride or max(self.window // 2, 1)
        if not 1 <= self.stride <= self.window:
            raise InputError(f"stride must be from 1 to the window ({self.window}), got {self.stride}")
        self._room = max(int(cache_entries), 1)
        self._cache: OrderedDict[tuple[int, ...], tuple[list, npt.NDArray[np.float64]]] = OrderedDict()
        self.rows = 0  # positions computed, for the record
        self.passes = 0  # forward passes

    # -- which tokens are read -----------------------------------------------------------------
    def start(self, n: int) -> int:
        """The first token read of a history of ``n`` tokens (module docstring)."""
        if n <= self.window:
            return 0
        return -(-(n - self.window) // self.stride) * self.stride

    def _read(self, history: Sequence[int] | npt.NDArray[np.integer]) -> tuple[int, ...]:
        n = len(history)
        window = tuple(map(int, history[self.start(n):]))
        if window and (min(window) < 0 or max(window) >= self.vocab_size):
            bad = min(window) if min(window) < 0 else max(window)
            raise InputError(f"context contains id {bad}, outside 0..{self.vocab_size - 1}")
        return window

    # -- the token-LM interface ----------------------------------------------------------------
    def next_token_logprobs(self, context_ids: Sequence[int]) -> npt.NDArray[np.float64]:
        return self.next_token_logprobs_batch([context_ids])[0]

    def next_token_logprobs_batch(self, contexts: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
        """One row of natural-log probabilities per context. The distinct windows not cached run
        as few forward passes: those whose window minus its last token is cached extend it by one
        position (one pass for all of them), the others are computed whole."""
        windows = [self._read(c) for c in contexts]
        todo = [w for w in dict.fromkeys(windows) if w not in self._cache]
        grow = [w for w in todo if w and w[:-1] in self._cache]
        fresh = [w for w in todo if not (w and w[:-1] in self._cache)]
        with self._torch.no_grad():
            for lo in range(0, len(grow), ROWS_PER_PASS):
                self._extend(grow[lo: lo + ROWS_PER_PASS])
            for lo in range(0, len(fresh), ROWS_PER_PASS):
                self._whole(fresh[lo: lo + ROWS_PER_PASS])
        out = np.empty((len(windows), self.vocab_size), dtype=np.float64)
        for i, w in enumerate(windows):
            self._cache.move_to_end(w)
            out[i] = self._cache[w][1]
        while len(self._cache) > max(self._room, len(set(windows))):
            self._cache.popitem(last=False)
        return out

    def next_token_probs_batch(self, contexts: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
        """:meth:`next_token_logprobs_batch` exponentiated by torch, three times faster than numpy
        here (the exact continuation needs a full vector of probabilities per history)."""
        out = self.next_token_logprobs_batch(contexts)
        self._torch.from_numpy(out).exp_()
        return out

    def _log_probs(self, h: Any) -> Any:
        """Log-probabilities by id of the states ``h`` (float32 tensor, last axis the ids): the
        model's, with BOS and the ids below ``min_id`` removed and the rest renormalised."""
        x = self.model.log_probs(h).index_select(-1, self._to_ids)
        if self.min_id:
            x[..., : self.min_id] = -math.inf
        return x - self._torch.logsumexp(x, dim=-1, keepdim=True)

    def _logprobs(self, h: Any) -> npt.NDArray[np.float64]:
        return self._log_probs(h).double().cpu().numpy()

    def _model_ids(self, window: Sequence[Any] | npt.NDArray[np.integer]) -> Any:
        return self._rank[self._torch.as_tensor(window, dtype=self._torch.long)]

    def _whole(self, windows: list[tuple[int, ...]]) -> None:
        torch = self._torch
        width = max(len(w) for w in windows) + 1
        ids = torch.zeros((len(windows), width), dtype=torch.long)
        for i, w in enumerate(windows):
            ids[i, 0] = self.bos_id
            ids[i, 1: len(w) + 1] = self._model_ids(w)
        h, present = self.model(ids.to(self.device))
        last = torch.tensor([len(w) for w in windows], device=h.device)
        rows = self._logprobs(h[torch.arange(len(windows), device=h.device), last])
        for i, w in enumerate(windows):
            kv = [(k[i: i + 1, :, : len(w) + 1].clone(), v[i: i + 1, :, : len(w) + 1].clone()) for k, v in present]
            self._cache[w] = (kv, rows[i])
        self.rows += len(windows) * width
        self.passes += 1

    def _extend(self, windows: list[tuple[int, ...]]) -> None:
        torch = self._torch
        pasts = [self._cache[w[:-1]][0] for w in windows]
        lengths = [len(w) for w in windows]  # BOS and the window minus its last token
        longest = max(lengths)
        past = []
        for layer in range(len(pasts[0])):
            k0 = pasts[0][layer][0]
            keys = k0.new_zeros((len(windows), k0.shape[1], longest, k0.shape[3]))
            values = torch.zeros_like(keys)
            for i, p in enumerate(pasts):
                keys[i, :, : lengths[i]] = p[layer][0][0]
                values[i, :, : lengths[i]] = p[layer][1][0]
            past.append((keys, values))
        ids = self._model_ids([[w[-1]] for w in windows]).to(self.device)
        pad = self.model.vocab_size
        back = max(self.model.ngram_context, 1)
        prev = torch.full((len(windows), back), pad, dtype=torch.long)
        for i, w in enumerate(windows):
            seq = [self.bos_id, *self._model_ids(w[max(len(w) - 1 - back, 0):-1]).tolist()][-back:]
            prev[i, back - len(seq):] = torch.tensor(seq)
        h, present = self.model(ids, past, torch.tensor(lengths, device=self.device), prev=prev.to(self.device))
        rows = self._logprobs(h[:, -1])
        for i, w in enumerate(windows):
            n = lengths[i]
            kv = [(torch.cat([k[i: i + 1, :, :n], k[i: i + 1, :, longest:]], dim=2),
                   torch.cat([v[i: i + 1, :, :n], v[i: i + 1, :, longest:]], dim=2)) for k, v in present]
            self._cache[w] = (kv, rows[i])
        self.rows += len(windows)
        self.passes += 1

    # -- documents -----------------------------------------------------------------------------
    def token_logprobs(self, ids: Sequence[int] | npt.NDArray[np.integer],
                       offsets: Sequence[int] | npt.NDArray[np.integer] | None = None, *,
                       batch_size: int = 16) -> npt.NDArray[np.float64]:
        """Natural-log probability of each token given the tokens before it in its document, each
        read as :meth:`next_token_logprobs` reads a history (one pass per ``stride`` tokens)."""
        arr = np.asarray(ids, dtype=np.int64)
        offs = np.asarray([0, len(arr)] if offsets is None else offsets, dtype=np.int64)
        out = np.empty(len(arr), dtype=np.float64)
        blocks = [(int(a), s, lo, hi) for a, b in zip(offs[:-1], offs[1:]) for s, lo, hi in self._blocks(int(b - a))]
        with self._torch.no_grad():
            for k in range(0, len(blocks), batch_size):
                self._score_blocks(arr, blocks[k: k + batch_size], out)
        return out

    def _blocks(self, n: int) -> list[tuple[int, int, int]]:
        """``(start, first, last)``: tokens ``first..last`` of a document of ``n`` are predicted
        from the window read from ``start`` (one forward pass each)."""
        out = [(0, 0, min(self.window, n - 1))] if n else []
        s = self.stride
        while s + self.window - self.stride + 1 <= n - 1:
            out.append((s, s + self.window - self.stride + 1, min(s + self.window, n - 1)))
            s += self.stride
        return out

    def _score_blocks(self, arr: npt.NDArray[np.int64], blocks: list[tuple[int, int, int, int]],
                      out: npt.NDArray[np.float64]) -> None:
        torch = self._torch
        width = max(hi - s for _, s, _, hi in blocks) + 1
        inputs = torch.zeros((len(blocks), width), dtype=torch.long)
        inputs[:, 0] = self.bos_id
        for r, (a, s, _, hi) in enumerate(blocks):
            inputs[r, 1: hi - s + 1] = self._model_ids(arr[a + s: a + hi])
        h, _ = self.model(inputs.to(self.device))
        for r, (a, s, lo, hi) in enumerate(blocks):
            logp = self._log_probs(h[r, lo - s: hi - s + 1])
            targets = torch.from_numpy(arr[a + lo: a + hi + 1]).to(logp.device)
            out[a + lo: a + hi + 1] = logp.gather(-1, targets[:, None]).squeeze(-1).double().cpu().numpy()
        self.rows += len(blocks) * width
        self.passes += 1

    def bits(self, ids: Sequence[int] | npt.NDArray[np.integer],
             offsets: Sequence[int] | npt.NDArray[np.integer] | None = None) -> float:
        """Total ``-log2`` likelihood of the documents."""
        return float(-self.token_logprobs(ids, offsets).sum() / math.log(2.0))

    # -- training ------------------------------------------------------------------------------
    @classmethod
    def train(cls, config: TransformerConfig, vocab_size: int, epoch_data: Callable[[int], Any], *, min_id: int = 0,
              on_step: Callable[[int, float], None] | None = None) -> tuple[TransformerLM, dict[str, Any]]:
        """A model trained for ``config.epochs`` epochs; ``epoch_data(e)`` gives epoch ``e``'s
        tokens (anything with ``n_tokens``, ``tokens(start, stop)``, ``epoch_windows`` and
        ``windows``, such as a :class:`bytepiece.tokens.TokenDataset`). An epoch reads its tokens
        once, in shuffled windows of ``context - 1`` tokens (after BOS). The model numbers the ids
        by their frequency in epoch 0's tokens (:func:`frequency_order`), which the adaptive
        softmax's clusters need, and its n-gram tables hold the n-grams of epoch 0's tokens seen
        ``config.ngram_min_count`` times. Everything random derives from ``config.seed``. Returns the LM and what
        happened (steps, seconds, the loss curve)."""
        torch = require_torch()
        config.validate()
        check_device(torch, config.device)
        with torch_threads(config.threads):
            return cls._train(torch, config, vocab_size, epoch_data, min_id=min_id, on_step=on_step)

    @classmethod
    def _train(cls, torch: Any, config: TransformerConfig, vocab_size: int, epoch_data: Callable[[int], Any], *,
               min_id: int, on_step: Callable[[int, float], None] | None) -> tuple[TransformerLM, dict[str, Any]]:
        from .transformer import TinyTransformer, count_ngram_keys, train_model

        torch.manual_seed(config.seed)
        first = epoch_data(0)
        order = frequency_order(first, vocab_size)
        rank = np.empty(vocab_size + 1, dtype=np.int64)
        rank[order] = np.arange(vocab_size)
        rank[vocab_size] = vocab_size
        keys = []
        if config.ngrams:
            numbers = rank[np.asarray(first.tokens(0, int(first.n_tokens)), dtype=np.int64)]
            keys = count_ngram_keys(numbers, config.ngrams, vocab_size + 2, config.ngram_min_count)
        model = TinyTransformer(vocab_size + 1, layers=config.layers, width=config.width, heads=config.heads,
                                context=config.context, head=config.softmax_head,
                                ngram_keys=keys).to(config.device)
        length = config.context - 1  # BOS takes the first position
        steps_per_epoch = max(1, (int(first.n_tokens) - 1) // length // config.batch_size)
        rng = np.random.default_rng(config.seed)
        bos = vocab_size

        def batches():
            for e in range(config.epochs):
                for x, y in _epoch_batches(first if e == 0 else epoch_data(e), config.batch_size, length,
                                           steps_per_epoch, rng):
                    x, y = rank[x], rank[y]
                    inputs = np.concatenate([np.full((len(x), 1), bos, dtype=np.int64), x], axis=1)
                    yield inputs, np.concatenate([x[:, :1], y], axis=1)

        info = train_model(model, batches(), steps_per_epoch * config.epochs, lr=config.lr,
                           warmup_steps=config.warmup_steps, weight_decay=config.weight_decay, device=config.device,
                           bf16=False, ngram_lr=config.ngram_lr, on_step=on_step)
        info.update(parameters=model.parameters_count, tokens_per_epoch=int(first.n_tokens),
                    ngram_rows=[len(k) for k in keys], threads=torch.get_num_threads(),
                    steps_per_epoch=steps_per_epoch, clusters=model.bounds)
        return cls(model, vocab_size=vocab_size, min_id=min_id, device=config.device, order=order), info


def _epoch_batches(data: Any, batch_size: int, length: int, steps: int, rng: np.random.Generator) -> Any:
    """``steps`` batches of one epoch: passes of :meth:`~bytepiece.tokens.TokenDataset.epoch_windows`
    (a second, reshuffled pass only for the few batches a sampled epoch's other token count or
    the random offset leaves short), random windows where a pass holds no whole batch."""
    made = 0
    while made < steps:
        before = made
        for batch in data.epoch_windows(batch_size, length, seed=rng):
            yield batch
            made += 1
            if made == steps:
                return
        if made == before:
            yield data.windows(batch_size, length, seed=rng)
            made += 1


def frequency_order(data: Any, vocab_size: int, chunk: int = 1 << 22) -> npt.NDArray[np.int64]:
    """The ids ``0 .. vocab_size - 1`` by falling count in ``data`` (anything with ``n_tokens``
    and ``tokens(start, stop)``), ties and unseen ids by id."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for lo in range(0, int(data.n_tokens), chunk):
        ids = np.asarray(data.tokens(lo, min(lo + chunk, int(data.n_tokens))), dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
            raise InputError(f"training tokens hold ids outside 0..{vocab_size - 1}")
        counts += np.bincount(ids, minlength=vocab_size)
    return np.argsort(-counts, kind="stable")
