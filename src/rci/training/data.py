"""Labelled pairs + cached features -> training batches.

    corpus/pairs.jsonl ──read_examples──> [PairExample]          (label, subset, split, aux targets)
    corpus/media ──encode_corpus──> FeatureCache ──load_features──> {video_id: VideoFeatures}
    PairDataset(examples, features[, teacher targets]) ──collate_batch──> PairBatch

Features come from the same `FeatureCache` (features/<encoder_version>/<video_id>.npz in an object
store) the worker reads, written by the same features path (`rci.features.pipeline`), so training
sees exactly the features serving sees. A corpus is small enough to hold all its features in memory.

Batches are built with the serving collate (`rci.inference.runtime.collate_pairs`): one code path
stacks pairs for training, evaluation and the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from torch.utils.data import Dataset

from rci.inference.encoders.base import resize_square_uint8
from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.features import VideoFeatures
from rci.inference.matchlm.processor import MatchLMBatch, MatchLMProcessor
from rci.inference.matchlm.processor import VideoInput as TeacherVideo
from rci.inference.runtime import collate_pairs
from rci.media.decode import decode_media
from rci.media.policy import MediaPolicy
from rci.core.errors import RCIError
from rci.core.logs import get_logger
from rci.features.cache import FeatureCache
from rci.features.pipeline import ExtractionSummary, FeaturePipeline, extract_features
from rci.storage.objects import LocalObjectStore
from rci.training.corpus.manifest import CorpusManifest, PairRecord
from rci.training.losses import IGNORE_INDEX

log = get_logger(__name__)

# MatchLite auxiliary head -> the pairs.jsonl field that is its target
AUX_TARGETS = {"visual": "visual_match", "audio": "audio_match", "text": "text_match"}


class DataError(RCIError):
    """The corpus or its features are missing or inconsistent."""


@dataclass(frozen=True)
class PairExample:
    query_id: str
    candidate_id: str
    label: int  # 1 = the query reproduces the candidate; IGNORE_INDEX = unlabelled (see `unlabelled`)
    subset: str  # why the pair is in the corpus (rci.training.corpus.manifest.Subset)
    split: str
    aux: dict[str, int | None]  # aux head name -> 0/1, None when undefined

    @classmethod
    def from_record(cls, record: PairRecord) -> PairExample:
        aux = {head: getattr(record, name) for head, name in AUX_TARGETS.items()}
        return cls(record.query_id, record.candidate_id, record.label, record.subset.value, record.split, aux)

    @property
    def video_ids(self) -> tuple[str, str]:
        return self.query_id, self.candidate_id


def unlabelled(example: PairExample) -> PairExample:
    """The pair without its labels: stage 2 learns it from the teacher's targets alone (the platform's own
    unlabelled traffic, scored by the teacher), as no cross-entropy term counts an IGNORE_INDEX label."""
    return replace(example, label=IGNORE_INDEX, aux=dict.fromkeys(example.aux))


def read_examples(manifest: CorpusManifest, split: str) -> list[PairExample]:
    """The labelled pairs of one split, in manifest order."""
    examples = [PairExample.from_record(p) for p in manifest.pairs_in(split)]  # type: ignore[arg-type]
    if not examples:
        raise DataError(f"corpus {manifest.root} has no {split} pairs")
    return examples


def video_ids_of(examples: Sequence[PairExample]) -> list[str]:
    return sorted({vid for ex in examples for vid in ex.video_ids})


# --- features ---------------------------------------------------------------------------------

TRAINING_FEATURES = "training-features"  # under the model dir, keyed by encoder version


def training_feature_cache(model_dir: Path) -> FeatureCache:
    """The feature cache training reads: `<model_dir>/training-features/features/<encoder_version>/`."""
    return FeatureCache(LocalObjectStore(Path(model_dir) / TRAINING_FEATURES))


def encode_corpus(
    manifest: CorpusManifest,
    extractor: FeatureExtractor,
    cache: FeatureCache,
    policy: MediaPolicy,
    *,
    batch_size: int = 8,
    progress: bool = True,
) -> int:
    """Decode and encode every corpus video missing from the cache; returns how many were encoded.

    Rerunning is cheap: videos already cached under the extractor's version are skipped. The
    features path is the worker's (rci.features.pipeline); a rejected corpus video fails the run.
    """
    version = extractor.version
    pipeline = FeaturePipeline(extractor, cache, corpus_media_policy(manifest, policy))
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"encode ({version})", total=len(manifest.events))
        summary = extract_features(pipeline, manifest.events, batch_size=batch_size,
                                   on_progress=lambda s: bar.update(task, completed=s.done))
    raise_if_rejected(summary, "corpus")
    log.info("corpus encoded", encoder_version=version, encoded=summary.encoded, cached=summary.already_cached)
    return summary.encoded


def raise_if_rejected(summary: ExtractionSummary, what: str) -> None:
    """DataError naming how many of `what`'s videos the features path rejected, and one of them: a
    training or validation set is made here, so none of its videos may fail."""
    if summary.rejected:
        video_id, why = next(iter(summary.rejected.items()))
        raise DataError(f"{len(summary.rejected)} {what} videos were rejected, e.g. {video_id}: {why}") from why


def corpus_media_policy(manifest: CorpusManifest, policy: MediaPolicy) -> MediaPolicy:
    """`policy` admitting the corpus's own media folders (the operator made the corpus; the
    configured prefixes name where the worker's media come from, not where a corpus lies)."""
    return policy.admitting(sorted({e.media_uri.rsplit("/", 1)[0] + "/" for e in manifest.events}))


