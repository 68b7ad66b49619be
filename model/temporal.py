"""The temporal module of the spatio-temporal head: attention across time, per pixel.

Structure and parameter names follow the official checkpoints
(`temporal_transformer.{norm,proj_in,transformer_blocks.0.*,proj_out}`), which
descend from AnimateDiff's motion module: GroupNorm(32) per frame, a Linear in,
one transformer block of two temporal self-attentions and a GEGLU feed-forward,
a zero-initialised Linear out and a residual. At initialisation the module is
therefore the identity, which is what lets a VDA head start from an image DPT
head without changing its outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SinusoidalPositionEncoding(nn.Module):
    """Absolute sinusoidal encoding over at most `max_len` frames.

    `pe` is a persistent buffer because the official checkpoints store it; it is
    never resized, so a model configured for shorter windows still loads them.
    """

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(1e4) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.pe.shape[1]:
            raise ValueError(
                f"{length} frames exceed the {self.pe.shape[1]} positions of the temporal encoding"
            )
        return x + self.pe[:, :length].to(x.dtype)


class TemporalAttention(nn.Module):
    """Multi-head attention over the frame axis of (sequences, frames, channels).

    With `memory` (the inputs this attention saw for earlier frames, before
    position encoding), the frames of `x` follow the memory in time: positions
    are encoded over memory + x, queries come from x only, keys and values from
    both. That is the official online (streaming) mode: one new frame attends to
    cached frames without recomputing them. Without memory it is self-attention.
    """

    def __init__(self, dim: int, heads: int, max_len: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"temporal attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = SinusoidalPositionEncoding(dim, max_len)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        seqs, frames, dim = x.shape
        context = x if memory is None else torch.cat([memory.to(x.dtype), x], dim=1)
        context = self.pos_encoder(context)
        queries = context[:, context.shape[1] - frames :]

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(seqs, t.shape[1], self.heads, dim // self.heads).transpose(1, 2)

        q = split_heads(self.to_q(queries))
        k, v = split_heads(self.to_k(context)), split_heads(self.to_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(seqs, frames, dim)
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList(
            [GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TemporalTransformerBlock(nn.Module):
    """Two pre-norm temporal self-attentions and a pre-norm GEGLU feed-forward.

    Streaming: `memory` holds one tensor per attention (its normalised inputs of
    earlier frames); `record`, a list, receives this call's normalised inputs in
    the same order, which is what the next frame's memory is made of.
    """

    def __init__(self, dim: int, heads: int, max_len: int, num_attentions: int = 2) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalAttention(dim, heads, max_len) for _ in range(num_attentions)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attentions)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        memory: list[torch.Tensor] | None = None,
        record: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        for i, (attention, norm) in enumerate(zip(self.attention_blocks, self.norms)):
            normed = norm(x)
            if record is not None:
                record.append(normed)
            x = attention(normed, None if memory is None else memory[i]) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, max_len: int, norm_groups: int = 32) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(channels, heads, max_len)]
        )
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(
        self,
        x: torch.Tensor,
        frames: int,
        memory: list[torch.Tensor] | None = None,
        record: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x: (B*T, C, H, W) frame-major feature maps of B clips of `frames` frames.

        `memory` / `record`: per attention, (B*H*W, frames, C) sequences (see
        `TemporalTransformerBlock`), the streaming cache of the online mode.
        """
        bt, channels, height, width = x.shape
        clips = bt // frames
        residual = x
        h = self.norm(x)
        # (B, T, C, H, W) -> (B, H, W, T, C) -> one sequence over time per pixel.
        h = h.reshape(clips, frames, channels, height, width).permute(0, 3, 4, 1, 2)
        h = self.proj_in(h.reshape(clips * height * width, frames, channels))
        per_block = len(self.transformer_blocks[0].attention_blocks)
        for b, block in enumerate(self.transformer_blocks):
            block_memory = None if memory is None else memory[b * per_block : (b + 1) * per_block]
            h = block(h, block_memory, record)
        h = self.proj_out(h)
        h = h.reshape(clips, height, width, frames, channels).permute(0, 3, 4, 1, 2)
        return h.reshape(bt, channels, height, width) + residual


class TemporalModule(nn.Module):
    """Wrapper that carries the official `temporal_transformer.` name prefix."""

    def __init__(self, channels: int, max_len: int, heads: int = 8) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, heads, max_len)

    def forward(
        self,
        x: torch.Tensor,
        frames: int,
        memory: list[torch.Tensor] | None = None,
        record: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        return self.temporal_transformer(x, frames, memory, record)
