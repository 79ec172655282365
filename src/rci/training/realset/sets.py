"""A real-media set: originals made from one pool (rci.training.realset.pools), then later uploads with a
fixed mix.

    dataset = build_set(work_dir, "default", seed=0, jobs=2)    # the benchmark's (BENCH pools), cached
    dataset = build_set(None, "validation", pools=VALIDATION)  # the threshold's: other photos, music, voices

Originals (`library` first, then the `unrelated` and `template` queries, which are originals too):
one or two held-out photos with Ken Burns motion (a cut between them), portrait 288x512 or landscape
512x288 (720x1280 scaled down for the CPU), 12 fps, H.264 + AAC; a soundtrack that is a segment
of one of the pool's music pieces, or espeak-ng speech in its languages (sometimes over a quiet music bed); a
title and a sticker text on the event, the sticker also drawn on the picture.

Later uploads, each published after everything it derives from, in a seeded shuffled order:
* easy copies (positive): two or three of h-flip + colour change, a watermark logo, a frame-rate
  change, a low-quality re-encode, a small crop, a trim;
* hard copies (positive), one each in turn: a vertical 9:16 re-crop of a landscape original, a
  split-screen duet beside an unrelated video, a small picture-in-picture over unrelated motion
  (with a new voice over the quieter original sound), a heavy zoom, 1.5x speed;
* unrelated originals (negative): new pictures, new sound, new text;
* templates (negative, NOT reproductions): an original's exact sound, title and sticker over new
  pictures (of the same kind when the pool has them).
Photos are never shared between two originals; the duet and picture-in-picture backgrounds come
from photos no original uses.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from rci.training.realset.pools import (BENCH, VARIANTS, MusicTrack, PoolPhoto, PoolSpec, check_heldout_media,
                                        default_pool_dir, language_of, music_pool, photo_pool, pick, speech_text,
                                        title_text)  # fmt: skip
from rci.core import rfc3339
from rci.training.corpus.ffmpeg import DETERMINISM_ARGS, espeak, font_file, run_ffmpeg
from rci.training.corpus.sources import VisualRecipe, frames_for
from rci.training.corpus.transforms import Colour, Crop, Frame, HFlip, LogoBox, Speed, Transform, Trim

SET_VERSION = 1
FPS = 12
PORTRAIT = (288, 512)
LANDSCAPE = (512, 288)
AUDIO_RATE = 44_100
EPOCH = datetime(2026, 12, 1, tzinfo=UTC)  # published_at of the first original; one minute per video after
KINDS = ("library", "easy", "hard", "unrelated", "template")
QUERY_KINDS = ("easy", "hard", "unrelated", "template")
HARD_EDITS = ("vertical_recrop", "duet", "pip", "zoom", "speed")
EASY_EDITS = ("flip_colour", "logo", "fps", "low_quality", "crop", "trim")


@dataclass(frozen=True)
class SetSize:
    library: int  # originals published before any query
    easy: int
    hard: int
    unrelated: int
    template: int
    min_s: float
    max_s: float

    @property
    def queries(self) -> int:
        return self.easy + self.hard + self.unrelated + self.template


# ~30% easy, ~25% hard, ~20% unrelated, ~25% templates among the queries.
SIZES = {
    "small": SetSize(library=6, easy=4, hard=5, unrelated=3, template=4, min_s=6.0, max_s=8.0),
    "default": SetSize(library=40, easy=24, hard=20, unrelated=16, template=20, min_s=6.0, max_s=20.0),
    "large": SetSize(library=48, easy=33, hard=28, unrelated=22, template=27, min_s=6.0, max_s=20.0),
    # the validation pool's (rci.training.realpairs): threshold and calibration pairs for each trained model
    "validation": SetSize(library=18, easy=11, hard=10, unrelated=8, template=10, min_s=6.0, max_s=14.0),
    # the training pool's (rci.training.realpairs.realmedia_training): several seeds, each this size
    "training": SetSize(library=18, easy=11, hard=20, unrelated=8, template=10, min_s=6.0, max_s=14.0),
}


# ------------------------------------------------------------------------------------------ specs


@dataclass(frozen=True)
class Sound:
    """A soundtrack: a music segment, or speech (optionally over a quiet music bed)."""

    kind: str  # "music" or "speech"
    track: str = ""  # music: the piece, from offset_s on
    offset_s: float = 0.0
    voice: str = ""  # speech: espeak-ng voice (+variant), words per minute, pitch, text
    wpm: int = 160
    pitch: int = 50
    text: str = ""
    bed_track: str = ""  # speech only: a quiet music bed, from bed_offset_s on
    bed_offset_s: float = 0.0


@dataclass(frozen=True)
class Video:
    """One video of the set and its place in it."""

    video_id: str
    kind: str  # one of KINDS
    published_at: str
    title: str
    sticker: str
    width: int
    height: int
    duration_s: float
    source_id: str | None = None  # copies: the original reproduced; templates: the original borrowed from
    photos: tuple[str, ...] = ()  # originals: the pictures, in order (a cut between them)
    sound: Sound | None = None  # originals
    seed: int = 0
    edits: tuple[dict, ...] = ()  # copies: what was done to the source
    background: str = ""  # duet / picture-in-picture: the unrelated picture
    path: str = ""

    @property
    def is_original(self) -> bool:
        return self.kind in ("library", "unrelated", "template")

    @property
    def is_reproduction(self) -> bool:
        return self.kind in ("easy", "hard")


@dataclass
class HeldoutSet:
    root: Path
    size: str
    seed: int
    videos: list[Video]
    info: dict = field(default_factory=dict)

    @property
    def by_id(self) -> dict[str, Video]:
        return {v.video_id: v for v in self.videos}

    def queries(self) -> list[Video]:
        return [v for v in self.videos if v.kind != "library"]

    def earlier_originals(self, query: Video) -> list[Video]:
        """The originals published before `query`: what it is compared with."""
        return [v for v in self.videos if v.is_original and v.published_at < query.published_at]

    def counts(self) -> dict[str, int]:
        return {k: sum(v.kind == k for v in self.videos) for k in KINDS}


# ------------------------------------------------------------------------------------------ plan


class SetPlanner:
    """Draws a set's originals and copies from a pool: photos never shared between originals, music segments
    never reused, the duet and picture-in-picture backgrounds kept apart (rci.training.realset.modalities
    uses its music bookkeeping too)."""

    def __init__(self, size: SetSize, seed: int, photos: list[PoolPhoto], tracks: list[MusicTrack],
                 voices: tuple[str, ...]) -> None:
        self.size = size
        self.voices = voices
        self.rng = np.random.default_rng(seed)
        order = self.rng.permutation(len(photos))
        self.photos = [photos[i] for i in order]
        n_backgrounds = max(2, math.ceil(size.hard * 2 / len(HARD_EDITS) / 2))  # duets and PiPs share a few
        fresh = size.library + size.unrelated + size.template
        if len(self.photos) < fresh + n_backgrounds:
            raise ValueError(f"the photo pool has {len(self.photos)} pictures; size needs {fresh + n_backgrounds}")
        self.backgrounds = [p.path for p in self.photos[:n_backgrounds]]
        self.free = self.photos[n_backgrounds:]
        self.spare = len(self.free) - fresh  # originals that may take a second photo
        self.tracks = tracks
        self.cursor = {t.path: 4.0 for t in tracks}  # where each piece's unused part starts

    def take_music(self, duration_s: float) -> tuple[str, float]:
        """A segment of a random piece that no other video uses (segments never overlap)."""
        fits = [t.path for t in self.tracks if self.cursor[t.path] + duration_s + 1.0 <= t.duration_s]
        if not fits:
            raise ValueError("the music pool ran out of unused segments for this size")
        track = fits[int(self.rng.integers(len(fits)))]
        start = self.cursor[track]
        self.cursor[track] = start + duration_s + 1.0
        return track, round(start, 2)

    def take_photos(self, category: str | None = None) -> tuple[str, ...]:
        count = 2 if self.spare > 0 and self.rng.random() < 0.5 else 1
        self.spare -= count - 1
        chosen = []
        for _ in range(count):
            same = [i for i, p in enumerate(self.free) if p.category == category] if category else []
            chosen.append(self.free.pop(same[0] if same else 0))
        return tuple(p.path for p in chosen)

    def sound(self, duration_s: float) -> Sound:
        if self.rng.random() < 0.5:
            track, offset = self.take_music(duration_s)
            return Sound("music", track=track, offset_s=offset)
        voice = f"{pick(self.rng, self.voices)}+{pick(self.rng, VARIANTS)}"
        bed = self.take_music(duration_s) if self.rng.random() < 0.4 else ("", 0.0)
        return Sound("speech", voice=voice, wpm=int(self.rng.integers(140, 180)), pitch=int(self.rng.integers(30, 70)),
                     text=speech_text(self.rng, language_of(voice), sentences=int(math.ceil(duration_s / 3))),
                     bed_track=bed[0], bed_offset_s=bed[1])  # fmt: skip

    def original(self, video_id: str, kind: str, landscape: bool, category: str | None = None) -> Video:
        language = language_of(pick(self.rng, self.voices))
        width, height = LANDSCAPE if landscape else PORTRAIT
        duration = round(float(self.rng.uniform(self.size.min_s, self.size.max_s)), 2)
        return Video(video_id, kind, "", title=title_text(self.rng, language),
                     sticker=title_text(self.rng, language).split(" #")[0].upper(), width=width, height=height,
                     duration_s=duration, photos=self.take_photos(category), sound=self.sound(duration),
                     seed=int(self.rng.integers(2**31)))  # fmt: skip

    def template(self, video_id: str, borrowed: Video) -> Video:
        category = next((p.category for p in self.photos if p.path == borrowed.photos[0]), None)
        return Video(video_id, "template", "", title=borrowed.title, sticker=borrowed.sticker, width=borrowed.width,
                     height=borrowed.height, duration_s=borrowed.duration_s, source_id=borrowed.video_id,
                     photos=self.take_photos(category), sound=borrowed.sound, seed=int(self.rng.integers(2**31)))  # fmt: skip

    def easy(self, video_id: str, source: Video) -> Video:
        rng = self.rng
        names = sorted(rng.choice(EASY_EDITS, size=int(rng.integers(2, 4)), replace=False).tolist(),
                       key=EASY_EDITS.index)  # fmt: skip
        edits: list[dict] = []
        duration = source.duration_s
        for name in names:
            if name == "flip_colour":
                edits += [HFlip().to_dict(), Colour(brightness=round(float(rng.uniform(-0.1, 0.1)), 3),
                                                    contrast=round(float(rng.uniform(0.8, 1.25)), 3),
                                                    saturation=round(float(rng.uniform(0.5, 1.5)), 3),
                                                    hue_deg=round(float(rng.uniform(-30, 30)), 1)).to_dict()]  # fmt: skip
            elif name == "logo":
                edits.append(LogoBox(handle=f"@{pick(rng, ('reels', 'clips', 'viral', 'daily'))}"
                                            f"{int(rng.integers(10, 999))}", corner=int(rng.integers(4)),
                                     colour=pick(rng, ("red", "navy", "black", "teal"))).to_dict())  # fmt: skip
            elif name == "fps":
                edits.append({"op": "fps", "fps": int(pick(rng, ("25", "30", "8")))})
            elif name == "low_quality":
                edits.append({"op": "low_quality", "crf": int(rng.integers(36, 42)), "downscale": 2})
            elif name == "crop":
                w, h = (round(float(v), 3) for v in rng.uniform(0.86, 0.95, size=2))
                edits.append(Crop(x=round(float(rng.uniform(0, 1 - w)), 3), y=round(float(rng.uniform(0, 1 - h)), 3),
                                  w=w, h=h).to_dict())  # fmt: skip
            elif name == "trim":
                length = round(float(rng.uniform(0.6, 0.9) * duration), 2)
                edits.append(Trim(start=round(float(rng.uniform(0, duration - length)), 2), length=length).to_dict())
                duration = length
        return Video(video_id, "easy", "", title=source.title, sticker=source.sticker, width=source.width,
                     height=source.height, duration_s=duration, source_id=source.video_id, edits=tuple(edits),
                     seed=int(rng.integers(2**31)))  # fmt: skip

    def hard(self, video_id: str, source: Video, edit: str) -> Video:
        rng = self.rng
        width, height, duration, background = source.width, source.height, source.duration_s, ""
        if edit == "vertical_recrop":
            params: dict = {"op": edit, "x": round(float(rng.uniform(0.2, 0.8)), 3)}
            width, height = PORTRAIT
        elif edit == "duet":
            params = {"op": edit, "source_first": bool(rng.random() < 0.5)}
            background = pick(rng, tuple(self.backgrounds))
            width, height = (2 * width, height) if height > width else (width, 2 * height)
        elif edit == "pip":
            voice = f"{pick(rng, self.voices)}+{pick(rng, VARIANTS)}"
            params = {"op": edit, "scale": round(float(rng.uniform(0.3, 0.42)), 3), "x": round(float(rng.random()), 2),
                      "y": round(float(rng.random()), 2), "voice": voice,
                      "text": speech_text(rng, language_of(voice), sentences=int(math.ceil(duration / 3)))}  # fmt: skip
            background = pick(rng, tuple(self.backgrounds))
        elif edit == "zoom":
            side = round(float(rng.uniform(0.45, 0.6)), 3)
            params = Crop(x=round(float(rng.uniform(0.1, 0.9 - side)), 3), y=round(float(rng.uniform(0.1, 0.9 - side)), 3),
                          w=side, h=side).to_dict()  # fmt: skip
            params["op"] = "zoom"
        else:
            params = Speed(factor=1.5).to_dict()
            duration = round(duration / 1.5, 2)
        return Video(video_id, "hard", "", title=source.title, sticker=source.sticker, width=width, height=height,
                     duration_s=duration, source_id=source.video_id, edits=(params,), background=background,
                     seed=int(rng.integers(2**31)))  # fmt: skip


def plan_set(size: SetSize, seed: int, photos: list[PoolPhoto], tracks: list[MusicTrack],
             voices: tuple[str, ...] = BENCH.voices) -> list[Video]:
    """Every video of the set, in publication order, with what it is made of (nothing rendered)."""
    planner = SetPlanner(size, seed, photos, tracks, voices)
    rng = planner.rng
    library = [planner.original(f"o{i:03d}", "library", landscape=i % 5 in (0, 2)) for i in range(size.library)]
    landscape = [v for v in library if v.width > v.height]
    kinds = ["easy"] * size.easy + ["hard"] * size.hard + ["unrelated"] * size.unrelated + ["template"] * size.template
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    source_order = [library[i] for i in rng.permutation(len(library))]  # copies spread over the sources
    queries: list[Video] = []
    hard_done = 0
    for j, kind in enumerate(kinds):
        vid = f"q{j:03d}"
        if kind == "unrelated":
            queries.append(planner.original(vid, "unrelated", landscape=bool(rng.random() < 0.4)))
        elif kind == "template":
            queries.append(planner.template(vid, library[int(rng.integers(len(library)))]))
        elif kind == "easy":
            queries.append(planner.easy(vid, source_order[j % len(source_order)]))
        else:
            edit = HARD_EDITS[hard_done % len(HARD_EDITS)]
            hard_done += 1
            pool = landscape if edit == "vertical_recrop" else library
            queries.append(planner.hard(vid, pool[int(rng.integers(len(pool)))], edit))
    videos = library + queries
    return [_with(v, published_at=rfc3339.format(EPOCH + timedelta(minutes=i))) for i, v in enumerate(videos)]


def _with(video: Video, **changes: object) -> Video:
    return Video(**{**asdict(video), "sound": video.sound, **changes})


# ---------------------------------------------------------------------------------------- render


def _sticker(frame: Frame, text: str) -> str:
    """The sticker, drawn in the middle-lower part (inside the square the decoder keeps)."""
    size = max(12, min(frame.width, frame.height) // 14)
    return (f"drawtext=fontfile={frame.font}:textfile={frame.text_file(text, 22)}:fontsize={size}:fontcolor=white"
            f":box=1:boxcolor=0x202020@0.7:boxborderw=6:x=(w-text_w)/2:y=h*0.6")


def _audio_inputs(sound: Sound, duration_s: float, workdir: Path) -> tuple[list[str], str]:
    """ffmpeg inputs (numbered from 1) and a filter chain ending in [snd] for a soundtrack."""
    tail = f"aresample={AUDIO_RATE},aformat=channel_layouts=mono,apad,atrim=0:{duration_s:.3f}"
    if sound.kind == "music":
        check_heldout_media(sound.track)
        return ["-ss", f"{sound.offset_s:.2f}", "-t", f"{duration_s + 1:.2f}", "-i", sound.track], f"[1:a]{tail}[snd]"
    wav = workdir / "speech.wav"
    espeak(sound.text, sound.voice, sound.wpm, sound.pitch, wav)
    if not sound.bed_track:
        return ["-i", str(wav)], f"[1:a]{tail}[snd]"
    check_heldout_media(sound.bed_track)
    bed = ["-ss", f"{sound.bed_offset_s:.2f}", "-t", f"{duration_s + 1:.2f}", "-i", sound.bed_track]
    chain = (f"[1:a]aresample={AUDIO_RATE},aformat=channel_layouts=mono,apad[sp];"
             f"[2:a]aresample={AUDIO_RATE},aformat=channel_layouts=mono,volume=0.18,apad[bed];"
             f"[sp][bed]amix=inputs=2:normalize=0,{tail}[snd]")  # fmt: skip
    return ["-i", str(wav), *bed], chain


def _encode_args(duration_s: float, fps: int, crf: int = 23) -> list[str]:
    return ["-t", f"{duration_s:.3f}", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-r", str(fps),
            "-g", str(2 * fps), "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-ar", str(AUDIO_RATE), "-ac", "1",
            *DETERMINISM_ARGS]  # fmt: skip


def _ken_burns(photos: tuple[str, ...], seed: int, duration_s: float, width: int, height: int):
    """Frames of the photos in turn (a cut between them), each with its own pan and zoom."""
    n = int(round(duration_s * FPS)) + FPS  # a second of slack: -t cuts exactly
    cuts = np.linspace(0, n, len(photos) + 1).astype(int)
    for k, photo in enumerate(photos):
        recipe = VisualRecipe("photo", seed + k, photo=str(check_heldout_media(photo)))
        yield from frames_for(recipe, int(cuts[k + 1] - cuts[k]), width, height)


def render_original(video: Video, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="rci-heldout-") as tmp:
        frame = Frame(video.width, video.height, FPS, font_file(), Path(tmp))
        audio_args, audio_chain = _audio_inputs(video.sound, video.duration_s, Path(tmp))
        args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{video.width}x{video.height}", "-r", str(FPS),
                "-i", "pipe:0", *audio_args,
                "-filter_complex", f"[0:v]{_sticker(frame, video.sticker)},setsar=1[vid];{audio_chain}",
                "-map", "[vid]", "-map", "[snd]", *_encode_args(video.duration_s, FPS), str(out)]  # fmt: skip
        run_ffmpeg(args, what=video.video_id, frames=_ken_burns(video.photos, video.seed, video.duration_s,
                                                                   video.width, video.height))  # fmt: skip


_TRANSFORMS: dict[str, type[Transform]] = {"hflip": HFlip, "colour": Colour, "logo": LogoBox, "crop": Crop,
                                           "trim": Trim, "speed": Speed}  # fmt: skip


def _transform(edit: dict) -> Transform:
    return _TRANSFORMS[edit["op"]](**{k: v for k, v in edit.items() if k != "op"})


def render_copy(video: Video, source: Video, out: Path) -> None:
    """Edit the source's encoded file, as a re-uploader would."""
    with tempfile.TemporaryDirectory(prefix="rci-heldout-") as tmp:
        frame = Frame(source.width, source.height, FPS, font_file(), Path(tmp))
        inputs = ["-i", source.path]
        vf: list[str] = []
        af: list[str] = []
        fps, crf, graph = FPS, 23, None
        for edit in video.edits:
            op = edit["op"]
            if op in _TRANSFORMS:
                vf += _transform(edit).video_filters(frame)
                af += _transform(edit).audio_filters()
            elif op == "fps":
                fps = edit["fps"]
            elif op == "low_quality":
                crf = edit["crf"]
                vf += [f"scale=iw/{edit['downscale']}:-2", f"scale={source.width}:{source.height}"]
            elif op == "zoom":
                vf += Crop(edit["x"], edit["y"], edit["w"], edit["h"]).video_filters(frame)
            elif op == "vertical_recrop":
                vf += [f"crop=trunc(ih*9/16/2)*2:ih:(iw-ow)*{edit['x']}:0", f"scale={video.width}:{video.height}"]
            else:  # duet / pip: a second picture, and a graph of their own
                graph, inputs = _composite(video, source, edit, frame, inputs)
        if graph is None:
            graph = (f"[0:v]{','.join([*vf, 'setsar=1']) if vf else 'setsar=1'}[vid];"
                     f"[0:a]{','.join([*af, 'apad']) if af else 'apad'}[snd]")  # fmt: skip
        frames = (_ken_burns((video.background,), video.seed, video.duration_s, *_background_size(video, source))
                  if video.background else None)  # fmt: skip
        args = [*inputs, "-filter_complex", graph, "-map", "[vid]", "-map", "[snd]",
                *_encode_args(video.duration_s, fps, crf), str(out)]  # fmt: skip
        run_ffmpeg(args, what=video.video_id, frames=frames)