def load_features(cache: FeatureCache, video_ids: Sequence[str], encoder_version: str) -> dict[str, VideoFeatures]:
    """Every video's cached features; DataError names the ones that are missing."""

    async def fetch() -> list[VideoFeatures | None]:
        return await asyncio.gather(*(cache.get(vid, encoder_version) for vid in video_ids))

    found = dict(zip(video_ids, asyncio.run(fetch()), strict=True))
    missing = [vid for vid, f in found.items() if f is None]
    if missing:
        raise DataError(
            f"{len(missing)} videos have no features for encoder {encoder_version} (e.g. {missing[:3]}); "
            "encode the corpus first"
        )
    return found  # type: ignore[return-value]


# --- dataset and batches ----------------------------------------------------------------------


@dataclass(frozen=True)
class TeacherTargets:
    """The frozen teacher's outputs on a dataset's pairs, row k for example k (stage 2)."""

    logits: torch.Tensor  # [N,2]
    embedding: torch.Tensor  # [N,Dt] z_t, the last token's final hidden state

    def __post_init__(self) -> None:
        if self.logits.shape[0] != self.embedding.shape[0]:
            raise ValueError(f"teacher logits {tuple(self.logits.shape)} and embedding {tuple(self.embedding.shape)}")


@dataclass
class PairBatch:
    inputs: dict[str, torch.Tensor]  # MatchLite INPUT_NAMES, trimmed to the batch's lengths
    labels: torch.Tensor  # [B] long
    aux_labels: dict[str, torch.Tensor]  # head -> [B] long, IGNORE_INDEX where undefined
    index: torch.Tensor  # [B] long: positions of the examples in their dataset
    teacher_logits: torch.Tensor | None = None  # [B,2]
    teacher_embedding: torch.Tensor | None = None  # [B,Dt]
    subsets: list[str] = field(default_factory=list)

    def to(self, device: torch.device) -> PairBatch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return replace(
            self,
            inputs={k: move(v) for k, v in self.inputs.items()},
            labels=move(self.labels),
            aux_labels={k: move(v) for k, v in self.aux_labels.items()},
            index=move(self.index),
            teacher_logits=move(self.teacher_logits),
            teacher_embedding=move(self.teacher_embedding),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class PairItem:
    index: int
    example: PairExample
    query: VideoFeatures
    candidate: VideoFeatures
    teacher_logits: torch.Tensor | None = None  # [2]
    teacher_embedding: torch.Tensor | None = None  # [Dt]


class PairDataset(Dataset[PairItem]):
    """Examples joined with their videos' features (and, for stage 2, the teacher's outputs)."""

    def __init__(
        self,
        examples: Sequence[PairExample],
        features: Mapping[str, VideoFeatures],
        teacher: TeacherTargets | None = None,
    ) -> None:
        missing = sorted({vid for ex in examples for vid in ex.video_ids} - set(features))
        if missing:
            raise DataError(f"no features for {len(missing)} videos, e.g. {missing[:3]}")
        if teacher is not None and teacher.logits.shape[0] != len(examples):
            raise DataError(f"{teacher.logits.shape[0]} teacher rows for {len(examples)} examples")
        self.examples = list(examples)
        self.features = features
        self.teacher = teacher

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> PairItem:
        ex = self.examples[index]
        teacher = self.teacher
        return PairItem(
            index=index,
            example=ex,
            query=self.features[ex.query_id],
            candidate=self.features[ex.candidate_id],
            teacher_logits=None if teacher is None else teacher.logits[index],
            teacher_embedding=None if teacher is None else teacher.embedding[index],
        )

    @property
    def labels(self) -> np.ndarray:
        return np.array([ex.label for ex in self.examples], dtype=np.int64)

    @property
    def subsets(self) -> list[str]:
        return [ex.subset for ex in self.examples]

    def with_teacher(self, teacher: TeacherTargets) -> PairDataset:
        return PairDataset(self.examples, self.features, teacher)


def join_pairs(*datasets: PairDataset) -> PairDataset:
    """The datasets' pairs in order, their features merged (sets prefix their ids, so none collide)."""
    return PairDataset([e for d in datasets for e in d.examples], {k: v for d in datasets for k, v in d.features.items()})


def _aux_target(value: int | None) -> int:
    return IGNORE_INDEX if value is None else int(value)


def pair_targets(items: Sequence[PairItem] | Sequence[TeacherItem]) -> dict[str, Any]:
    """What every pair batch carries besides its inputs: labels [B], aux_labels head -> [B] (IGNORE_INDEX
    where undefined) and index [B], the examples' positions in their dataset."""
    return {
        "labels": torch.tensor([item.example.label for item in items], dtype=torch.long),
        "aux_labels": {head: torch.tensor([_aux_target(item.example.aux[head]) for item in items], dtype=torch.long)
                       for head in items[0].example.aux},  # fmt: skip
        "index": torch.tensor([item.index for item in items], dtype=torch.long),
    }


def collate_batch(items: Sequence[PairItem]) -> PairBatch:
    """PairItems -> PairBatch (inputs through the serving collate)."""
    arrays = collate_pairs([(item.query, item.candidate) for item in items])
    with_teacher = items[0].teacher_logits is not None
    return PairBatch(
        inputs={name: torch.from_numpy(a) for name, a in arrays.items()},
        **pair_targets(items),
        teacher_logits=torch.stack([item.teacher_logits for item in items]) if with_teacher else None,
        teacher_embedding=torch.stack([item.teacher_embedding for item in items]) if with_teacher else None,
        subsets=[item.example.subset for item in items],
    )


def load_corpus(corpus_dir: Path) -> CorpusManifest:
    return CorpusManifest.load(Path(corpus_dir))


# --- the teacher's inputs ---------------------------------------------------------------------
#
# MatchLM reads pictures and Whisper states, not the cached MatchLite features. Each corpus video
# is decoded once; its frames are kept already resized to the vision tower's input size (the
# processor's first step, so feeding them again is a no-op resize) and its audio is kept as the
# teacher's own frozen Whisper encoder states, so no epoch re-runs Whisper.


def teacher_videos(
    manifest: CorpusManifest,
    video_ids: Sequence[str],
    policy: MediaPolicy,
    image_size: int,
    whisper: Callable[[np.ndarray], np.ndarray] | None,
    *,
    progress: bool = True,
) -> dict[str, TeacherVideo]:
    """video_id -> MatchLM VideoInput (frames at `image_size`, Whisper states or no audio).

    whisper: log-mel [80, 3000] -> encoder states [P, Da]; None drops audio (audio_fusion "none").
    """
    out: dict[str, TeacherVideo] = {}
    with Progress(disable=not progress) as bar:
        task = bar.add_task("teacher inputs", total=len(video_ids))
        for vid in video_ids:
            event = manifest.event(vid)
            media = decode_media(manifest.media_path(vid), policy)
            frames = resize_square_uint8(media.frames[media.frame_mask], image_size)
            states = whisper(media.log_mel) if (whisper is not None and media.log_mel is not None) else None
            out[vid] = TeacherVideo(
                frames=frames,
                duration_s=float(media.duration_s),
                title=event.title,
                sticker_text=event.sticker_text or "",
                audio_features=states,
            )
            bar.update(task, advance=1)
    return out


@dataclass
class TeacherBatch:
    inputs: MatchLMBatch
    labels: torch.Tensor  # [B] long
    aux_labels: dict[str, torch.Tensor]  # head -> [B] long, IGNORE_INDEX where undefined
    index: torch.Tensor  # [B] long

    def to(self, device: torch.device) -> TeacherBatch:
        return replace(
            self,
            inputs=self.inputs.to(device),
            labels=self.labels.to(device),
            aux_labels={k: v.to(device) for k, v in self.aux_labels.items()},
            index=self.index.to(device),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class TeacherItem:
    index: int
    example: PairExample
    query: TeacherVideo
    candidate: TeacherVideo


class TeacherPairDataset(Dataset[TeacherItem]):
    """Examples joined with the teacher's inputs for their videos."""

    def __init__(self, examples: Sequence[PairExample], videos: Mapping[str, TeacherVideo]) -> None:
        missing = sorted({vid for ex in examples for vid in ex.video_ids} - set(videos))
        if missing:
            raise DataError(f"no teacher inputs for {len(missing)} videos, e.g. {missing[:3]}")
        self.examples = list(examples)
        self.videos = videos

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> TeacherItem:
        ex = self.examples[index]
        return TeacherItem(index, ex, self.videos[ex.query_id], self.videos[ex.candidate_id])

    @property
    def labels(self) -> np.ndarray:
        return np.array([ex.label for ex in self.examples], dtype=np.int64)

    @property
    def subsets(self) -> list[str]:
        return [ex.subset for ex in self.examples]


class TeacherCollate:
    """TeacherItems -> TeacherBatch through MatchLM's own processor (picklable for DataLoader workers)."""

    def __init__(self, processor: MatchLMProcessor) -> None:
        self.processor = processor

    def __call__(self, items: Sequence[TeacherItem]) -> TeacherBatch:
        return TeacherBatch(inputs=self.processor([(item.query, item.candidate) for item in items]), **pair_targets(items))
