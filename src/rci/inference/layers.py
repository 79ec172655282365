"""Reusable building blocks of MatchLite (pure torch, export-friendly).

Masking convention: a mask is a float tensor of 0/1 that broadcasts against the activations.
The 2-D blocks multiply their output by the mask after every stage, so padded cells of a
similarity grid stay exactly zero. A zeroed cell is what a 'same' zero-padded convolution sees
beyond the border, hence a pair scored inside a padded batch gives the same result as the pair
scored alone at its own size (stride-2 layers keep this: output k is centred on input 2k).
That holds exactly in eval mode; in training, BatchNorm's batch statistics also see padded cells.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Fill value for masked attention logits: finite so a row with no valid key gives a uniform
# softmax instead of NaN (its output is gated to zero by the caller), small enough for fp16.
_MASKED_LOGIT = -1.0e4


def downsample_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """[B,1,H,W] -> [B,1,ceil(H/s),ceil(W/s)]: the cells a stride-s 'same' conv is centred on."""
    return mask if stride == 1 else mask[:, :, ::stride, ::stride]


def masked_mean_2d(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W], [B,1,H,W] -> [B,C]: mean over the valid cells (zero when there are none)."""
    total = (x * mask).sum(dim=(2, 3))  # [B,C]
    count = mask.sum(dim=(2, 3)).clamp(min=1.0)  # [B,1]
    return total / count


