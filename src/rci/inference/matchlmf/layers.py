"""Building blocks of MatchLMF (pure torch): a pre-LayerNorm transformer block whose attention logits
take additive biases, and the helpers that build those biases.

Shapes: B pairs, T tokens, h heads, K bias maps (pair similarity maps laid out on the T x T grid).
Attention logits of head h are  q.k / sqrt(d_h) + sum_k w[k, h] * maps[:, k] + key_bias, so a
similarity map can steer attention between the two videos (w learned per layer and head) and
padding is removed through key_bias.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Logit added at padded keys: finite, so a row whose keys are all padding cannot give NaN, and still
# within fp16 range; exp(-1e4) is exactly 0 in float32, so padding changes no real token's attention.
MASKED_LOGIT = -1.0e4
# Initial weight of every bias map in every head. Copies' frames have cosines ~0.8-1, unrelated ones
# ~0-0.3, and at initialisation q.k logits are ~0.1 wide: at 3 a frame's matching frame in the other
# video gets ~20x the attention of an unrelated token (at 1, ~3x: drowned among tens of tokens), so the
# CLS sees copies differ from the first step. On synthetic pairs a tiny model reached held-out accuracy
# > 0.97 in 150 steps from 3, but 0.7-0.99 (varying with the seed) from 1.
PAIR_BIAS_INIT = 3.0


def key_padding_bias(mask: torch.Tensor) -> torch.Tensor:
    """mask [B,T] bool (True = real token) -> [B,1,1,T] float: 0 at real keys, MASKED_LOGIT at padding."""
    bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill(~mask, MASKED_LOGIT)
    return bias[:, None, None, :]


def place_cross_block(grid: torch.Tensor, block: torch.Tensor, rows: int, cols: int) -> None:
    """Write block [B,R,C] into grid [B,T,T] at (rows, cols) and its transpose at (cols, rows), in place:
    query-side tokens attending to candidate-side tokens see the same similarity as the reverse."""
    r, c = block.shape[1], block.shape[2]
    grid[:, rows : rows + r, cols : cols + c] = block
    grid[:, cols : cols + c, rows : rows + r] = block.transpose(1, 2)


class BiasedSelfAttention(nn.Module):
    """Multi-head self-attention with additive logit biases (no nn.MultiheadAttention: its float mask
    cannot differ per head and batch element in a way that carries learned per-head weights)."""

    def __init__(
        self, width: int, heads: int, bias_maps: int, dropout: float, bias_init: float = PAIR_BIAS_INIT
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.head_dim = width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)
        # w[k, h]: how strongly map k steers head h. Starting positive means a frame first attends to
        # the frames its descriptor matches; training can turn a head's bias down or around.
        self.map_weight = nn.Parameter(torch.full((bias_maps, heads), float(bias_init)))

    def logit_bias(self, maps: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """maps [B,K,T,T], key_bias [B,1,1,T] -> [B,h,T,T] additive attention mask."""
        return torch.einsum("kh,bkst->bhst", self.map_weight, maps) + key_bias

    def forward(self, x: torch.Tensor, maps: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """x [B,T,D], maps [B,K,T,T], key_bias [B,1,1,T] -> [B,T,D]."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4)  # 3 x [B,h,T,d_h]
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B,h,T,T]
        attn = (logits + self.logit_bias(maps, key_bias)).softmax(dim=-1)  # [B,h,T,T]
        mixed = self.drop(attn) @ v  # [B,h,T,d_h]
        return self.out(mixed.transpose(1, 2).flatten(2))  # [B,T,D]


class BiasedTransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + Attn(LN(x)), then x + FF(LN(x))."""

    def __init__(self, width: int, heads: int, ff_mult: int, bias_maps: int, dropout: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = BiasedSelfAttention(width, heads, bias_maps, dropout)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = nn.Sequential(
            nn.Linear(width, width * ff_mult),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(width * ff_mult, width),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, maps: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """x [B,T,D], maps [B,K,T,T], key_bias [B,1,1,T] -> [B,T,D]."""
        x = x + self.drop(self.attn(self.norm_attn(x), maps, key_bias))
        return x + self.drop(self.ff(self.norm_ff(x)))
