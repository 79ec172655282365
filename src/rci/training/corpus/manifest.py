"""The corpus on disk: what training, evaluation and the demo read.

    <out>/media/<video_id>.mp4   H.264 + AAC (or no audio track), small and short
    <out>/videos.jsonl           one `video.published` event per video (CONTRACT.md), in publish order
    <out>/pairs.jsonl            one labelled (query, candidate) pair per line
    <out>/corpus.json            the generation config, counts, and per-video metadata

A pair's `label` is 1 when the query reproduces the candidate. `visual_match`, `audio_match` and
`text_match` are the auxiliary targets of the multi-task heads: 1 when the two videos share that
modality's content, 0 when they do not, null when it does not apply (a side has no audio track).
Every video belongs to exactly one source and every source to one split; pairs never cross splits.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from rci.streams.contracts import PublishedEvent
from rci.training.corpus.errors import CorpusError

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]
FORMAT_VERSION = 1


class Subset(StrEnum):
    """Why a pair is in the corpus. The Figure 4 subsets of the paper are AUDIO_DEPENDENT and TEXT_DEPENDENT."""

    VISUAL_COPY = "visual_copy"  # edits of the source's picture: reproduced
    AUDIO_DEPENDENT = "audio_dependent"  # same template picture and text; reproduced iff the voice-over is the same
    TEXT_DEPENDENT = "text_dependent"  # same template picture and music; reproduced iff the caption is the same
    HARD_NEGATIVE_AUDIO = "hard_negative_audio"  # same music over different pictures: not reproduced
    HARD_NEGATIVE_STYLE = "hard_negative_style"  # same generator family / photo category, other content
    HARD_NEGATIVE_TITLE = "hard_negative_title"  # same title and sticker over other content
    UNRELATED = "unrelated"  # two sources of the same split


def policy_label(subset: Subset, visual_match: int, audio_match: int | None, text_match: int) -> int:
    """The labelling policy: which content a subset's reproductions must share."""
    if subset is Subset.VISUAL_COPY:
        return 1
    if subset is Subset.AUDIO_DEPENDENT:
        return int(visual_match == 1 and audio_match == 1)
    if subset is Subset.TEXT_DEPENDENT:
        return int(visual_match == 1 and text_match == 1)
    return 0


class PairRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    query_id: str
    candidate_id: str  # published before the query
    label: Literal[0, 1]
    subset: Subset
    split: Split
    transforms: list[dict[str, Any]]  # the query's edits, then relation markers (new_visuals, new_audio, ...)
    visual_match: Literal[0, 1]
    audio_match: Literal[0, 1] | None
    text_match: Literal[0, 1]


class VideoRecord(BaseModel):
    """Per-video facts the event does not carry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    video_id: str
    source_id: str
    split: Split
    role: str
    style: str
    derived_from: str | None
    has_audio: bool
    duration_s: float
    sha256: str
    size_bytes: int


@dataclass
class CorpusManifest:
    root: Path
    events: list[PublishedEvent]  # publish order
    videos: dict[str, VideoRecord]
    pairs: list[PairRecord]
    info: dict[str, Any] = field(default_factory=dict)  # config, counts, tool versions (corpus.json minus videos)

    # ----------------------------------------------------------------------------------- reading
    def event(self, video_id: str) -> PublishedEvent:
        return self._events_by_id[video_id]

    def media_path(self, video_id: str) -> Path:
        return Path(self.event(video_id).media_uri.removeprefix("file://"))

    def pairs_in(self, split: Split) -> list[PairRecord]:
        return [p for p in self.pairs if p.split == split]

    @cached_property
    def _events_by_id(self) -> dict[str, PublishedEvent]:
        return {e.video_id: e for e in self.events}

    def counts(self) -> dict[str, Any]:
        by_split = Counter(p.split for p in self.pairs)
        positives = Counter(p.split for p in self.pairs if p.label == 1)
        return {
            "videos": len(self.events),
            "sources": len({v.source_id for v in self.videos.values()}),
            "pairs": {s: by_split.get(s, 0) for s in SPLITS},
            "positives": {s: positives.get(s, 0) for s in SPLITS},
            "subsets": dict(sorted(Counter(p.subset.value for p in self.pairs).items())),
            "media_seconds": round(sum(v.duration_s for v in self.videos.values()), 1),
            "media_bytes": sum(v.size_bytes for v in self.videos.values()),
        }

    # ------------------------------------------------------------------------------------ disk
    def write(self) -> None:
        """Write the three manifest files (each atomically: a reader never sees half a file)."""
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.root / "videos.jsonl", "".join(e.model_dump_json(exclude_none=True) + "\n" for e in self.events))
        _write_atomic(self.root / "pairs.jsonl", "".join(p.model_dump_json() + "\n" for p in self.pairs))
        summary = {**self.info, "format": FORMAT_VERSION, "counts": self.counts(),
                   "videos": {vid: rec.model_dump(exclude={"video_id"}) for vid, rec in sorted(self.videos.items())}}
        _write_atomic(self.root / "corpus.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, root: Path) -> CorpusManifest:
        try:
            summary = json.loads((root / "corpus.json").read_text())
            events = [PublishedEvent.model_validate_json(line) for line in _lines(root / "videos.jsonl")]
            pairs = [PairRecord.model_validate_json(line) for line in _lines(root / "pairs.jsonl")]
        except (OSError, ValueError) as exc:
            raise CorpusError(f"no readable corpus manifest in {root}: {exc}") from exc
        if summary.get("format") != FORMAT_VERSION:
            raise CorpusError(f"{root}/corpus.json has format {summary.get('format')}, expected {FORMAT_VERSION}")
        videos = {vid: VideoRecord(video_id=vid, **rec) for vid, rec in summary.pop("videos").items()}
        summary.pop("counts", None)
        summary.pop("format", None)
        return cls(root=root, events=events, videos=videos, pairs=pairs, info=summary)


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
