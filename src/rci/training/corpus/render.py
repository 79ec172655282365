"""Render one `VideoSpec` to an H.264/AAC mp4 with a single ffmpeg call.

`render_video` is the process-pool worker: a pure function of (spec, output directory, config), so
the corpus comes out byte-identical whatever the number of workers or the order they finish in.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rci.training.corpus.audio import SAMPLE_RATE, render_audio, write_wav
from rci.training.corpus.ffmpeg import DETERMINISM_ARGS, font_file, run_ffmpeg
from rci.training.corpus.sources import frames_for
from rci.training.corpus.specs import Derived, Fresh, VideoSpec
from rci.training.corpus.transforms import Frame, LowBitrate, Mute, NewAudio, PictureInPicture, SplitScreen


@dataclass(frozen=True)
class RenderConfig:
    """Encoding knobs. Small and fast by default: CPU demos and tests decode these at 1 fps anyway."""

    width: int = 256
    height: int = 256
    fps: int = 10
    crf: int = 28
    preset: str = "ultrafast"
    audio_kbps: int = 48


@dataclass(frozen=True)
class RenderedVideo:
    video_id: str
    path: str
    sha256: str
    size_bytes: int
    render_s: float  # wall time spent rendering (not part of the manifest: it varies run to run)


class _Graph:
    """An ffmpeg -filter_complex under construction: numbered inputs and labelled chains."""

    def __init__(self) -> None:
        self.inputs: list[list[str]] = []
        self.chains: list[str] = []

    def add_input(self, *args: str) -> int:
        self.inputs.append(list(args))
        return len(self.inputs) - 1

    def chain(self, sources: list[str], filters: list[str]) -> str:
        label = f"c{len(self.chains)}"
        self.chains.append("".join(f"[{s}]" for s in sources) + (",".join(filters) or "null") + f"[{label}]")
        return label


def _drawtext(frame: Frame, text: str, style: str) -> str:
    if style == "caption":  # the content of a caption template: big, centred
        size, y = max(12, frame.height // 11), "(h-text_h)/2"
    else:  # a sticker: smaller, lower third
        size, y = max(10, frame.height // 16), "h*0.72"
    wrap = max(8, int(frame.width * 0.9 / (0.62 * size)))  # DejaVu Sans Bold averages ~0.62 em per character
    return (f"drawtext=fontfile={frame.font}:textfile={frame.text_file(text, wrap)}:fontsize={size}"
            f":fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=6:line_spacing=4:x=(w-text_w)/2:y={y}")


def _scroll(frame: Frame, lines: tuple[str, ...], speed: int) -> str:
    text_file = frame.text_file("   *   ".join(lines), 10_000)
    return (f"drawtext=fontfile={frame.font}:textfile={text_file}:fontsize={max(12, frame.height // 10)}"
            f":fontcolor=white:borderw=2:bordercolor=black:x='w-mod(t*{speed},w+tw)':y=(h-text_h)/2")


def _gradients(seed: int, config: RenderConfig) -> str:
    """ffmpeg's moving-gradients source with every parameter pinned: its own `seed` alone is not
    reproducible (unset colours and end points are drawn from an unseeded generator)."""
    rng = np.random.default_rng(seed)
    colours = ":".join(f"c{i}=0x{int(rng.integers(2**24)):06x}" for i in range(3))
    x0, x1 = rng.integers(config.width, size=2)
    y0, y1 = rng.integers(config.height, size=2)
    return (f"gradients=s={config.width}x{config.height}:r={config.fps}:n=3:{colours}"
            f":x0={x0}:y0={y0}:x1={x1}:y1={y1}:speed=0.02")


def render_video(spec: VideoSpec, media_dir: str, config: RenderConfig) -> RenderedVideo:
    """Render `spec` to `<media_dir>/<video_id>.mp4` (a Derived spec's base must already be there)."""
    started = time.perf_counter()
    out = Path(media_dir) / f"{spec.video_id}.mp4"
    with tempfile.TemporaryDirectory(prefix="rci-corpus-") as tmp:
        workdir = Path(tmp)
        frame = Frame(config.width, config.height, config.fps, font_file(), workdir)
        graph = _Graph()
        frames = None
        pending_v: list[str] = []
        pending_a: list[str] = []
        if isinstance(spec.origin, Fresh):
            n_frames = round(spec.origin.duration_s * config.fps)
            frames = frames_for(spec.origin.visual, n_frames, config.width, config.height)
            video = f"{graph.add_input('-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', f'{config.width}x{config.height}', '-r', str(config.fps), '-i', 'pipe:0')}:v"
            audio = None
            if spec.origin.audio is not None:
                wav = workdir / "audio.wav"
                write_wav(wav, render_audio(spec.origin.audio, spec.origin.duration_s, workdir))
                audio = f"{graph.add_input('-i', str(wav))}:a"
            if spec.origin.visual.scroll_text:
                pending_v.append(_scroll(frame, spec.origin.visual.scroll_text, speed=config.width // 4))
            if spec.origin.burned_text:
                pending_v.append(_drawtext(frame, spec.origin.burned_text, spec.origin.burned_style))
        else:
            base = _base_path(spec.origin, media_dir)
            index = graph.add_input("-i", str(base))
            video = f"{index}:v"
            audio = f"{index}:a" if spec.origin.base_has_audio else None

        video_kbps = None
        for edit in spec.edits:
            if isinstance(edit, PictureInPicture):
                fg = graph.chain([video], [*pending_v, f"scale=trunc(iw*{edit.scale}/2)*2:-2"])
                bg_input = graph.add_input("-f", "lavfi", "-i", _gradients(edit.background_seed, config))
                video = graph.chain([f"{bg_input}:v", fg], [f"overlay=x=(W-w)*{edit.x}:y=(H-h)*{edit.y}:shortest=1"])
                pending_v = []
            elif isinstance(edit, SplitScreen):
                half = config.width // 2
                fg = graph.chain([video], [*pending_v, f"crop=iw*{edit.strip}:ih:(iw-iw*{edit.strip})*{edit.x}:0",
                                           f"scale={half}:{config.height}", "setsar=1"])
                bg_input = graph.add_input("-f", "lavfi", "-i", _gradients(edit.background_seed, config))
                video = graph.chain([f"{bg_input}:v", fg], [f"overlay=x={half if edit.right else 0}:y=0:shortest=1"])
                pending_v = []
            elif isinstance(edit, LowBitrate):
                video_kbps = edit.kbps
            elif isinstance(edit, Mute):
                audio, pending_a = None, []
            elif isinstance(edit, NewAudio):
                wav = workdir / f"new_audio{len(graph.inputs)}.wav"
                write_wav(wav, render_audio(edit.audio, spec.duration_s, workdir))
                audio, pending_a = f"{graph.add_input('-i', str(wav))}:a", []
            else:
                pending_v += edit.video_filters(frame)
                pending_a += edit.audio_filters()

        # Constant frame rate and size, and one second of held last frame / silence as slack: -t cuts exactly.
        video = graph.chain([video], [*pending_v, f"fps={config.fps}", f"scale={config.width}:{config.height}",
                                      "setsar=1", "format=yuv420p", "tpad=stop_mode=clone:stop_duration=1"])
        maps = ["-map", f"[{video}]"]
        if audio is not None:
            audio = graph.chain([audio], [*pending_a, f"aresample={SAMPLE_RATE}", "aformat=channel_layouts=mono",
                                          "apad"])
            maps += ["-map", f"[{audio}]", "-c:a", "aac", "-b:a", f"{config.audio_kbps}k", "-ar", str(SAMPLE_RATE),
                     "-ac", "1"]
        rate = (["-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps}k", "-bufsize", f"{2 * video_kbps}k"]
                if video_kbps else ["-crf", str(config.crf)])
        args = [arg for spec_input in graph.inputs for arg in spec_input]
        args += ["-filter_complex", ";".join(graph.chains), *maps, "-t", f"{spec.duration_s:.3f}",
                 "-c:v", "libx264", "-preset", config.preset, *rate, "-g", str(2 * config.fps),
                 *DETERMINISM_ARGS, str(out)]
        run_ffmpeg(args, what=spec.video_id, frames=frames)
    data = out.read_bytes()
    return RenderedVideo(spec.video_id, str(out), hashlib.sha256(data).hexdigest(), len(data),
                         round(time.perf_counter() - started, 3))


def _base_path(origin: Derived, media_dir: str) -> Path:
    return Path(media_dir) / f"{origin.base_id}.mp4"