def _background_size(video: Video, source: Video) -> tuple[int, int]:
    if video.edits[0]["op"] == "pip":
        return source.width, source.height
    return (video.width - source.width, video.height) if video.width > source.width else (video.width,
                                                                                         video.height - source.height)


def _composite(video: Video, source: Video, edit: dict, frame: Frame, inputs: list[str]) -> tuple[str, list[str]]:
    bw, bh = _background_size(video, source)
    inputs = [*inputs, "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{bw}x{bh}", "-r", str(FPS), "-i", "pipe:0"]
    if edit["op"] == "duet":
        stack = "hstack" if video.width > source.width else "vstack"
        pair = "[0:v][bg]" if edit["source_first"] else "[bg][0:v]"
        return (f"[0:v]format=yuv420p,setsar=1[src];[1:v]format=yuv420p,setsar=1[bg];"
                f"{pair.replace('[0:v]', '[src]')}{stack}=inputs=2,setsar=1[vid];[0:a]apad[snd]", inputs)
    wav = frame.workdir / "voice.wav"
    espeak(edit["text"], edit["voice"], 165, 50, wav)
    inputs += ["-i", str(wav)]
    graph = (f"[0:v]scale=trunc(iw*{edit['scale']}/2)*2:-2[fg];"
             f"[1:v][fg]overlay=x=(W-w)*{edit['x']}:y=(H-h)*{edit['y']},setsar=1[vid];"
             f"[0:a]volume=0.5,apad[orig];[2:a]aresample={AUDIO_RATE},aformat=channel_layouts=mono,apad[new];"
             f"[orig][new]amix=inputs=2:normalize=0[snd]")  # fmt: skip
    return graph, inputs


