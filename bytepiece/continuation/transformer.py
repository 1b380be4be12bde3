"""The small decoder-only transformer of the harness (PyTorch; imported only through
:mod:`.neural`, which says which extra to install when torch is missing).

Pre-norm blocks (LayerNorm, causal self-attention with rotary positions, a GELU MLP of four times
the width), a final LayerNorm and an output layer tied to the token embedding. Every input starts
with the BOS id, so the empty history has a position to predict from and the model learns to
predict from a window that starts anywhere in a text (training windows start at arbitrary tokens).

The output layer of a full softmax costs ``vocabulary x width`` per position: with 32,000 ids and a
width of 64 that is twenty times the two blocks together, so on a CPU it decides how much text a
model can read in a given time. With ``head > 0`` the model uses an adaptive softmax with tied
adaptive input embeddings (Grave et al. 2017, "Efficient softmax approximation for GPUs"; Baevski
and Auli 2019, "Adaptive input representations"): the ids, ordered by frequency, fall into
clusters :func:`cluster_bounds`; the first ``head`` ids and one entry per further cluster share one
softmax at full width, and each further cluster (four times larger than the one before) has its
own softmax over vectors four times shorter, reached through a projection. One table per cluster
serves as both the input embedding (projected up) and the output vectors (the state projected
down through the same matrix). The distribution stays exact and normalised, ``p(id) =
p(cluster) p(id | cluster)``; training computes a further cluster's softmax only at the positions
whose target is in it (:meth:`TinyTransformer.target_log_probs`), which makes a step over 32,000
ids about ten times cheaper. The ids must be numbered by falling frequency for the clusters to
pay (:class:`bytepiece.continuation.neural.TransformerLM` does that).

With ``ngram_keys`` the input of each position also adds one learned row per n-gram ending there
(the 2-, 3- and 4-grams by default), from tables holding a row for every n-gram seen at least
twice in the training tokens and a shared row for the rest (:func:`count_ngram_keys`; n-gram input
embeddings in the manner of Huang et al. 2025, "Over-tokenized transformer", here with exact keys
instead of hashing). A lookup costs no matrix product, so the tables add memory of the training
text at almost no compute: on the harness's 6 MB at width 64 (8,000 ids, one thread) they took the
held-out bits per byte from 2.88 to 2.56 for the same training time, where a hashed table of
2**18 rows reached only 2.73 (collisions) and a higher learning rate for the dense weights 2.81.
The tables learn with sparse Adam at their own, larger learning rate (a row changes only where
its n-gram occurs).

:meth:`TinyTransformer.forward` takes an optional past (each layer's keys and values of earlier
positions) so that a history can be extended by a few tokens without recomputing its prefix; the
rows of one call may have pasts of different lengths (padded, masked). :func:`train_model` is the
training loop: AdamW, linear warm-up then cosine decay, gradient clipping, optional bfloat16
autocast, one seeded generator for the initialisation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Past = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (batch, heads, positions, head width)

#: each further cluster of the adaptive softmax holds this many times the ids of the one before, in
#: vectors this many times shorter (at least MIN_TAIL_WIDTH)
CLUSTER_GROWTH = 4
MIN_TAIL_WIDTH = 8


def cluster_bounds(n_ids: int, head: int) -> list[int]:
    """The first id of each cluster and ``n_ids`` at the end: ``[0, head, 4 head, 16 head, ...,
    n_ids]``, one cluster (a full softmax) when ``head`` is 0 or covers every id."""
    if head <= 0 or head >= n_ids:
        return [0, n_ids]
    bounds = [0, head]
    while bounds[-1] * CLUSTER_GROWTH < n_ids:
        bounds.append(bounds[-1] * CLUSTER_GROWTH)
    return [*bounds, n_ids]


def rotary_tables(positions: torch.Tensor, head_width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles for ``positions`` (any shape), last axis the head width."""
    half = head_width // 2
    inv = 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float64, device=positions.device) / half))
    angles = positions.to(torch.float64)[..., None] * inv
    angles = torch.cat([angles, angles], dim=-1)
    return torch.cos(angles), torch.sin(angles)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + turned * sin.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.proj(y.transpose(1, 2).reshape(b, t, w)), (k, v)


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.norm1(x), cos, sin, past, mask)
        x = x + a
        return x + self.mlp(self.norm2(x)), kv


