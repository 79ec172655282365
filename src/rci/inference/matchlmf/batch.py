"""(query, candidate) VideoFeatures pairs -> the padded tensors MatchLMF reads.

Shapes: B pairs; M frames, S seconds of audio, L text tokens, each padded to the longest video of
the batch (both sides alike) and clamped to the config's maxima; V*Dv = visual_views * view_dim.

  visual      [B,M,V*Dv] f32  the frames' descriptors as the features hold them (all views side by side)
  audio       [B,S,32]   f32  per-second Chromaprint bit vectors: the share of the second's
                              sub-fingerprints with each bit set (bit k = (value >> k) & 1), in [0, 1]
  text        [B,L,Dt]   f32  MiniLM token embeddings
  *_mask      bool            True for real frames / seconds / tokens
  audio_map   [B,S,S]    f32  rci.media.fingerprint.second_similarity of the two fingerprints: how well
                              query second i matches candidate second j, offsets and speed changes
                              tolerated, centred (0 = chance agreement, 1 = identical bits, >= -1)

A video without audio (has_audio False, or too short for a fingerprint) has all its seconds masked
and its pairs' maps are zero, as is every padded cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from rci.inference.features import VideoFeatures
from rci.inference.matchlmf.config import MatchLMFConfig
from rci.media.fingerprint import BITS, HOP_S, second_similarity


@dataclass
class MatchLMFBatch:
    q_visual: torch.Tensor  # [B,M,V*Dv] f32
    q_visual_mask: torch.Tensor  # [B,M] bool
    q_audio: torch.Tensor  # [B,S,32] f32
    q_audio_mask: torch.Tensor  # [B,S] bool
    q_text: torch.Tensor  # [B,L,Dt] f32
    q_text_mask: torch.Tensor  # [B,L] bool
    c_visual: torch.Tensor  # [B,M,V*Dv] f32
    c_visual_mask: torch.Tensor  # [B,M] bool
    c_audio: torch.Tensor  # [B,S,32] f32
    c_audio_mask: torch.Tensor  # [B,S] bool
    c_text: torch.Tensor  # [B,L,Dt] f32
    c_text_mask: torch.Tensor  # [B,L] bool
    audio_map: torch.Tensor  # [B,S,S] f32, centred agreement (query seconds x candidate seconds)

    def __len__(self) -> int:
        return self.q_visual.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> MatchLMFBatch:
        """Move every tensor; float tensors also take `dtype` when given (masks stay bool)."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            moved[f.name] = value.to(device, dtype=dtype if dtype is not None and value.is_floating_point() else None)
        return replace(self, **moved)


def fingerprint_seconds(fingerprint: np.ndarray, max_seconds: int) -> np.ndarray:
    """uint32 [T] sub-fingerprints -> float32 [S, 32]: row s is the mean of each bit over the
    sub-fingerprints starting in second s (floor(i * HOP_S) = s), for the first `max_seconds` seconds."""
    values = np.asarray(fingerprint, dtype=np.uint32)
    second = np.floor(np.arange(len(values)) * HOP_S).astype(np.int64)  # [T]
    keep = second < max_seconds
    values, second = values[keep], second[keep]
    if len(values) == 0:
        return np.zeros((0, BITS), np.float32)
    bits = (values[:, None] >> np.arange(BITS, dtype=np.uint32)) & 1  # [T,32], column k = bit k
    count = np.bincount(second)  # [S]: every second has sub-fingerprints (HOP_S < 1 s)
    sums = np.zeros((len(count), BITS), np.float64)
    np.add.at(sums, second, bits)
    return (sums / np.maximum(count, 1)[:, None]).astype(np.float32)


def build_batch(pairs: Sequence[tuple[VideoFeatures, VideoFeatures]], config: MatchLMFConfig) -> MatchLMFBatch:
    """Pad and stack the pairs (CPU tensors); ValueError when features do not fit the config."""
    if not pairs:
        raise ValueError("build_batch needs at least one pair")
    for video in (v for pair in pairs for v in pair):
        _check_widths(video, config)
    videos = [v for pair in pairs for v in pair]
    seconds = [_audio_seconds(v, config) for v in videos]  # per video: [S_v, 32]
    # Shared padded lengths, at least 1 so no tensor has an empty axis (a masked token costs nothing).
    m = max(1, *(_used_length(v.visual_mask, config.max_frames) for v in videos))
    s = max(1, *(len(x) for x in seconds))
    n_tok = max(1, *(_used_length(v.text_mask, config.text_tokens) for v in videos))
    q = _side([p[0] for p in pairs], seconds[0::2], m, s, n_tok)
    c = _side([p[1] for p in pairs], seconds[1::2], m, s, n_tok)
    maps = np.zeros((len(pairs), s, s), np.float32)
    for i, (query, candidate) in enumerate(pairs):
        rows, cols = len(seconds[2 * i]), len(seconds[2 * i + 1])
        if rows and cols:
            maps[i, :rows, :cols] = second_similarity(query.audio_fingerprint, candidate.audio_fingerprint, rows, cols)
    tensors = {f"q_{k}": torch.from_numpy(v) for k, v in q.items()}
    tensors |= {f"c_{k}": torch.from_numpy(v) for k, v in c.items()}
    return MatchLMFBatch(**tensors, audio_map=torch.from_numpy(maps))


def _check_widths(video: VideoFeatures, config: MatchLMFConfig) -> None:
    if video.visual_views != config.visual_views:
        raise ValueError(f"{video.video_id} has {video.visual_views} views per frame, the model "
                         f"{config.visual_views}: features of another encoder")
    if video.visual.shape[1] != config.visual_dim or video.text.shape[1] != config.text_dim:
        raise ValueError(f"{video.video_id}: visual width {video.visual.shape[1]} / text width {video.text.shape[1]}, "
                         f"the model reads {config.visual_dim} / {config.text_dim}")


def _used_length(mask: np.ndarray, cap: int) -> int:
    """Rows up to the last real one (features pad at the end), at most `cap`."""
    real = np.flatnonzero(np.asarray(mask, dtype=bool)[:cap])
    return int(real[-1]) + 1 if len(real) else 0


def _audio_seconds(video: VideoFeatures, config: MatchLMFConfig) -> np.ndarray:
    if not video.has_audio:
        return np.zeros((0, BITS), np.float32)
    return fingerprint_seconds(video.audio_fingerprint, config.max_audio_seconds)


def _side(videos: list[VideoFeatures], seconds: list[np.ndarray], m: int, s: int, n_tok: int) -> dict[str, np.ndarray]:
    """One side's arrays, zero padded to m frames, s seconds and n_tok tokens."""
    return {
        "visual": np.stack([_pad(v.visual[:m], m) for v in videos]),
        "visual_mask": np.stack([_pad(v.visual_mask[:m].astype(bool), m) for v in videos]),
        "audio": np.stack([_pad(x, s) for x in seconds]),
        "audio_mask": np.stack([np.arange(s) < len(x) for x in seconds]),
        "text": np.stack([_pad(v.text[:n_tok], n_tok) for v in videos]),
        "text_mask": np.stack([_pad(v.text_mask[:n_tok].astype(bool), n_tok) for v in videos]),
    }


def _pad(rows: np.ndarray, length: int) -> np.ndarray:
    """rows [n, ...] (n <= length) -> [length, ...] with zero (False) rows appended; float rows as float32."""
    out = np.zeros((length, *rows.shape[1:]), np.float32 if rows.dtype != bool else bool)
    out[: len(rows)] = rows
    return out