def cosine_map(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """[B,M,d], [B,N,d] -> [B,M,N] cosine similarity of every row of a with every row of b.

    Zero rows (padding) give 0 rather than NaN thanks to the eps in the norm.
    """
    a = F.normalize(a, dim=-1, eps=eps)
    b = F.normalize(b, dim=-1, eps=eps)
    return a @ b.transpose(1, 2)


def view_cosine_map(a: torch.Tensor, b: torch.Tensor, views: int) -> torch.Tensor:
    """[B,M,V*d], [B,N,V*d] (or [K,V*d]) frames holding V views side by side -> [B,M,N] (or [B,M,K]):
    each frame pair's best cosine over every pair of views (rci.inference.features.frame_similarity)."""
    if views == 1:  # the graph one-view models have always exported, unchanged
        return cosine_map(a, b) if b.dim() == 3 else F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    a_views = [F.normalize(x, dim=-1, eps=1e-6) for x in a.chunk(views, dim=-1)]  # V x [B,M,d]
    b_views = [F.normalize(y, dim=-1, eps=1e-6).transpose(-1, -2) for y in b.chunk(views, dim=-1)]  # V x [B,d,N]
    return torch.stack([x @ y for x in a_views for y in b_views]).amax(dim=0)


def chamfer_similarity(s: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """[B,M,N] similarities, [B,M,N] valid cells -> [B] symmetric Chamfer similarity: the mean over each
    video's real frames of its best match in the other, averaged over both directions (video copy
    detection's frame-set similarity; SSCD with it alone is a strong copy detector)."""
    masked = s.masked_fill(grid == 0, -2.0)
    rows, cols = grid.amax(dim=2), grid.amax(dim=1)  # [B,M], [B,N]: real frames of each side
    row_best = (masked.amax(dim=2) * rows).sum(dim=1) / rows.sum(dim=1).clamp(min=1.0)
    col_best = (masked.amax(dim=1) * cols).sum(dim=1) / cols.sum(dim=1).clamp(min=1.0)
    return 0.5 * (row_best + col_best)


def background_level(frames: torch.Tensor, background: torch.Tensor, views: int, topk: int) -> torch.Tensor:
    """[B,M,V*d] frames, [K,V*d] background frames -> [B,M]: the mean of each frame's top-k cosines with the
    background (SSCD's score normalisation: how alike a frame is to unrelated media anyway)."""
    sims = view_cosine_map(frames, background, views)  # [B,M,K]
    return sims.topk(min(topk, background.shape[0]), dim=-1).values.mean(dim=-1)


class BackgroundFrames:
    """For pair models whose config has background_frames and visual_dim: a buffer of background frames
    (SSCD's score normalisation), saved with the weights, set from training media by set_background."""

    def _register_background(self) -> None:
        if self.config.background_frames:
            self.register_buffer("background", torch.zeros(self.config.background_frames, self.config.visual_dim))

    def set_background(self, frames: torch.Tensor) -> None:
        """[K,Dv] frames of media unrelated to the pairs trained on (K = config.background_frames)."""
        if not self.config.background_frames or tuple(frames.shape) != tuple(self.background.shape):
            raise ValueError(f"background must be {tuple(getattr(self, 'background', torch.empty(0)).shape)}, "
                             f"got {tuple(frames.shape)}")
        self.background.copy_(F.normalize(frames.float(), dim=-1))


# --- multimodal perception ------------------------------------------------------------------


class BiXTBlock(nn.Module):
    """Bi-directional cross-attention (BiXT, Hiller et al. 2024) between two token sets.

    One attention matrix A = r_x r_y^T / sqrt(d_h) per head is shared by both directions:
    x attends over y with softmax along y (rows of A), y attends over x with softmax along x
    (columns of A). Each side then gets a residual MLP. Pre-norm, like a ViT block.

    Inputs x [B,M,dx] (visual frames) and y [B,K,dy] (text tokens, or K=1 audio token) are first
    projected to the shared `hidden` width. Key masks exclude padding; when a side has no valid
    token at all (missing modality) the other side's cross-attention update is gated to zero.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden {hidden} must be divisible by heads {heads}")
        self.heads = heads
        self.head_dim = hidden // heads
        self.in_x = nn.Linear(x_dim, hidden)
        self.in_y = nn.Linear(y_dim, hidden)
        self.norm_x = nn.LayerNorm(hidden)
        self.norm_y = nn.LayerNorm(hidden)
        self.ref_x = nn.Linear(hidden, hidden)  # 'reference' vectors that build the shared A
        self.ref_y = nn.Linear(hidden, hidden)
        self.val_x = nn.Linear(hidden, hidden)
        self.val_y = nn.Linear(hidden, hidden)
        self.out_x = nn.Linear(hidden, hidden)
        self.out_y = nn.Linear(hidden, hidden)
        self.mlp_x = _mlp(hidden, mlp_ratio, dropout)
        self.mlp_y = _mlp(hidden, mlp_ratio, dropout)
        self.drop = nn.Dropout(dropout)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        # [B,T,hidden] -> [B,h,T,d_h]
        return t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    @staticmethod
    def _merge(t: torch.Tensor) -> torch.Tensor:
        # [B,h,T,d_h] -> [B,T,hidden]
        return t.transpose(1, 2).flatten(2)

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B,M,dx], x_mask [B,M] bool, y [B,K,dy], y_mask [B,K] bool
        -> x' [B,M,hidden] (e.g. f^vt), y' [B,K,hidden] (e.g. f^tv), attn_xy [B,M,K] head-mean x->y weights.
        """
        x = self.in_x(x)  # [B,M,H]
        y = self.in_y(y)  # [B,K,H]
        xn, yn = self.norm_x(x), self.norm_y(y)
        logits = self._split(self.ref_x(xn)) @ self._split(self.ref_y(yn)).transpose(-1, -2)  # [B,h,M,K]
        logits = logits / math.sqrt(self.head_dim)

        y_valid = y_mask[:, None, None, :]  # [B,1,1,K]
        x_valid = x_mask[:, None, :, None]  # [B,1,M,1]
        attn_xy = logits.masked_fill(~y_valid, _MASKED_LOGIT).softmax(dim=-1)  # [B,h,M,K] x attends over y
        attn_yx = logits.masked_fill(~x_valid, _MASKED_LOGIT).softmax(dim=-2)  # [B,h,M,K] y attends over x

        # Gate: no valid token on the other side means no information to inject.
        y_any = y_mask.any(dim=-1).to(x.dtype)[:, None, None]  # [B,1,1]
        x_any = x_mask.any(dim=-1).to(x.dtype)[:, None, None]  # [B,1,1]

        x_upd = self._merge(self.drop(attn_xy) @ self._split(self.val_y(yn)))  # [B,M,H]
        y_upd = self._merge(self.drop(attn_yx).transpose(-1, -2) @ self._split(self.val_x(xn)))  # [B,K,H]
        x = x + self.out_x(x_upd) * y_any
        y = y + self.out_y(y_upd) * x_any
        x = x + self.mlp_x(x)
        y = y + self.mlp_y(y)
        return x, y, attn_xy.mean(dim=1)


def _mlp(width: int, ratio: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(width),
        nn.Linear(width, width * ratio),
        nn.GELU(),
        nn.Linear(width * ratio, width),
        nn.Dropout(dropout),
    )


# --- paired feature fusion ------------------------------------------------------------------


class PairwiseConcatConv(nn.Module):
    """A 1x1 Conv2d over D[i,j] = concat(f_q[i], f_c[j]) without building D.

    conv1x1(concat(a, b)) = W_a a + W_b b + bias, so the [B,2d,M,N] tensor is never
    materialised: two linear maps and a broadcast add give the same [B,C,M,N] result.
    """

    def __init__(self, in_dim: int, out_channels: int) -> None:
        super().__init__()
        self.query = nn.Linear(in_dim, out_channels)  # carries the bias
        self.candidate = nn.Linear(in_dim, out_channels, bias=False)

    def forward(self, f_q: torch.Tensor, f_c: torch.Tensor) -> torch.Tensor:
        """f_q [B,M,d], f_c [B,N,d] -> [B,C,M,N]."""
        q = self.query(f_q).transpose(1, 2)[:, :, :, None]  # [B,C,M,1]
        c = self.candidate(f_c).transpose(1, 2)[:, :, None, :]  # [B,C,1,N]
        return q + c


class ResBlockConv(nn.Module):
    """Visual feature enhancement: D [B,2d,M,N] -> E [B,C,M,N] with 3 Conv2D + BatchNorm + ReLU.

    conv1 is the 1x1 pairwise projection (PairwiseConcatConv), conv2/conv3 are 3x3 with a
    residual connection around them.
    """

    def __init__(self, in_dim: int, channels: int) -> None:
        super().__init__()
        self.pair = PairwiseConcatConv(in_dim, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward(self, f_q: torch.Tensor, f_c: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """f_q [B,M,d], f_c [B,N,d], mask [B,1,M,N] -> E [B,C,M,N] (zero on padded cells)."""
        h = F.relu(self.bn1(self.pair(f_q, f_c))) * mask  # [B,C,M,N]
        r = F.relu(self.bn2(self.conv2(h))) * mask
        r = self.bn3(self.conv3(r))
        return F.relu(h + r) * mask


# --- compact decision ---------------------------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs), mask-aware."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,Cin,H,W], mask [B,1,H,W] -> [B,C,H/s,W/s], mask [B,1,H/s,W/s]."""
        mask = downsample_mask(mask, self.stride)
        out = F.relu(self.bn1(self.conv1(x))) * mask
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x)) * mask, mask


class ResNetTrunk(nn.Module):
    """ResNet of basic blocks (ResNet-34 = layers (3,4,6,3), widths (64,128,256,512)).

    The stem's first conv takes `in_channels` (the fused E + S channel count) instead of RGB.
    Returns the masked global average pool: the pair embedding z [B, widths[-1]].
    """

    def __init__(self, in_channels: int, layers: tuple[int, ...], widths: tuple[int, ...]) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"resnet layers {layers} and widths {widths} differ in length")
        self.stem_conv = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        self.stem_pool = nn.MaxPool2d(3, stride=2, padding=1)
        blocks: list[BasicBlock] = []
        prev = widths[0]
        for stage, (depth, width) in enumerate(zip(layers, widths, strict=True)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(prev, width, stride))
                prev = width
        self.blocks = nn.ModuleList(blocks)
        self.out_dim = prev
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B,Cin,M,N], mask [B,1,M,N] -> z [B, out_dim]."""
        mask = downsample_mask(mask, 2)
        x = F.relu(self.stem_bn(self.stem_conv(x))) * mask  # [B,w0,M/2,N/2]
        # Max-pool pads with -inf but sees zeros on masked cells: same result, since after ReLU
        # every valid value is >= 0 and each window's centre cell is valid.
        mask = downsample_mask(mask, 2)
        x = self.stem_pool(x) * mask  # [B,w0,M/4,N/4]
        for block in self.blocks:
            x, mask = block(x, mask)
        return masked_mean_2d(x, mask)  # [B,out_dim]
