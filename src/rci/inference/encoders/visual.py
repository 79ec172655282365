"""Visual encoder: Swin backbone + linear projection, one L2-normalised 128-d vector per frame.

Paper size (appendix A.1) is Swin-T at 224 px: embed_dim 96, depths 2-2-6-2, heads 3-6-12-24,
window 7, 768-d pooled output projected to 128. The small size is for tests and CPU demos: frames
are downscaled 224 -> 112 inside `forward` and a 3-stage Swin (embed_dim 32, depths 1-1-3) runs on
them, about 60x cheaper than Swin-T. Both keep the 128-d output, so MatchLite sees the same
visual width either way.

Weights: there is no public copy-detection Swin-T, so the project trains its own with
`src/rci/training/sscd.py`; an ImageNet (or in-house) Swin checkpoint can be used as the starting point,
see docs/encoders.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import SwinConfig, SwinModel

from rci.inference.encoders.base import EncoderInputError, FrozenEncoder, batches

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VisualEncoderConfig:
    image_size: int = 224  # frames are resized to this inside forward (224 = no resize)
    patch_size: int = 4
    embed_dim: int = 96  # width of stage 1; doubles at every later stage
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1  # stochastic depth while training; inert in eval mode
    out_dim: int = 128

    @classmethod
    def paper(cls) -> VisualEncoderConfig:
        return cls()

    @classmethod
    def small(cls) -> VisualEncoderConfig:
        return cls(image_size=112, embed_dim=32, depths=(1, 1, 3), num_heads=(2, 4, 8), drop_path_rate=0.0)

    def __post_init__(self) -> None:
        if len(self.depths) != len(self.num_heads):
            raise ValueError("depths and num_heads need one entry per stage")
        for stage, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**stage) % heads:
                raise ValueError(f"stage {stage} width {self.embed_dim * 2**stage} is not divisible by {heads} heads")
        # transformers shrinks the window when a stage is smaller than it but keeps the bias table
        # of the full window, which then fails: insist every stage holds at least one full window.
        last = self.image_size // self.patch_size // 2 ** (len(self.depths) - 1)
        if last < self.window_size:
            raise ValueError(f"last stage is {last}x{last} tokens, smaller than window_size {self.window_size}")

    @property
    def hidden_size(self) -> int:
        """Width of the pooled Swin output (before the projection)."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def tag(self) -> str:
        return f"swin{self.embed_dim}x{''.join(map(str, self.depths))}@{self.image_size}"

    def swin_config(self) -> SwinConfig:
        return SwinConfig(
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=3,
            embed_dim=self.embed_dim,
            depths=list(self.depths),
            num_heads=list(self.num_heads),
            window_size=self.window_size,
            mlp_ratio=self.mlp_ratio,
            drop_path_rate=self.drop_path_rate,
        )


class SwinFrameEmbedder(nn.Module):
    """Frames -> unit-length embeddings. A plain module: trainable as is, frozen by SwinVisualEncoder."""

    def __init__(self, config: VisualEncoderConfig):
        super().__init__()
        self.config = config
        self.swin = SwinModel(config.swin_config(), add_pooling_layer=True)
        self.proj = nn.Linear(config.hidden_size, config.out_dim, bias=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: [N, H, W, 3] uint8 RGB -> [N, out_dim] float32, unit L2 norm
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)  # [N, 3, H, W] in [0, 1]
        return self.embed(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, 3, H, W] float in [0, 1] (training feeds augmented views here) -> [N, out_dim]
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        pooled = self.swin(pixel_values=x).pooler_output  # [N, hidden_size], mean over the last stage
        return F.normalize(self.proj(pooled), dim=-1)  # [N, out_dim]


class SwinVisualEncoder(FrozenEncoder):
    """Frozen, batched `VisualEncoder` over a `SwinFrameEmbedder`."""

    modality = "visual"
    config: VisualEncoderConfig
    module: SwinFrameEmbedder

    def __init__(self, module: SwinFrameEmbedder, device: str = "auto", batch_size: int = 32):
        super().__init__(module, module.config, device, batch_size)

    @property
    def output_dim(self) -> int:
        return self.config.out_dim

    @property
    def views(self) -> int:
        return 1  # the centre square only

    def encode_wholes(self, frames: np.ndarray) -> np.ndarray:
        raise EncoderInputError("the Swin encoder has one view (the centre square); it encodes no whole frames")

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise EncoderInputError(f"expected uint8 frames [N, H, W, 3], got {frames.dtype} {frames.shape}")
        out = np.empty((len(frames), self.output_dim), dtype=np.float32)
        with torch.inference_mode():
            for part in batches(len(frames), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(frames[part])).to(self.device)
                out[part] = self.module(x).float().cpu().numpy()
        return out