def _render_one(video: Video, source: Video | None) -> str:
    out = Path(video.path)
    if out.exists():
        return video.video_id
    partial = out.with_suffix(".part.mp4")
    if video.is_original:
        render_original(video, partial)
    else:
        render_copy(video, source, partial)
    partial.rename(out)
    return video.video_id


# ------------------------------------------------------------------------------------------ build


def _digest(videos: list[Video]) -> str:
    text = json.dumps([asdict(v) for v in videos], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_set(root: Path) -> HeldoutSet | None:
    manifest = root / "manifest.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    if data.get("version") != SET_VERSION:
        return None
    videos = [Video(**{**v, "sound": Sound(**v["sound"]) if v["sound"] else None, "photos": tuple(v["photos"]),
                       "edits": tuple(v["edits"])}) for v in data["videos"]]  # fmt: skip
    if not all(Path(v.path).exists() for v in videos):
        return None
    return HeldoutSet(root, data["size"], data["seed"], videos, data["info"])


def build_set(work_dir: Path | None = None, size: str = "default", seed: int = 0, jobs: int = 2, progress=None,
              pools: PoolSpec = BENCH) -> HeldoutSet:
    """The set for (pools, size, seed) under `work_dir/sets/` (default: the pool's cache dir), rendered once
    and reused while its plan is unchanged."""
    work_dir = default_pool_dir(pools) if work_dir is None else work_dir
    photos, pool_counts = photo_pool(pools, work_dir)
    tracks = music_pool(pools)
    planned = plan_set(SIZES[size], seed, photos, tracks, pools.voices)
    info = {"photo_pool": pool_counts, "music_pieces": len(tracks), "size": asdict(SIZES[size])}
    return render_planned(work_dir / "sets" / f"{size}-seed{seed}", size, seed, planned, info, jobs=jobs,
                          progress=progress)


def render_planned(root: Path, size: str, seed: int, planned: list[Video], info: dict, *, jobs: int = 2,
                   progress=None) -> HeldoutSet:
    """Render `planned` (originals first, then the copies made from them) under `root/media`, once: a set whose
    plan is unchanged is read back from its manifest. `info` describes the plan in the manifest."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    videos = [_with(v, path=str(media / f"{v.video_id}.mp4")) for v in planned]
    digest = _digest(videos)
    cached = load_set(root)
    if cached is not None and cached.info.get("plan_digest") == digest:
        return cached
    for stale in media.glob("*.mp4"):  # another plan's renders under the same names
        stale.unlink()
    by_id = {v.video_id: v for v in videos}
    task = progress.add_task("render held-out set", total=len(videos)) if progress else None
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for wave in ([v for v in videos if v.is_original], [v for v in videos if not v.is_original]):
            futures = [pool.submit(_render_one, v, by_id.get(v.source_id) if v.source_id else None) for v in wave]
            for future in futures:
                future.result()
                if progress:
                    progress.advance(task)
    info = {"plan_digest": digest, **info, "photos_used": len({p for v in videos for p in v.photos}),
            "backgrounds_used": len({v.background for v in videos if v.background}),
            "render_s": round(time.monotonic() - started, 1)}  # fmt: skip
    dataset = HeldoutSet(root, size, seed, videos, info)
    (root / "manifest.json").write_text(json.dumps({"version": SET_VERSION, "size": size, "seed": seed, "info": info,
                                                    "videos": [asdict(v) for v in videos]}, indent=1))  # fmt: skip
    return dataset


def default_work_dir() -> Path:
    """The benchmark's work dir (its pool, sets, features and demo models)."""
    return default_pool_dir(BENCH)
