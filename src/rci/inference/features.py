"""The feature record every downstream stage consumes (DESIGN.md, "Features").

One `VideoFeatures` per video: produced once by the encoders, stored in the feature cache,
read by retrieval (its `video_embedding`), MatchLite and the shadow consumer.
Shapes use M = FeatureSpec.max_frames and L = FeatureSpec.text_tokens.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class FeatureSpec:
    """Widths and lengths of the features; MatchLite's config must agree with these."""

    visual_dim: int = 128  # per-frame embedding (Swin-T projected); all views side by side
    visual_views: int = 1  # views of each frame in visual_dim (2: centre square | whole frame, see frame_similarity)
    audio_dim: int = 768  # Whisper-small encoder, mean pooled
    text_dim: int = 384  # MiniLM token embeddings
    max_frames: int = 32  # M: frames at 1 fps, zero padded
    text_tokens: int = 64  # L: title + sticker text tokens

    def widths(self) -> dict[str, int]:
        """The widths MatchLiteConfig takes from the features (`MatchLiteConfig.small(**spec.widths())`)."""
        return {"visual_dim": self.visual_dim, "visual_views": self.visual_views, "audio_dim": self.audio_dim,
                "text_dim": self.text_dim}

    @property
    def view_dim(self) -> int:
        """Width of one view's descriptor: what retrieval indexes (each view of a frame is its own vector)."""
        return self.visual_dim // self.visual_views


@dataclass(frozen=True)
class VideoFeatures:
    video_id: str
    encoder_version: str
    visual: np.ndarray  # [M, visual_dim] float32, zero rows where visual_mask is False
    visual_mask: np.ndarray  # [M] bool, True for real frames
    audio: np.ndarray  # [audio_dim] float32, zeros when has_audio is False
    has_audio: bool
    text: np.ndarray  # [L, text_dim] float32, zero rows where text_mask is False
    text_mask: np.ndarray  # [L] bool
    duration_s: float
    # [T] uint32 Chromaprint sub-fingerprints, one every ~0.124 s (rci.media.fingerprint); empty without audio
    audio_fingerprint: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    # how many views of each frame `visual` holds side by side, each visual_dim / visual_views wide
    visual_views: int = 1

    @property
    def has_visual(self) -> bool:
        return bool(self.visual_mask.any())

    @property
    def has_text(self) -> bool:
        return bool(self.text_mask.any())

    @property
    def modalities(self) -> list[str]:
        """Which of visual/audio/text the video actually had (the `modalities` field of rci.scores)."""
        present = {"visual": self.has_visual, "audio": self.has_audio, "text": self.has_text}
        return [name for name, ok in present.items() if ok]

    def video_embedding(self) -> np.ndarray:
        """[visual_dim] L2-normalised mean of the real frames; zeros if there are none."""
        frames = self.visual[self.visual_mask]
        if len(frames) == 0:
            return np.zeros(self.visual.shape[1], dtype=np.float32)
        mean = frames.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return (mean / norm if norm > 0 else mean).astype(np.float32)

    def to_bytes(self) -> bytes:
        """Serialise to a compressed .npz blob (what the feature cache stores)."""
        buf = io.BytesIO()
        meta = np.array([self.video_id, self.encoder_version, repr(float(self.duration_s))])
        np.savez_compressed(
            buf,
            meta=meta,
            visual=self.visual.astype(np.float32),
            visual_mask=self.visual_mask.astype(bool),
            audio=self.audio.astype(np.float32),
            has_audio=np.array(self.has_audio),
            text=self.text.astype(np.float32),
            text_mask=self.text_mask.astype(bool),
            audio_fingerprint=np.asarray(self.audio_fingerprint, dtype=np.uint32),
            visual_views=np.array(self.visual_views),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> VideoFeatures:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            video_id, encoder_version, duration = (str(x) for x in z["meta"])
            return cls(
                video_id=video_id,
                encoder_version=encoder_version,
                visual=z["visual"],
                visual_mask=z["visual_mask"],
                audio=z["audio"],
                has_audio=bool(z["has_audio"]),
                text=z["text"],
                text_mask=z["text_mask"],
                duration_s=float(duration),
                audio_fingerprint=z["audio_fingerprint"] if "audio_fingerprint" in z.files else np.zeros(0, np.uint32),
                visual_views=int(z["visual_views"]) if "visual_views" in z.files else 1,
            )

    def spec_dict(self) -> dict[str, int]:
        return asdict(
            FeatureSpec(
                visual_dim=self.visual.shape[1],
                visual_views=self.visual_views,
                audio_dim=self.audio.shape[0],
                text_dim=self.text.shape[1],
                max_frames=self.visual.shape[0],
                text_tokens=self.text.shape[0],
            )
        )


def real_frame_similarity(query: VideoFeatures, candidate: VideoFeatures) -> np.ndarray:
    """[real query frames, real candidate frames] similarities (frame_similarity over the views)."""
    if query.visual_views != candidate.visual_views:
        raise ValueError(f"{query.video_id} has {query.visual_views} views per frame, {candidate.video_id} "
                         f"{candidate.visual_views}: features of different encoders")
    return frame_similarity(query.visual[query.visual_mask], candidate.visual[candidate.visual_mask], query.visual_views)


def frame_similarity(a: np.ndarray, b: np.ndarray, views: int = 1) -> np.ndarray:
    """[M, V*D] and [N, V*D] frames of V views each -> [M, N] cosine of every frame pair, the best over
    every pair of views (a's centre with b's whole frame, ...): a re-crop, a zoom or a picture-in-
    picture is alike its source in some pair of views even where the centre squares differ. Each view
    is normalised on its own; zero rows give 0."""
    a_views = _unit_views(a, views)  # V x [M, D]
    b_views = _unit_views(b, views)  # V x [N, D]
    return np.max([x @ y.T for x in a_views for y in b_views], axis=0)  # [M, N]


def split_views(frames: np.ndarray, views: int) -> list[np.ndarray]:
    """[M, V*D] frames holding V views side by side -> V x [M, D] float32; ValueError when they cannot."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or views < 1 or frames.shape[1] % views:
        raise ValueError(f"frames {frames.shape} do not hold {views} views side by side")
    return np.split(frames, views, axis=1)


def _unit_views(frames: np.ndarray, views: int) -> list[np.ndarray]:
    parts = split_views(frames, views)
    return [part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12) for part in parts]
