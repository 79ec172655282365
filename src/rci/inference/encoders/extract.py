"""DecodedMedia (+ text) -> VideoFeatures, running the three frozen encoders in batches.

`encode_videos` is the batched path the worker uses: the real frames of every video in the batch
go through the visual encoder together, likewise every clip's log-mel and every text, and the
results are split back per video. Frames that are padding (frame_mask False) are never encoded;
their rows stay zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rci.inference.encoders.base import EncoderInputError, VisualEncoder
from rci.inference.encoders.bundle import EncoderBundle
from rci.inference.features import FeatureSpec, VideoFeatures
from rci.media.decoded import SAMPLE_RATE, DecodedMedia
from rci.media.fingerprint import fingerprint


@dataclass(frozen=True)
class EncoderInput:
    """One decoded video as the frozen encoders take it (MatchLM's own input is
    `rci.inference.matchlm.processor.VideoInput`: frames, title and sticker text, Whisper audio)."""

    video_id: str
    media: DecodedMedia
    text: str = ""  # title + sticker text, composed as PublishedEvent.text does


class FeatureExtractor:
    def __init__(self, encoders: EncoderBundle):
        self.encoders = encoders

    @property
    def version(self) -> str:
        return self.encoders.version

    def feature_spec(self, max_frames: int) -> FeatureSpec:
        return self.encoders.feature_spec(max_frames)

    def encode_video(self, video_id: str, media: DecodedMedia, text: str = "") -> VideoFeatures:
        return self.encode_videos([EncoderInput(video_id, media, text)])[0]

    def encode_videos(self, items: Sequence[EncoderInput]) -> list[VideoFeatures]:
        for item in items:
            _check_media(item)
        visual = self._visual(items)
        audio, has_audio = self._audio(items)
        text, text_mask = self.encoders.text.encode_texts([item.text for item in items])
        return [
            VideoFeatures(
                video_id=item.video_id,
                encoder_version=self.version,
                visual=visual[i],
                visual_mask=item.media.frame_mask.astype(bool),
                audio=audio[i],
                has_audio=has_audio[i],
                text=text[i],
                text_mask=text_mask[i],
                duration_s=float(item.media.duration_s),
                audio_fingerprint=_fingerprint(item.media),
                visual_views=self.encoders.visual.views,
            )
            for i, item in enumerate(items)
        ]

    def _visual(self, items: Sequence[EncoderInput]) -> list[np.ndarray]:
        """-> [M, output_dim] per video: each view's descriptors side by side, zero rows for padding."""
        encoder = self.encoders.visual
        masks = [item.media.frame_mask.astype(bool) for item in items]
        squares = [item.media.frames[mask] for item, mask in zip(items, masks, strict=True)]
        views = [_encode_batched(encoder.encode_frames, squares)]
        if encoder.views == 2:
            views.append(_encode_wholes(encoder, items, masks))
        out = []
        for mask, parts in zip(masks, zip(*views, strict=True), strict=True):
            rows = np.zeros((len(mask), encoder.output_dim), dtype=np.float32)
            rows[mask] = np.concatenate(parts, axis=1)
            out.append(rows)
        return out

    def _audio(self, items: Sequence[EncoderInput]) -> tuple[np.ndarray, list[bool]]:
        has_audio = [item.media.log_mel is not None for item in items]
        out = np.zeros((len(items), self.encoders.audio.output_dim), dtype=np.float32)
        with_audio = [i for i, ok in enumerate(has_audio) if ok]
        if with_audio:
            out[with_audio] = self.encoders.audio.encode_log_mel(np.stack([items[i].media.log_mel for i in with_audio]))
        return out, has_audio


def _encode_batched(encode: Callable[[np.ndarray], np.ndarray], frames: list[np.ndarray]) -> list[np.ndarray]:
    """One encoder pass over the frames of all videos (one shape), split back per video."""
    if not frames:
        return []
    flat = encode(np.concatenate(frames))
    return np.split(flat, np.cumsum([len(f) for f in frames])[:-1])


def _encode_wholes(encoder: VisualEncoder, items: Sequence[EncoderInput], masks: list[np.ndarray]) -> list[np.ndarray]:
    """The whole frames' descriptors per video; one encoder pass per whole-frame size in the batch."""
    out = [np.zeros((0, encoder.output_dim // encoder.views), np.float32) for _ in items]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, (item, mask) in enumerate(zip(items, masks, strict=True)):
        if mask.any():
            if item.media.wholes is None:
                raise EncoderInputError(f"{item.video_id}: the visual encoder needs whole frames, the media has none")
            by_shape.setdefault(item.media.wholes.shape[1:], []).append(i)
    for indices in by_shape.values():
        encoded = _encode_batched(encoder.encode_wholes, [items[i].media.wholes[masks[i]] for i in indices])
        for i, rows in zip(indices, encoded, strict=True):
            out[i] = rows
    return out


def _check_media(item: EncoderInput) -> None:
    frames, mask = item.media.frames, item.media.frame_mask
    if frames.ndim != 4 or frames.shape[0] != mask.shape[0]:
        raise EncoderInputError(
            f"{item.video_id}: frames {frames.shape} and frame_mask {mask.shape} do not describe [M, H, W, 3] + [M]"
        )


def _fingerprint(media: DecodedMedia) -> np.ndarray:
    """Chromaprint sub-fingerprints of the decoded audio (the first 30 s); empty without an audio track."""
    if media.audio is None:
        return np.zeros(0, np.uint32)
    return fingerprint(media.audio, SAMPLE_RATE)
