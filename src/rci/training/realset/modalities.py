"""Real-media pairs where one modality decides the label: the paper's Figure 4 subsets, from a pool's photos,
music and voices (rci.training.realset.pools), rendered as rci.training.realset.sets renders its sets.

    dataset, pairs = build_modality_set(None, sources=100, seed=0)   # the BENCH pools, cached

A template is one photo with Ken Burns motion; several creators post over the same template (`PER_TEMPLATE`
sources each), and both sides of a pair show it with exactly the same motion, so the picture alone says
"the same" for every pair. Each source gives one reproduced and one normal pair, each side with one light
edit (a watermark, a low-quality re-encode, a small crop or a colour change), drawn independently:

* audio-dependent (`AUDIO_SUBSET`): the source is a voice-over (espeak-ng speech, over the template's quiet
  music bed where it has one) with a title and a sticker. Reproduced: the source, edited. Normal: the same
  template, title, sticker, voice and bed re-voiced with other words, edited.
* text-dependent (`TEXT_SUBSET`): the source is a caption (drawn on the picture and sent as the event's
  sticker text) over the template's music (a trend's sound: every source of a template uses it), with a
  title. Reproduced: the source, edited. Normal: the same template, music and title with another caption,
  edited.

The pair's query is the edited upload, its candidate the source, as retrieval would hand them over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np

from rci.training.realset.pools import (BENCH, VARIANTS, PoolSpec, default_pool_dir, language_of, music_pool, photo_pool,
                                        pick, speech_text, title_text)  # fmt: skip
from rci.core import rfc3339
from rci.training.realset.sets import EPOCH, PORTRAIT, HeldoutSet, SetPlanner, SetSize, Sound, Video, render_planned
from rci.training.corpus.transforms import Colour, Crop, LogoBox

AUDIO_SUBSET = "audio_dependent"
TEXT_SUBSET = "text_dependent"
PER_TEMPLATE = 4  # sources posted over each template picture
MIN_S, MAX_S = 6.0, 9.0
BED_SHARE = 0.4  # voice-over templates with a quiet music bed under the speech


@dataclass(frozen=True)
class ModalityPair:
    query_id: str  # the edited upload
    candidate_id: str  # the source
    label: int  # 1 = a reproduction of the source
    subset: str  # AUDIO_SUBSET or TEXT_SUBSET


def light_edit(rng: np.random.Generator) -> dict:
    """One mild edit that keeps every modality: what both sides of a pair get, so edits tell nothing apart."""
    choice = int(rng.integers(4))
    if choice == 0:
        return LogoBox(handle=f"@{pick(rng, ('reels', 'clips', 'viral', 'daily'))}{int(rng.integers(10, 999))}",
                       corner=int(rng.integers(4)), colour=pick(rng, ("red", "navy", "black", "teal"))).to_dict()  # fmt: skip
    if choice == 1:
        return {"op": "low_quality", "crf": int(rng.integers(34, 40)), "downscale": 2}
    if choice == 2:
        w, h = (round(float(v), 3) for v in rng.uniform(0.88, 0.96, size=2))
        return Crop(x=round(float(rng.uniform(0, 1 - w)), 3), y=round(float(rng.uniform(0, 1 - h)), 3), w=w, h=h).to_dict()
    return Colour(brightness=round(float(rng.uniform(-0.08, 0.08)), 3), contrast=round(float(rng.uniform(0.85, 1.2)), 3),
                  saturation=round(float(rng.uniform(0.7, 1.3)), 3), hue_deg=round(float(rng.uniform(-15, 15)), 1)).to_dict()  # fmt: skip


class _ModalityPlanner:
    def __init__(self, sources: int, seed: int, pools: PoolSpec, work_dir: Path) -> None:
        photos, self.pool_counts = photo_pool(pools, work_dir)
        self.tracks = music_pool(pools)
        self.voices = pools.voices
        templates = 2 * math.ceil(sources / PER_TEMPLATE)
        # the set planner's music bookkeeping (segments never reused); no originals of its own
        self.base = SetPlanner(SetSize(0, 0, 0, 0, 0, MIN_S, MAX_S), seed, photos, self.tracks, pools.voices)
        if len(self.base.free) < templates:
            raise ValueError(f"the photo pool has {len(self.base.free)} free pictures; {sources} sources need {templates}")
        self.rng = self.base.rng
        self.templates = [p.path for p in self.base.free[:templates]]
        self.videos: list[Video] = []
        self.pairs: list[ModalityPair] = []
        self.music: dict[int, tuple[str, float]] = {}  # template -> its sound: a music segment, or no bed ("")

    def _music(self, template: int, share: float) -> tuple[str, float]:
        """The template's music segment (long enough for any of its sources), drawn once; none with 1 - share."""
        if template not in self.music:
            self.music[template] = self.base.take_music(MAX_S) if self.rng.random() < share else ("", 0.0)
        return self.music[template]

    def _template(self, k: int, subset: str) -> int:
        """The template of the subset's k-th source: an index into the pictures, and its motion seed - 1000."""
        return k // PER_TEMPLATE + (0 if subset == AUDIO_SUBSET else len(self.templates) // 2)

    def _add(self, source: Video, other: Video, subset: str) -> None:
        """The source, its edited copy (reproduced), the other original and its edited copy (normal)."""
        rng = self.rng
        copy = replace(source, video_id=f"{source.video_id}-same", kind="easy", source_id=source.video_id,
                       photos=(), sound=None, edits=(light_edit(rng),), seed=int(rng.integers(2**31)))
        other_copy = replace(other, video_id=f"{source.video_id}-other", kind="easy", source_id=other.video_id,
                             photos=(), sound=None, edits=(light_edit(rng),), seed=int(rng.integers(2**31)))
        self.videos += [source, other, copy, other_copy]
        self.pairs += [ModalityPair(copy.video_id, source.video_id, 1, subset),
                       ModalityPair(other_copy.video_id, source.video_id, 0, subset)]

    def voice_over(self, k: int) -> None:
        rng = self.rng
        template = self._template(k, AUDIO_SUBSET)
        voice = f"{pick(rng, self.voices)}+{pick(rng, VARIANTS)}"
        language = language_of(voice)
        duration = round(float(rng.uniform(MIN_S, MAX_S)), 2)
        bed = self._music(template, BED_SHARE)
        sentences = int(math.ceil(duration / 3))
        speech = Sound("speech", voice=voice, wpm=int(rng.integers(140, 180)), pitch=int(rng.integers(30, 70)),
                       text=speech_text(rng, language, sentences), bed_track=bed[0], bed_offset_s=bed[1])  # fmt: skip
        other_text = speech_text(rng, language, sentences)
        while other_text == speech.text:
            other_text = speech_text(rng, language, sentences)
        source = Video(f"a{k:03d}", "library", "", title=title_text(rng, language),
                       sticker=title_text(rng, language).split(" #")[0].upper(), width=PORTRAIT[0], height=PORTRAIT[1],
                       duration_s=duration, photos=(self.templates[template],), sound=speech, seed=1000 + template)  # fmt: skip
        self._add(source, replace(source, video_id=f"a{k:03d}r", kind="unrelated", sound=replace(speech, text=other_text)),
                  AUDIO_SUBSET)

    def caption(self, k: int) -> None:
        rng = self.rng
        template = self._template(k, TEXT_SUBSET)
        language = language_of(pick(rng, self.voices))
        duration = round(float(rng.uniform(MIN_S, MAX_S)), 2)
        track, offset = self._music(template, 1.0)
        caption = speech_text(rng, language, 1)
        other_caption = speech_text(rng, language, 1)
        while other_caption == caption:
            other_caption = speech_text(rng, language, 1)
        source = Video(f"t{k:03d}", "library", "", title=title_text(rng, language), sticker=caption,
                       width=PORTRAIT[0], height=PORTRAIT[1], duration_s=duration, photos=(self.templates[template],),
                       sound=Sound("music", track=track, offset_s=offset), seed=1000 + template)  # fmt: skip
        self._add(source, replace(source, video_id=f"t{k:03d}r", kind="unrelated", sticker=other_caption), TEXT_SUBSET)


