"""From what the pipeline has to MatchLM's tensors.

The shadow consumer and distillation hold decoded media (uint8 frames at 1 fps, Whisper log-mel)
or cached Whisper features, plus the title and sticker text from the event. `MatchLMProcessor`
turns (query, candidate) pairs of `VideoInput` into one right-padded `MatchLMBatch`:
frames are allocated across each pair, sampled, resized for the vision tower; the prompt is
tokenized with the right number of placeholder slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from rci.inference.matchlm.audio import audio_token_mask
from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.frames import ImageSpec, allocate_frames, frames_to_pixels, uniform_indices
from rci.inference.matchlm.prompt import SpecialTokens, Tokenizer, encode_segments, pair_segments
from rci.media.decoded import DecodedMedia


@dataclass(frozen=True)
class VideoInput:
    """One video as MatchLM takes it. Give log_mel OR audio_features (or neither: no audio)."""

    frames: np.ndarray  # [T,H,W,3] uint8 RGB, real frames only, 1 fps
    duration_s: float
    title: str = ""
    sticker_text: str = ""
    log_mel: np.ndarray | None = None  # [n_mels, 2*P] Whisper log-mel (80 x 3000 for whisper-small)
    # [P, Da] Whisper encoder states at 50 per second (positions past duration_s are masked, as for
    # log-mel), or [Da] one pooled vector (the feature cache's mean)
    audio_features: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.log_mel is not None and self.audio_features is not None:
            raise ValueError("give log_mel or audio_features, not both")
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [T,H,W,3], got {self.frames.dtype} {self.frames.shape}")

    @classmethod
    def from_decoded(cls, media: DecodedMedia, title: str = "", sticker_text: str = "") -> VideoInput:
        return cls(
            frames=media.frames[media.frame_mask],
            duration_s=media.duration_s,
            title=title,
            sticker_text=sticker_text,
            log_mel=media.log_mel,
        )

    @property
    def has_audio(self) -> bool:
        return self.log_mel is not None or self.audio_features is not None

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.title.strip(), self.sticker_text.strip()) if part)


@dataclass(frozen=True)
class MatchLMBatch:
    """B pairs, V = 2B videos ordered (pair0 query, pair0 candidate, pair1 query, ...)."""

    input_ids: torch.Tensor  # [B,S] long, right padded with the pad id
    attention_mask: torch.Tensor  # [B,S] long, 1 on real tokens
    pixel_values: torch.Tensor  # [F,3,s,s] the sampled frames of all videos, in prompt order
    frames_per_video: torch.Tensor  # [V] long
    has_audio: torch.Tensor  # [V] bool
    audio_mask: torch.Tensor  # [V,P] bool, real audio positions
    log_mel: torch.Tensor | None = None  # [V,n_mels,2P] (zeros for videos without audio), or
    audio_features: torch.Tensor | None = None  # [V,P,Da]

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> MatchLMBatch:
        """Move every tensor; float tensors also take `dtype` when given."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, dtype=dtype if dtype is not None and value.is_floating_point() else None)
            moved[f.name] = value
        return replace(self, **moved)


