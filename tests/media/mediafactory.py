"""Odd media files for the decode tests, built for real in tmp dirs (PyAV, or the ffmpeg CLI).

Ordinary clips come from `rci.media.synth.write_test_video`; this module makes the awkward ones.
"""

from __future__ import annotations

import shutil
import subprocess
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
