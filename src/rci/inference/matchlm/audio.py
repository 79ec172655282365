"""Audio for MatchLM (paper 3.2, appendix A.2, B.2).

Early fusion (the paper's choice): Whisper encoder tokens [T, Da] (T = 1500 per 30 s clip) ->
a linear saliency score per token -> softmax over the real tokens -> weighted sum = ONE audio
token -> MLP projector to the LM width, placed at the `<audio>` slot of the prompt.
Late fusion (ablation B.2): each video's tokens are mean pooled, the two means are concatenated
and projected, and the result joins the LM's last-token state just before the head.

Whisper sees 30 s of log-mel whatever the clip's length (shorter clips are padded with silence);
`audio_token_mask` marks the tokens that cover real audio so padding gets zero weight.
"""

from __future__ import annotations

import math

import torch
from torch import nn

WHISPER_TOKENS_PER_SECOND = 50.0  # 1500 encoder positions per 30 s window


def audio_token_mask(duration_s: float, positions: int, tokens_per_second: float = WHISPER_TOKENS_PER_SECOND) -> torch.Tensor:
    """[positions] bool: True for encoder positions that cover real audio (at least one)."""
    real = min(positions, max(1, math.ceil(duration_s * tokens_per_second)))
    mask = torch.zeros(positions, dtype=torch.bool)
    mask[:real] = True
    return mask


class SaliencyPooling(nn.Module):
    """Learned linear saliency per token, softmax over real tokens, weighted sum (appendix A.2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # tokens: [N,T,D], mask: [N,T] bool -> pooled [N,D], weights [N,T] (rows sum to 1, 0 on padding;
        # a row with no real token gets all-zero weights and a zero vector)
        logits = self.score(tokens).squeeze(-1)  # [N,T]
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        weights = logits.softmax(dim=-1) * mask  # exp(min - max) underflows to exactly 0 on padding
        pooled = torch.einsum("nt,ntd->nd", weights, tokens)
        return pooled, weights


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N,T,D], [N,T] bool -> [N,D] mean of the real tokens (zeros when there are none)."""
    m = mask.to(tokens.dtype).unsqueeze(-1)  # [N,T,1]
    return (tokens * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class MLPProjector(nn.Module):
    """Linear -> GELU -> Linear, the LLaVA projector design reused for audio."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EarlyAudioFusion(nn.Module):
    """One LM-space audio token per video (the `<audio>` slot)."""

    def __init__(self, audio_dim: int, lm_dim: int) -> None:
        super().__init__()
        self.saliency = SaliencyPooling(audio_dim)
        self.projector = MLPProjector(audio_dim, lm_dim)
        # what sits in the slot of a video without an audio track: learned, not a fake silence
        self.missing = nn.Parameter(torch.zeros(lm_dim))

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # tokens [N,T,Da], mask [N,T] bool, present [N] bool -> audio tokens [N,H], saliency weights [N,T]
        pooled, weights = self.saliency(tokens, mask & present[:, None])
        projected = self.projector(pooled)  # [N,H]
        audio = torch.where(present[:, None], projected, self.missing.to(projected.dtype))
        return audio, weights


class LateAudioFusion(nn.Module):
    """Ablation B.2: concat(mean audio of video 1, of video 2) -> linear, joined to the pair state."""

    def __init__(self, audio_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * audio_dim, out_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        # tokens [2B,T,Da] ordered (pair0 video1, pair0 video2, pair1 video1, ...) -> [B,out_dim]
        means = masked_mean(tokens, mask & present[:, None])  # [2B,Da], zeros without audio
        return self.proj(means.reshape(-1, 2 * means.shape[-1]))
