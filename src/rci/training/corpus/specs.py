"""What the planner hands the renderer: one frozen, picklable `VideoSpec` per video."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from typing import Literal

from rci.training.corpus.audio import AudioRecipe
from rci.training.corpus.sources import VisualRecipe
from rci.training.corpus.transforms import Mute, NewAudio, Transform


@dataclass(frozen=True)
class Fresh:
    """Drawn from recipes: pictures, soundtrack (or none) and a sticker burned into the frames (or none)."""

    visual: VisualRecipe
    audio: AudioRecipe | None
    burned_text: str | None
    duration_s: float
    burned_style: Literal["sticker", "caption"] = "sticker"  # lower-third sticker, or a centred caption


@dataclass(frozen=True)
class Derived:
    """Made by editing another video's encoded file, as a re-uploader would."""

    base_id: str
    base_has_audio: bool
    base_duration_s: float


@dataclass(frozen=True)
class VideoSpec:
    video_id: str
    source_id: str  # the source this video was made for: the unit of the train/val/test split
    role: str  # "source", "copy", "audio_pos", "audio_neg", "text_pos", "text_neg", "hn_audio", ...
    split: str
    title: str
    sticker_text: str | None
    creator_id: str
    published_at: datetime
    origin: Fresh | Derived
    edits: tuple[Transform, ...] = field(default_factory=tuple)
    style: str = ""  # visual style (generator family / photo category) for hard-negative checks

    @property
    def duration_s(self) -> float:
        start = self.origin.duration_s if isinstance(self.origin, Fresh) else self.origin.base_duration_s
        return round(reduce(lambda seconds, edit: edit.duration(seconds), self.edits, start), 3)

    @property
    def has_audio(self) -> bool:
        audio = self.origin.audio is not None if isinstance(self.origin, Fresh) else self.origin.base_has_audio
        for edit in self.edits:
            if isinstance(edit, Mute):
                audio = False
            elif isinstance(edit, NewAudio):
                audio = True
        return audio

    @property
    def depends_on(self) -> str | None:
        return self.origin.base_id if isinstance(self.origin, Derived) else None
