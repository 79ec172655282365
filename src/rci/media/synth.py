"""Synthetic media for tests, benchmarks and the demo: real, decodable files written with PyAV.

`write_test_video` writes an MP4 whose content is a pure function of its arguments, so two calls with
the same `seed` give the same pictures and sound (a stand-in for "the same video re-uploaded"), and
different seeds give clearly different content. Every second shows a different picture (a seeded grid
of coloured blocks that shifts once per second), so 1 fps sampling sees distinct frames.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 44_100  # deliberately not 16 kHz, so decoding has to resample
_BLOCKS = 8  # the picture is a _BLOCKS x _BLOCKS grid of coloured blocks


def write_test_video(
    path: Path,
    duration_s: float = 3.0,
    width: int = 64,
    height: int = 48,
    fps: int = 10,
    with_audio: bool = True,
    with_video: bool = True,
    tone_hz: float = 440.0,
    seed: int = 0,
    faststart: bool = False,
) -> Path:
    """Write an H.264 + AAC (stereo, 44.1 kHz) MP4 of `duration_s` seconds to `path` and return it.

    width/height must be even (H.264 4:2:0). `faststart` moves the index (moov) to the front, as
    web uploads usually are; without it the index is at the end, so a truncated file loses it.
    """
    if not (with_video or with_audio):
        raise ValueError("a test video needs a video track, an audio track or both")
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    path = Path(path)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        # Every stream must exist before the first packet is muxed (the header is written then).
        video = _add_video_stream(container, width, height, fps) if with_video else None
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if with_audio else None
        if video is not None:
            _write_video(container, video, duration_s, fps, seed)
        if audio is not None:
            _write_audio(container, audio, duration_s, tone_hz)
    return path


def synthetic_picture(second: int, width: int, height: int, seed: int) -> np.ndarray:
    """[height, width, 3] uint8 RGB: the picture shown during whole second `second`."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(_BLOCKS, _BLOCKS, 3), dtype=np.uint8)
    grid = np.roll(palette, shift=second, axis=1)  # shift one block column per second
    rows = np.arange(height) * _BLOCKS // height
    cols = np.arange(width) * _BLOCKS // width
    return grid[rows[:, None], cols[None, :]]


def _add_video_stream(container: av.container.OutputContainer, width: int, height: int, fps: int) -> av.VideoStream:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # Fixed, single-threaded encoder settings: the same arguments give the same bytes.
    stream.codec_context.options = {"preset": "ultrafast", "threads": "1"}
    return stream


def _write_video(
    container: av.container.OutputContainer, stream: av.VideoStream, duration_s: float, fps: int, seed: int
) -> None:
    width, height = stream.width, stream.height
    for index in range(max(1, round(duration_s * fps))):
        picture = synthetic_picture(index // fps, width, height, seed)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _write_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, duration_s: float, tone_hz: float
) -> None:
    total = int(round(duration_s * AUDIO_RATE))
    t = np.arange(total) / AUDIO_RATE
    tone = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    chunk = 1024
    for start in range(0, total, chunk):
        piece = tone[start : start + chunk]
        planar = np.stack([piece, piece])  # [2, n] fltp: one plane per channel
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
