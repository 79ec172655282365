"""Edits that turn one video into another: the ways people reproduce content, and the ways they don't.

A `Transform` is an edit applied while rendering (ffmpeg filters on the picture and/or the sound).
A pair's `transforms` list, in the manifest, is the query's edits plus *relation markers*: names
that say which content the query does not share with the candidate because it was made
independently (`new_visuals`, `new_audio`, `new_title`, `new_sticker`). The auxiliary labels follow
from that list alone (`content_matches`), and the main label from the subset's policy.

Sampling edits is here too (`sample_copy_edits`, `sample_light_edit`), so what counts as a "light"
edit is defined in one place and shared by the positive and negative sides of the dependent subsets:
a model cannot tell them apart by the edit, only by the modality the subset is about.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from abc import ABC
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from rci.training.corpus.audio import AudioRecipe


@dataclass(frozen=True)
class Frame:
    """What filters need to know about the picture they edit."""

    width: int
    height: int
    fps: int
    font: str
    workdir: Path  # where text files for drawtext go

    def text_file(self, text: str, width_chars: int) -> str:
        """Write wrapped text to a file for drawtext's textfile= (no filtergraph escaping needed)."""
        handle, path = tempfile.mkstemp(suffix=".txt", dir=self.workdir)
        with os.fdopen(handle, "w") as out:
            out.write("\n".join(textwrap.wrap(text, width_chars)) or " ")
        return path