class MatchLMProcessor:
    def __init__(
        self,
        tokenizer: Tokenizer,
        config: MatchLMConfig,
        tokens: SpecialTokens,
        image: ImageSpec,
        frame_tokens: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.tokens = tokens
        self.image = image
        self.frame_tokens = frame_tokens  # LM tokens per frame after the projector's pooling

    def select_frames(self, query: VideoInput, candidate: VideoInput) -> tuple[np.ndarray, np.ndarray]:
        """Dynamic (or static) allocation of the frame budget, then uniform sampling in each video."""
        c = self.config
        counts = allocate_frames(
            (query.duration_s, candidate.duration_s),
            (len(query.frames), len(candidate.frames)),
            c.frame_budget,
            c.min_frames,
            c.frame_allocation,
        )
        return tuple(v.frames[uniform_indices(len(v.frames), n)] for v, n in zip((query, candidate), counts))

    def video_token_count(self, frames: int) -> int:
        # LLaVA-OneVision video layout: every frame's pooled tokens, then one image-newline token
        return frames * self.frame_tokens + (1 if frames else 0)

    def __call__(self, pairs: Sequence[tuple[VideoInput, VideoInput]]) -> MatchLMBatch:
        if not pairs:
            raise ValueError("empty batch")
        sequences, frames = [], []
        for query, candidate in pairs:
            chosen = self.select_frames(query, candidate)
            frames += chosen
            segments = pair_segments(
                self.config,
                self.tokens,
                (query.text, candidate.text),
                (self.video_token_count(len(chosen[0])), self.video_token_count(len(chosen[1]))),
            )
            sequences.append(encode_segments(self.tokenizer, segments, self.config.max_text_tokens))
        input_ids, attention_mask = self._right_pad(sequences)
        pixels = torch.cat([frames_to_pixels(f, self.image) for f in frames])  # videos may differ in size
        videos = [v for pair in pairs for v in pair]
        return MatchLMBatch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=pixels,
            frames_per_video=torch.tensor([len(f) for f in frames], dtype=torch.long),
            **self._audio(videos),
        )

    def _right_pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        # right padding keeps positions 0..len-1 for real tokens under a causal LM
        longest = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), longest), self.tokens.pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        return ids, mask

    def _audio(self, videos: list[VideoInput]) -> dict[str, torch.Tensor | None]:
        has_audio = torch.tensor([v.has_audio for v in videos], dtype=torch.bool)
        if self.config.audio_fusion == "none" or not has_audio.any():
            empty = torch.zeros(len(videos), 1, self.config.audio_dim)
            none = torch.zeros(len(videos), dtype=torch.bool)
            return dict(has_audio=none, audio_mask=none[:, None], audio_features=empty)
        if any(v.log_mel is not None for v in videos):
            return self._log_mel(videos, has_audio)
        return self._features(videos, has_audio)

    def _log_mel(self, videos: list[VideoInput], has_audio: torch.Tensor) -> dict[str, torch.Tensor | None]:
        if any(v.audio_features is not None for v in videos):
            raise ValueError("a batch takes log-mel or Whisper features, not a mix")
        shape = next(v.log_mel.shape for v in videos if v.log_mel is not None)
        mel = torch.zeros(len(videos), *shape)
        positions = shape[-1] // 2  # Whisper's stride-2 conv
        mask = torch.zeros(len(videos), positions, dtype=torch.bool)
        for i, v in enumerate(videos):
            if v.log_mel is not None:
                if v.log_mel.shape != shape:
                    raise ValueError(f"log-mel shapes differ: {v.log_mel.shape} vs {shape}")
                mel[i] = torch.from_numpy(np.asarray(v.log_mel, dtype=np.float32))
                mask[i] = audio_token_mask(v.duration_s, positions)
        return dict(has_audio=has_audio, audio_mask=mask, log_mel=mel)

    def _features(self, videos: list[VideoInput], has_audio: torch.Tensor) -> dict[str, torch.Tensor | None]:
        tokens = [np.atleast_2d(np.asarray(v.audio_features, dtype=np.float32)) for v in videos if v.has_audio]
        width = {t.shape[-1] for t in tokens}
        if width != {self.config.audio_dim}:
            raise ValueError(f"audio features are {sorted(width)}-d, model expects {self.config.audio_dim}")
        longest = max(len(t) for t in tokens)
        feats = torch.zeros(len(videos), longest, self.config.audio_dim)
        mask = torch.zeros(len(videos), longest, dtype=torch.bool)
        for i, v in enumerate(videos):
            if v.audio_features is not None:
                t = np.atleast_2d(np.asarray(v.audio_features, dtype=np.float32))
                feats[i, : len(t)] = torch.from_numpy(t)
                mask[i, : len(t)] = audio_token_mask(v.duration_s, len(t))  # same rule as log-mel
        return dict(has_audio=has_audio, audio_mask=mask, audio_features=feats)
