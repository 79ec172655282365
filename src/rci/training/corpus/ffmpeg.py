"""Running ffmpeg and espeak-ng: one place for process plumbing, error reporting and determinism flags."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rci.training.corpus.errors import CorpusError, RenderError

# Bit-exact output for a given ffmpeg build: no encoder/version tags, no creation time, one thread
# (x264's output depends on its thread count, which would otherwise follow the machine's cores).
DETERMINISM_ARGS = (
    "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
    "-threads", "1", "-filter_threads", "1", "-filter_complex_threads", "1",
)
_STDERR_TAIL = 1500


def require_tools() -> None:
    """Fail early, with the package to install, when a tool the generator shells out to is missing."""
    for tool, package in (("ffmpeg", "ffmpeg"), ("espeak-ng", "espeak-ng"), ("fc-match", "fontconfig")):
        if shutil.which(tool) is None:
            raise CorpusError(f"{tool} not found on PATH; install the Debian package {package}")


@functools.cache
def font_file(spec: str = "DejaVu Sans:bold") -> str:
    """Path of a TrueType font for drawtext (fontconfig's best match)."""
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}", spec], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CorpusError(f"fc-match could not resolve a font for {spec!r}") from exc
    if not out.stdout or not Path(out.stdout).is_file():
        raise CorpusError(f"no font file for {spec!r}; install fonts-dejavu-core")
    return out.stdout


@functools.cache
def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def run_ffmpeg(args: list[str], what: str, frames: Iterable[np.ndarray] | None = None) -> None:
    """Run `ffmpeg <args>`, optionally feeding raw frames on stdin; RenderError with stderr on failure."""
    stdin_flag = [] if frames is not None else ["-nostdin"]
    cmd = ["ffmpeg", "-hide_banner", *stdin_flag, "-loglevel", "error", "-y", *args]
    # stderr goes to a file, not a pipe, so a chatty ffmpeg can never block while we write its stdin.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE if frames is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=err,
        )
        try:
            if frames is not None:
                assert proc.stdin is not None
                try:
                    for frame in frames:
                        proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
                finally:
                    proc.stdin.close()
            code = proc.wait()
        except BrokenPipeError:
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if code != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace")[-_STDERR_TAIL:]
            raise RenderError(f"ffmpeg failed ({what}, exit {code}): {tail.strip()}")


def decode_image(path: str, width: int, height: int) -> np.ndarray:
    """Decode an image scaled and centre-cropped to cover width x height -> [height, width, 3] uint8 RGB."""
    vf = f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=area,crop={width}:{height}"
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path, "-frames:v", "1",
           "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    out = subprocess.run(cmd, capture_output=True, check=False)
    expected = width * height * 3
    if out.returncode != 0 or len(out.stdout) != expected:
        raise RenderError(f"cannot decode image {path}: {out.stderr.decode('utf-8', 'replace')[-_STDERR_TAIL:]}")
    return np.frombuffer(out.stdout, dtype=np.uint8).reshape(height, width, 3)


def espeak(text: str, voice: str, words_per_minute: int, pitch: int, wav_path: Path) -> None:
    """Speak `text` into a 22.05 kHz mono 16-bit WAV file."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-p", str(pitch), "-w", str(wav_path), text]
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0 or not wav_path.is_file():
        raise RenderError(f"espeak-ng failed (voice {voice}): {out.stderr.decode('utf-8', 'replace')[-_STDERR_TAIL:]}")
