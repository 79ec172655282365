"""Odd media files for the decode tests, built for real in tmp dirs (PyAV, or the ffmpeg CLI).

Ordinary clips come from `rci.media.synth.write_test_video`; this module makes the awkward ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

GREY_STEP = 50  # frame i of write_timed_frames is flat grey GREY_STEP * i


def write_timed_frames(path: Path, times_s: list[float], size: int = 32) -> Path:
    """H.264 MP4 with one flat grey frame per timestamp (variable frame rate): frame i = GREY_STEP * i."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1000)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "threads": "1"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), GREY_STEP * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_trackless_mp4(path: Path) -> Path:
    """A well-formed MP4 with no tracks: a video stream was declared but never got a frame."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        container.start_encoding()  # writes the header; no packet ever follows
    return path


def write_hls_playlist(path: Path, target: Path) -> Path:
    """An HLS playlist naming another local file: FFmpeg would open it if the demuxer were allowed."""
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{target}\n#EXT-X-ENDLIST\n")
    return path


def ffmpeg_cli() -> str:
    """Path of the ffmpeg binary; skips the test when it is not installed (scripts/bootstrap.sh installs it)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.skip("ffmpeg CLI not installed")
    return exe


def remux_as_streamed_mkv(source: Path, path: Path) -> Path:
    """Remux to Matroska through a pipe: a non-seekable output, so no duration is written in the header."""
    with open(path, "wb") as out:
        subprocess.run(
            [ffmpeg_cli(), "-loglevel", "error", "-i", str(source), "-c", "copy", "-f", "matroska", "pipe:1"],
            stdout=out,
            check=True,
        )
    return path


def write_subtitle_only_mkv(path: Path) -> Path:
    """A Matroska file whose only track is subtitles."""
    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    subprocess.run([ffmpeg_cli(), "-loglevel", "error", "-y", "-i", str(srt), str(path)], check=True)
    return path


@contextmanager
def scheduling_kept() -> Iterator[None]:
    """Give the calling thread back its scheduling policy when the block ends.

    Why: run as root, the SVT-AV1 encoder (libsvtav1) switches the thread that opens it to SCHED_FIFO 99
    and leaves it so. Every process the test session starts afterwards (brokers, servers, `rci worker`
    children) would inherit real-time priority, and one busy child then starves the Kafka broker, whose
    heartbeats fail, and the suite stalls (tests/conftest.py's guard names any test that does this)."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


def write_codec_clip(path: Path, container_format: str, video_codec: str | None, audio_codec: str | None) -> Path:
    """One second of 64x64 video at 4 fps and/or a 440 Hz tone, in the given container and encoders
    (PyAV encoder names: libvpx-vp9, libopus, libmp3lame, ...); skips when this FFmpeg lacks one."""
    for codec in filter(None, (video_codec, audio_codec)):
        try:
            av.Codec(codec, "w")
        except (av.FFmpegError, ValueError):
            pytest.skip(f"no {codec} encoder in this FFmpeg build")
    with scheduling_kept(), av.open(str(path), mode="w", format=container_format) as container:
        video = audio = None
        if video_codec is not None:
            video = container.add_stream(video_codec, rate=4)
            video.width = video.height = 64
            video.pix_fmt = "yuv420p"
            video.codec_context.options = {"threads": "1", "x265-params": "log-level=none"}
        if audio_codec is not None:
            audio = container.add_stream(audio_codec, rate=48_000)
            audio.codec_context.options = {"strict": "-2"}  # FFmpeg's own vorbis encoder is experimental
            audio.layout = "stereo"  # which only encodes stereo
        if video is not None:
            for i in range(4):
                frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, 4)
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
        if audio is not None:
            rate, fmt = audio.codec_context.sample_rate, audio.codec_context.format
            samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([samples, samples]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
            resampler = av.AudioResampler(format=fmt.name, layout="stereo", rate=rate)
            size = audio.codec_context.frame_size or 1024
            fifo = av.AudioFifo()
            for resampled in resampler.resample(frame):
                fifo.write(resampled)
            while (chunk := fifo.read(size)) is not None:
                container.mux(audio.encode(chunk))
            if (tail := fifo.read()) is not None:
                container.mux(audio.encode(tail))
            container.mux(audio.encode(None))
    return path
