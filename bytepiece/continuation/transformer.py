"""The small decoder-only transformer of the harness (PyTorch; imported only through
:mod:`.neural`, which says which extra to install when torch is missing).

Pre-norm blocks (LayerNorm, causal self-attention with rotary positions, a GELU MLP of four times
the width), a final LayerNorm and an output layer tied to the token embedding. Every input starts
with the BOS id, so the empty history has a position to predict from and the model learns to
predict from a window that starts anywhere in a text (training windows start at arbitrary tokens).

:meth:`TinyTransformer.forward` takes an optional past (each layer's keys and values of earlier
positions) so that a history can be extended by a few tokens without recomputing its prefix; the
rows of one call may have pasts of different lengths (padded, masked). :func:`train_model` is the
training loop: AdamW, linear warm-up then cosine decay, gradient clipping, optional bfloat16
autocast, one seeded generator for the initialisation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Past = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (batch, heads, positions, head width)


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
    """A decoder-only LM over ``vocab_size`` ids with ``context`` positions (BOS included)."""

    def __init__(self, vocab_size: int, *, layers: int, width: int, heads: int, context: int) -> None:
        super().__init__()
        if width % heads or (width // heads) % 2:
            raise ValueError(f"width {width} must split into {heads} heads of an even width")
        self.vocab_size, self.context, self.heads = vocab_size, context, heads
        self.embed = nn.Embedding(vocab_size, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self._init(layers)

    def _init(self, layers: int) -> None:
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids: torch.Tensor, past: Past | None = None, past_lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, Past]:
        """Logits of every position of ``ids`` (batch, new positions) and each layer's keys and
        values of all positions. ``past``: keys and values of the positions before (padded to the
        longest; ``past_lengths`` says how many of them each row has)."""
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
        cos, sin = rotary_tables(positions, self.embed.embedding_dim // self.heads)
        cos, sin = cos[:, None], sin[:, None]
        x = self.embed(ids)
        present: Past = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cos, sin, None if past is None else past[i], mask)
            present.append(kv)
        return self.norm(x) @ self.embed.weight.T, present

    @property
    def parameters_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


Batches = Iterator[tuple[np.ndarray, np.ndarray]]


def train_model(model: TinyTransformer, batches: Batches, steps: int, *, lr: float, warmup_steps: int,
                weight_decay: float, device: str, bf16: bool, on_step: Callable[[int, float], None] | None = None
                ) -> dict[str, Any]:
    """``steps`` optimiser steps on the ``(inputs, targets)`` batches; what happened, as a dict."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    model.train()
    curve: list[tuple[int, float]] = []
    recent: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        x, y = next(batches)
        scale = (step + 1) / max(warmup_steps, 1) if step < warmup_steps else \
            0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup_steps) / max(steps - warmup_steps, 1)))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            logits, _ = model(xs)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ys.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, recent[-1])
        if (step + 1) % max(steps // 10, 1) == 0 or step + 1 == steps:
            curve.append((step + 1, float(np.mean(recent))))
            recent = []
    model.eval()
    return {"steps": steps, "seconds": time.perf_counter() - t0,
            "loss_curve": [[s, round(v, 4)] for s, v in curve]}