class TinyTransformer(nn.Module):
    """A decoder-only LM over ``vocab_size`` ids with ``context`` positions (BOS included);
    ``head > 0``: an adaptive softmax whose first cluster holds ids ``0 .. head - 1`` (module
    docstring)."""

    def __init__(self, vocab_size: int, *, layers: int, width: int, heads: int, context: int, head: int = 0,
                 ngram_keys: Sequence[np.ndarray | torch.Tensor] = ()) -> None:
        super().__init__()
        if width % heads or (width // heads) % 2:
            raise ValueError(f"width {width} must split into {heads} heads of an even width")
        self.vocab_size, self.context, self.heads, self.width = vocab_size, context, heads, width
        self.bounds = cluster_bounds(vocab_size, head)
        self.embed = nn.Embedding(self.bounds[1], width)  # the first cluster's ids, at full width
        tails = list(zip(self.bounds[1:-1], self.bounds[2:]))
        dims = [max(width // CLUSTER_GROWTH ** (k + 1), MIN_TAIL_WIDTH) for k in range(len(tails))]
        self.tails = nn.ModuleList(nn.Embedding(b - a, d) for (a, b), d in zip(tails, dims))
        self.tail_proj = nn.ModuleList(nn.Linear(d, width, bias=False) for d in dims)
        self.cluster = nn.Parameter(torch.zeros(len(tails), width))  # the first softmax's entry per further cluster
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        # n-gram k + 2 (k = 0, 1, ...): its sorted keys (a buffer, saved with the weights) and a table
        # with a row per key after row 0, the row of every n-gram not among them
        self.ngram_context = len(ngram_keys)  # tokens before a position that its n-grams read
        for k, keys in enumerate(ngram_keys):
            self.register_buffer(f"ngram_keys_{k + 2}", torch.as_tensor(keys, dtype=torch.long))
        self.ngrams = nn.ModuleList(nn.Embedding(len(keys) + 1, width, sparse=True) for keys in ngram_keys)
        self._init(layers)
        for table in self.ngrams:  # an n-gram adds nothing until training has seen it
            nn.init.zeros_(cast(torch.Tensor, table.weight))

    def _init(self, layers: int) -> None:
        for name, p in self.named_parameters():
            if name.startswith("tail_proj."):  # keeps a projected tail vector at the scale of a head one
                nn.init.normal_(p, std=p.shape[1] ** -0.5)
            elif p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def _tail_clusters(self) -> list[tuple[int, int, torch.Tensor, torch.Tensor]]:
        """Each further cluster: its first id, its end, its vectors (ids, d) and projection (width, d)."""
        return [(a, b, cast(torch.Tensor, table.weight), cast(torch.Tensor, proj.weight))
                for a, b, table, proj in zip(self.bounds[1:-1], self.bounds[2:], self.tails, self.tail_proj)]

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        if not self.tails:
            return self.embed(ids)
        x = self.embed(ids.clamp(max=self.bounds[1] - 1))
        for a, b, table, proj in self._tail_clusters():
            inside = (ids >= a) & (ids < b)
            x = torch.where(inside[..., None], F.embedding((ids - a).clamp(0, b - a - 1), table) @ proj.T, x)
        return x

    def _first_softmax(self, h: torch.Tensor) -> torch.Tensor:
        logits = h @ self.embed.weight.T
        if self.tails:
            logits = torch.cat([logits, h @ self.cluster.T], dim=-1)
        return torch.log_softmax(logits.float(), dim=-1)

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """Natural-log probabilities of every id (float32, last axis ``vocab_size``) from the
        final states ``h`` that :meth:`forward` returns."""
        first = self._first_softmax(h)
        head = self.bounds[1]
        parts = [first[..., :head]]
        for k, (_, _, table, proj) in enumerate(self._tail_clusters()):
            inner = torch.log_softmax(((h @ proj) @ table.T).float(), dim=-1)
            parts.append(first[..., head + k, None] + inner)
        return torch.cat(parts, dim=-1) if self.tails else first

    def target_log_probs(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``log p(targets[i] | h[i])`` for states ``h`` (n, width) and ids ``targets`` (n,), each
        further cluster's softmax computed only at the rows whose target is in it."""
        first = self._first_softmax(h)
        head = self.bounds[1]
        if not self.tails:
            return first.gather(-1, targets[:, None]).squeeze(-1)
        which = torch.bucketize(targets, torch.tensor(self.bounds[2:-1], device=targets.device), right=True)
        column = torch.where(targets < head, targets, head + which)
        out = first.gather(-1, column[:, None]).squeeze(-1)
        for a, b, table, proj in self._tail_clusters():
            rows = ((targets >= a) & (targets < b)).nonzero().squeeze(1)
            if rows.numel():
                inner = torch.log_softmax(((h[rows] @ proj) @ table.T).float(), dim=-1)
                out = out.index_add(0, rows, inner.gather(-1, (targets[rows] - a)[:, None]).squeeze(-1))
        return out

    def ngram_rows(self, ids: torch.Tensor, prev: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Each n-gram table's row for each position of ``ids`` (0: an n-gram without a row);
        ``prev`` (batch, ``ngram_context``): the ids before the first position, where a history
        is extended (none: the positions start at BOS, and the pad id before it is in no n-gram).
        The keys are those of :func:`count_ngram_keys`."""
        b, t = ids.shape
        back = self.ngram_context
        if prev is None:
            prev = ids.new_full((b, back), self.vocab_size)
        seq = torch.cat([prev[:, -back:], ids], dim=1) if back else ids
        row = seq + 1
        rows = []
        for k in range(len(self.ngrams)):
            n = k + 2
            key = row[:, n - 1:] * (self.vocab_size + 1) + seq[:, : seq.shape[1] - n + 1]
            keys = cast(torch.Tensor, getattr(self, f"ngram_keys_{n}"))
            found = torch.zeros_like(key)
            if len(keys):
                at = torch.searchsorted(keys, key).clamp(max=len(keys) - 1)
                found = torch.where(keys[at] == key, at + 1, 0)
            row = torch.cat([found.new_zeros((b, n - 1)), found], dim=1)
            rows.append(row[:, back:])
        return rows

    def forward(self, ids: torch.Tensor, past: Past | None = None, past_lengths: torch.Tensor | None = None,
                prev: torch.Tensor | None = None) -> tuple[torch.Tensor, Past]:
        """The final state of every position of ``ids`` (batch, new positions, width; what
        :meth:`log_probs` and :meth:`target_log_probs` read) and each layer's keys and values of
        all positions. ``past``: keys and values of the positions before (padded to the longest;
        ``past_lengths`` says how many of them each row has); ``prev``: the ids before the first
        new position, for the n-gram rows (:meth:`ngram_rows`)."""
        b, t = ids.shape
        mask = None
        if past is None:
            positions = torch.arange(t, device=ids.device).expand(b, t)
        else:
            assert past_lengths is not None
            width = past[0][0].shape[2]
            positions = past_lengths[:, None] + torch.arange(t, device=ids.device)
            old = torch.arange(width, device=ids.device)[None, None, :] < past_lengths[:, None, None]
            step = torch.arange(t, device=ids.device)
            new = step[None, None, :] <= step[None, :, None]
            mask = torch.cat([old.expand(b, t, width), new.expand(b, t, t)], dim=2)[:, None]
        cos, sin = rotary_tables(positions, self.width // self.heads)
        cos, sin = cos[:, None], sin[:, None]
        x = self._embed(ids)
        for table, rows in zip(self.ngrams, self.ngram_rows(ids, prev) if len(self.ngrams) else []):
            x = x + table(rows)
        present: Past = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cos, sin, None if past is None else past[i], mask)
            present.append(kv)
        return self.norm(x), present

    @property
    def parameters_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


Batches = Iterator[tuple[np.ndarray, np.ndarray]]


def train_model(model: TinyTransformer, batches: Batches, steps: int, *, lr: float, warmup_steps: int,
                weight_decay: float, device: str, bf16: bool, ngram_lr: float = 0.0,
                on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """``steps`` optimiser steps on the ``(inputs, targets)`` batches; what happened, as a dict.
    The n-gram tables learn with sparse Adam at ``ngram_lr`` (a row changes only where its n-gram
    occurs, so it needs a larger step than the dense weights), without weight decay or clipping."""
    sparse = list(model.ngrams.parameters())
    dense = [p for name, p in model.named_parameters() if not name.startswith("ngrams.")]
    decay = [p for p in dense if p.dim() >= 2]
    other = [p for p in dense if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    opts: list[tuple[torch.optim.Optimizer, float]] = [(opt, lr)]
    if sparse:
        opts.append((torch.optim.SparseAdam(sparse, lr=ngram_lr, betas=(0.9, 0.95)), ngram_lr))
    model.train()
    curve: list[tuple[int, float]] = []
    recent: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        x, y = next(batches)
        scale = (step + 1) / max(warmup_steps, 1) if step < warmup_steps else \
            0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup_steps) / max(steps - warmup_steps, 1)))
        for o, peak in opts:
            for group in o.param_groups:
                group["lr"] = peak * scale
        xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            h, _ = model(xs)
            loss = -model.target_log_probs(h.reshape(-1, h.shape[-1]), ys.reshape(-1)).mean()
        for o, _ in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dense, 1.0)
        for o, _ in opts:
            o.step()
        recent.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, recent[-1])
        if (step + 1) % max(steps // 10, 1) == 0 or step + 1 == steps:
            curve.append((step + 1, float(np.mean(recent))))
            recent = []
    model.eval()
    return {"steps": steps, "seconds": time.perf_counter() - t0,
            "loss_curve": [[s, round(v, 4)] for s, v in curve]}


def count_ngram_keys(ids: np.ndarray, ngrams: int, base: int, min_count: int) -> list[np.ndarray]:
    """The sorted keys of the 2-, 3-, ... ``(ngrams + 1)``-grams that occur at least
    ``min_count`` times in ``ids`` (all below ``base - 1``), the tables of :class:`TinyTransformer`.

    The key of the n-gram ending at position i is ``row * base + ids[i - n + 1]``, with ``row``
    the table row of the (n-1)-gram ending at i (``ids[i] + 1`` for n = 2): exact for any
    vocabulary and order (a key is below rows times ``base``), and an n-gram whose shorter
    suffix has no row, which cannot occur ``min_count`` times, gets none either (row 0)."""
    t = np.asarray(ids, dtype=np.int64)
    row = t + 1
    out = []
    for n in range(2, ngrams + 2):
        if len(t) < n:
            out.append(np.zeros(0, np.int64))
            row = np.zeros_like(t)
            continue
        key = row[n - 1:] * base + t[: len(t) - n + 1]
        uniq, counts = np.unique(key[row[n - 1:] > 0], return_counts=True)
        keys = uniq[counts >= min_count]
        out.append(keys)
        at = np.minimum(np.searchsorted(keys, key), max(len(keys) - 1, 0))
        row = np.zeros_like(t)
        if len(keys):
            row[n - 1:] = np.where(keys[at] == key, at + 1, 0)
    return out