def plan_modality_set(sources: int, seed: int, pools: PoolSpec = BENCH,
                      work_dir: Path | None = None) -> tuple[list[Video], list[ModalityPair], dict]:
    """Every video (sources and the other originals first, then the edited uploads) and the labelled pairs:
    `sources` of each subset, so `sources` reproduced pairs per subset."""
    planner = _ModalityPlanner(sources, seed, pools, default_pool_dir(pools) if work_dir is None else work_dir)
    for k in range(sources):
        planner.voice_over(k)
        planner.caption(k)
    ordered = [v for v in planner.videos if v.is_original] + [v for v in planner.videos if not v.is_original]
    info = {"photo_pool": planner.pool_counts, "music_pieces": len(planner.tracks), "sources_per_subset": sources,
            "per_template": PER_TEMPLATE, "templates": len(planner.templates)}  # fmt: skip
    videos = [replace(v, published_at=rfc3339.format(EPOCH + timedelta(minutes=i))) for i, v in enumerate(ordered)]
    return videos, planner.pairs, info


def build_modality_set(work_dir: Path | None = None, sources: int = 100, seed: int = 0, *, jobs: int = 2,
                       progress=None, pools: PoolSpec = BENCH) -> tuple[HeldoutSet, list[ModalityPair]]:
    """The set for (pools, sources, seed) under `work_dir/sets/` (default: the pool's cache dir), rendered once."""
    work_dir = default_pool_dir(pools) if work_dir is None else work_dir
    videos, pairs, info = plan_modality_set(sources, seed, pools, work_dir)
    root = work_dir / "sets" / f"modalities{sources}-seed{seed}"
    return render_planned(root, f"modalities{sources}", seed, videos, info, jobs=jobs, progress=progress), pairs