class Transform(ABC):
    """One edit. Subclasses are frozen dataclasses; their fields are the edit's parameters."""

    name: ClassVar[str]

    def video_filters(self, frame: Frame) -> list[str]:
        return []

    def audio_filters(self) -> list[str]:
        return []

    def duration(self, seconds: float) -> float:
        """Length of the output given the input's length."""
        return seconds

    def to_dict(self) -> dict:
        return {"op": self.name, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class Trim(Transform):
    start: float
    length: float
    name: ClassVar[str] = "trim"

    def video_filters(self, frame: Frame) -> list[str]:
        return [f"trim=start={self.start:.3f}:duration={self.length:.3f}", "setpts=PTS-STARTPTS"]

    def audio_filters(self) -> list[str]:
        return [f"atrim=start={self.start:.3f}:duration={self.length:.3f}", "asetpts=PTS-STARTPTS"]

    def duration(self, seconds: float) -> float:
        return min(self.length, seconds - self.start)


@dataclass(frozen=True)
class Crop(Transform):
    """Keep a sub-rectangle (fractions of the frame) and scale it back to full size."""

    x: float
    y: float
    w: float
    h: float
    name: ClassVar[str] = "crop"

    def video_filters(self, frame: Frame) -> list[str]:
        return [f"crop=iw*{self.w:.3f}:ih*{self.h:.3f}:iw*{self.x:.3f}:ih*{self.y:.3f}",
                f"scale={frame.width}:{frame.height}", "setsar=1"]


@dataclass(frozen=True)
class HFlip(Transform):
    name: ClassVar[str] = "hflip"

    def video_filters(self, frame: Frame) -> list[str]:
        return ["hflip"]


@dataclass(frozen=True)
class Colour(Transform):
    brightness: float
    contrast: float
    saturation: float
    hue_deg: float
    name: ClassVar[str] = "colour"

    def video_filters(self, frame: Frame) -> list[str]:
        return [f"eq=brightness={self.brightness:.3f}:contrast={self.contrast:.3f}:saturation={self.saturation:.3f}",
                f"hue=h={self.hue_deg:.1f}"]


@dataclass(frozen=True)
class Speed(Transform):
    factor: float  # > 1 plays faster (shorter output)
    name: ClassVar[str] = "speed"

    def video_filters(self, frame: Frame) -> list[str]:
        return [f"setpts=PTS/{self.factor:.4f}"]

    def audio_filters(self) -> list[str]:
        return [f"atempo={self.factor:.4f}"]

    def duration(self, seconds: float) -> float:
        return seconds / self.factor


@dataclass(frozen=True)
class TextOverlay(Transform):
    """A re-uploader's banner ("follow for more") across the top or bottom."""

    text: str
    top: bool
    name: ClassVar[str] = "text_overlay"

    def video_filters(self, frame: Frame) -> list[str]:
        size = max(10, frame.height // 18)
        y = "h*0.04" if self.top else "h*0.96-text_h"
        return [f"drawtext=fontfile={frame.font}:textfile={frame.text_file(self.text, 28)}:fontsize={size}"
                f":fontcolor=yellow:box=1:boxcolor=black@0.6:boxborderw=4:x=(w-text_w)/2:y={y}"]


@dataclass(frozen=True)
class LogoBox(Transform):
    """A channel watermark: a filled box with a handle in one corner."""

    handle: str
    corner: int  # 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
    colour: str
    name: ClassVar[str] = "logo"

    def video_filters(self, frame: Frame) -> list[str]:
        bw, bh = frame.width // 3, frame.height // 9
        x = 4 if self.corner in (0, 2) else frame.width - bw - 4
        y = 4 if self.corner in (0, 1) else frame.height - bh - 4
        size = max(8, bh // 2)
        return [f"drawbox=x={x}:y={y}:w={bw}:h={bh}:color={self.colour}@0.85:t=fill",
                f"drawtext=fontfile={frame.font}:textfile={frame.text_file(self.handle, 40)}:fontsize={size}"
                f":fontcolor=white:x={x}+({bw}-text_w)/2:y={y}+({bh}-text_h)/2"]


@dataclass(frozen=True)
class LowBitrate(Transform):
    """Re-encode at a starved bitrate: blocking and smearing, as after several re-uploads."""

    kbps: int
    name: ClassVar[str] = "low_bitrate"


@dataclass(frozen=True)
class PictureInPicture(Transform):
    """The video shrunk into a box over an unrelated moving background (rendered by ffmpeg's gradients)."""

    scale: float
    x: float  # box position as a fraction of the free space
    y: float
    background_seed: int
    name: ClassVar[str] = "pip"


@dataclass(frozen=True)
class SplitScreen(Transform):
    """A duet: a vertical strip of the video on one half of the frame, unrelated motion on the other."""

    strip: float  # width of the strip kept from the video, as a fraction of its width
    x: float  # where the strip is taken from, as a fraction of the free width
    right: bool  # the video's half: right (True) or left
    background_seed: int
    name: ClassVar[str] = "split_screen"


@dataclass(frozen=True)
class Mute(Transform):
    name: ClassVar[str] = "mute"


@dataclass(frozen=True)
class NewAudio(Transform):
    """Replace the soundtrack (re-scoring a copy, or re-voicing a template)."""

    audio: AudioRecipe
    name: ClassVar[str] = "new_audio"

    def to_dict(self) -> dict:
        return {"op": self.name, "kind": self.audio.kind, "seed": self.audio.seed, "voice": self.audio.voice}


# Relation markers: content the query does not share with the candidate because it was made apart.
RELATION_MARKERS = {"new_visuals": "visual", "new_audio": "audio", "new_title": "text", "new_sticker": "text"}


def content_matches(transforms: list[dict], query_has_audio: bool, candidate_has_audio: bool) -> dict[str, int | None]:
    """Auxiliary labels from a pair's transform list: 1 shared content, 0 not, None not applicable."""
    replaced = {RELATION_MARKERS[t["op"]] for t in transforms if t["op"] in RELATION_MARKERS}
    audio: int | None = None
    if query_has_audio and candidate_has_audio:
        audio = int("audio" not in replaced)
    return {"visual_match": int("visual" not in replaced), "audio_match": audio,
            "text_match": int("text" not in replaced)}


# ------------------------------------------------------------------------------------------ sampling

_BANNERS = ("follow for more", "link in bio", "credit to the owner", "full video on my page", "like and share",
            "repost", "wait till the end", "subscribe")
_LOGO_COLOURS = ("red", "blue", "black", "purple", "green", "orange")


def _handle(rng: np.random.Generator) -> str:
    return f"@clips{int(rng.integers(100, 999))}"


def _trim(rng: np.random.Generator, seconds: float) -> Trim | None:
    if seconds < 3.0:
        return None
    length = float(np.round(rng.uniform(max(2.0, 0.5 * seconds), seconds - 0.5), 2))
    return Trim(start=float(np.round(rng.uniform(0, seconds - length), 2)), length=length)


def _crop(rng: np.random.Generator, keep: tuple[float, float]) -> Crop:
    w, h = (float(np.round(v, 3)) for v in rng.uniform(*keep, size=2))
    return Crop(x=float(np.round(rng.uniform(0, 1 - w), 3)), y=float(np.round(rng.uniform(0, 1 - h), 3)), w=w, h=h)


def _colour(rng: np.random.Generator, strength: float) -> Colour:
    return Colour(brightness=float(np.round(rng.uniform(-0.12, 0.12) * strength, 3)),
                  contrast=float(np.round(1 + rng.uniform(-0.3, 0.3) * strength, 3)),
                  saturation=float(np.round(1 + rng.uniform(-0.6, 0.6) * strength, 3)),
                  hue_deg=float(np.round(rng.uniform(-40, 40) * strength, 1)))


def _logo(rng: np.random.Generator) -> LogoBox:
    return LogoBox(handle=_handle(rng), corner=int(rng.integers(4)),
                   colour=_LOGO_COLOURS[int(rng.integers(len(_LOGO_COLOURS)))])


# Canonical order: time edits, then geometry, then colour, then compositing, then overlays, then encoding.
_COPY_EDITS = ("trim", "speed", "crop", "hflip", "colour", "pip", "text_overlay", "logo", "low_bitrate")
# The hard ones, each the only geometric edit of its copy: a 9:16 re-crop stretched back to the frame,
# a heavy zoom, a duet, a small picture-in-picture over motion. Speed's range covers 0.75-1.5x.
_HARD_EDITS = ("vertical_recrop", "zoom", "split_screen", "small_pip")
HARD_EDIT_SHARE = 0.35


def sample_hard_edit(rng: np.random.Generator) -> Transform:
    """One of the edits that defeat a whole-frame comparison."""
    name = _HARD_EDITS[int(rng.integers(len(_HARD_EDITS)))]
    if name == "vertical_recrop":
        return Crop(x=float(np.round(rng.uniform(0.1, 0.34), 3)), y=0.0, w=0.5625, h=1.0)
    if name == "zoom":
        return _crop(rng, (0.4, 0.6))
    if name == "split_screen":
        return SplitScreen(strip=float(np.round(rng.uniform(0.5, 0.7), 2)), x=float(np.round(rng.random(), 2)),
                           right=bool(rng.random() < 0.5), background_seed=int(rng.integers(2**31)))
    return PictureInPicture(scale=float(np.round(rng.uniform(0.3, 0.45), 2)), x=float(np.round(rng.random(), 2)),
                            y=float(np.round(rng.random(), 2)), background_seed=int(rng.integers(2**31)))


def sample_copy_edits(rng: np.random.Generator, seconds: float) -> list[Transform]:
    """One to three reproduction edits (a visual copy of the source), in canonical order; about a
    third of copies get one hard edit (HARD_EDIT_SHARE) plus up to two plain non-geometric ones."""
    if rng.random() < HARD_EDIT_SHARE:
        hard = sample_hard_edit(rng)
        plain = [e for e in sample_copy_edits(rng, seconds) if not isinstance(e, Crop | PictureInPicture | HFlip)]
        return [*[e for e in plain if isinstance(e, Trim | Speed)], hard,
                *[e for e in plain if not isinstance(e, Trim | Speed)]][:3]
    names = set(rng.choice(_COPY_EDITS, size=int(rng.integers(1, 4)), replace=False).tolist())
    edits: list[Transform] = []
    for name in _COPY_EDITS:
        if name not in names:
            continue
        if name == "trim" and (trim := _trim(rng, seconds)) is not None:
            edits.append(trim)
        elif name == "speed":
            edits.append(Speed(factor=float(np.round(rng.choice([rng.uniform(0.75, 0.95), rng.uniform(1.05, 1.5)]), 3))))
        elif name == "crop":
            edits.append(_crop(rng, (0.6, 0.9)))
        elif name == "hflip":
            edits.append(HFlip())
        elif name == "colour":
            edits.append(_colour(rng, 1.0))
        elif name == "pip":
            edits.append(PictureInPicture(scale=float(np.round(rng.uniform(0.5, 0.75), 2)),
                                          x=float(np.round(rng.random(), 2)), y=float(np.round(rng.random(), 2)),
                                          background_seed=int(rng.integers(2**31))))
        elif name == "text_overlay":
            edits.append(TextOverlay(text=_BANNERS[int(rng.integers(len(_BANNERS)))], top=bool(rng.random() < 0.5)))
        elif name == "logo":
            edits.append(_logo(rng))
        elif name == "low_bitrate":
            edits.append(LowBitrate(kbps=int(rng.integers(30, 90))))
    return edits


def sample_light_edit(rng: np.random.Generator) -> Transform:
    """One mild edit, used on both sides of the audio- and text-dependent subsets."""
    choice = int(rng.integers(4))
    if choice == 0:
        return _crop(rng, (0.85, 0.97))
    if choice == 1:
        return _colour(rng, 0.4)
    if choice == 2:
        return LowBitrate(kbps=int(rng.integers(80, 160)))
    return _logo(rng)
