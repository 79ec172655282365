"""The features path on real media files with a stand-in for the encoders (counts what it encodes)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from rci.core.errors import RejectCode
from rci.features.cache import FeatureCache
from rci.features.pipeline import ExtractionSummary, FeaturePipeline, extract_features
from rci.inference.encoders.extract import EncoderInput
from rci.inference.features import VideoFeatures
from rci.media.decoded import DecodedMedia
from rci.media.errors import MediaRejected
from rci.media.policy import MediaPolicy
from rci.media.synth import write_test_video
from rci.storage.objects import LocalObjectStore
from tests.features.test_cache import make_features


@dataclass(frozen=True)
class Video:
    video_id: str
    media_uri: str
    text: str = ""


class RecordingExtractor:
    """Stands in for FeatureExtractor: records the batches and the texts it was given."""

    version = "enc-1"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.texts: dict[str, str] = {}

    def encode_video(self, video_id: str, media: DecodedMedia, text: str = "") -> VideoFeatures:
        return self.encode_videos([EncoderInput(video_id, media, text)])[0]

    def encode_videos(self, items: list[EncoderInput]) -> list[VideoFeatures]:
        self.batches.append([item.video_id for item in items])
        self.texts |= {item.video_id: item.text for item in items}
        return [make_features(item.video_id, self.version) for item in items]


class ClosingStore(LocalObjectStore):
    closed = 0

    async def close(self) -> None:
        self.closed += 1


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    for i in range(3):
        write_test_video(root / f"clip{i}.mp4", duration_s=1.0, seed=i)
    (root / "broken.mp4").write_bytes(b"not a video")
    return root


def pipeline_for(
    media: Path, store: LocalObjectStore, keep_frames: bool = False
) -> tuple[FeaturePipeline, RecordingExtractor]:
    extractor = RecordingExtractor()
    policy = MediaPolicy(allowed_prefixes=(media.as_uri() + "/",), max_frames=4)
    return FeaturePipeline(extractor, FeatureCache(store), policy, keep_frames=keep_frames), extractor  # type: ignore[arg-type]


def videos(media: Path, *names: str) -> list[Video]:
    return [Video(name, (media / f"{name}.mp4").as_uri(), f"title of {name}") for name in names]


def test_many_videos_in_batches_on_one_loop_rejections_counted(media: Path, tmp_path: Path) -> None:
    store = ClosingStore(tmp_path / "store")
    pipeline, extractor = pipeline_for(media, store)
    seen: list[int] = []

    summary = extract_features(pipeline, videos(media, "clip0", "broken", "clip1", "clip2"), batch_size=2,
                               on_progress=lambda s: seen.append(s.done))

    assert (summary.videos, summary.encoded, summary.already_cached) == (4, 3, 0)
    assert {vid: exc.code for vid, exc in summary.rejected.items()} == {"broken": RejectCode.MEDIA_UNDECODABLE}
    assert extractor.batches == [["clip0"], ["clip1", "clip2"]]  # the rejected video leaves a gap in its batch
    assert extractor.texts["clip1"] == "title of clip1"
    assert seen[-1] == 4 and seen == sorted(seen)
    assert store.closed == 1  # the pipeline's clients are closed before its loop ends
    entries = sorted(p.name.split(".")[0] for p in (tmp_path / "store" / "features" / "enc-1").glob("*.npz"))
    assert entries == ["clip0", "clip1", "clip2"]


def test_cached_videos_are_skipped_unless_forced(media: Path, tmp_path: Path) -> None:
    pipeline, extractor = pipeline_for(media, LocalObjectStore(tmp_path / "store"))
    extract_features(pipeline, videos(media, "clip0"))

    again = extract_features(pipeline, videos(media, "clip0", "clip1"))
    assert (again.encoded, again.already_cached, again.rejected) == (1, 1, {})
    forced = extract_features(pipeline, videos(media, "clip0", "clip1"), force=True)
    assert (forced.encoded, forced.already_cached) == (2, 0)
    assert extractor.batches == [["clip0"], ["clip1"], ["clip0", "clip1"]]


async def test_one_video_for_the_worker_is_computed_once_then_read_from_the_cache(media: Path, tmp_path: Path) -> None:
    pipeline, extractor = pipeline_for(media, LocalObjectStore(tmp_path / "store"))
    [video] = videos(media, "clip0")

    first, second = await asyncio.gather(pipeline.features_for(video), pipeline.features_for(video))
    (media / "clip0.mp4").unlink()  # cached now: the media are not needed again
    third = await pipeline.features_for(video)

    assert extractor.batches == [["clip0"]]
    assert first.video_id == second.video_id == third.video_id == "clip0"
    assert (await pipeline.cached("clip0")) is not None
    assert pipeline.encoder_version == "enc-1"


async def test_bad_media_for_the_worker_raises_its_reject_code(media: Path, tmp_path: Path) -> None:
    pipeline, extractor = pipeline_for(media, LocalObjectStore(tmp_path / "store"))
    outside = Video("x", (tmp_path / "elsewhere.mp4").as_uri())

    with pytest.raises(MediaRejected) as rejected:
        await pipeline.features_for(outside)
    assert rejected.value.code == RejectCode.MEDIA_NOT_ALLOWED
    assert extractor.batches == [] and await pipeline.cached("x") is None


async def test_same_id_with_another_uri_outside_the_allow_list_is_rejected_not_served_from_cache(
    media: Path, tmp_path: Path
) -> None:
    """Issue 15: a later event with the same video_id and another media_uri skipped the allow-list and
    inherited the first event's features (and so its score)."""
    pipeline, extractor = pipeline_for(media, LocalObjectStore(tmp_path / "store"))
    [video] = videos(media, "clip0")
    await pipeline.features_for(video)
    (tmp_path / "elsewhere.mp4").write_bytes((media / "clip0.mp4").read_bytes())

    with pytest.raises(MediaRejected) as rejected:  # the worker dead-letters it with this code
        await pipeline.features_for(Video("clip0", (tmp_path / "elsewhere.mp4").as_uri()))
    assert rejected.value.code == RejectCode.MEDIA_NOT_ALLOWED
    await pipeline.features_for(video)  # the first event re-delivered: still a hit
    assert extractor.batches == [["clip0"]]


async def test_same_id_with_another_allowed_uri_is_encoded_again(media: Path, tmp_path: Path) -> None:
    pipeline, extractor = pipeline_for(media, LocalObjectStore(tmp_path / "store"))
    [first] = videos(media, "clip0")
    second = Video("clip0", (media / "clip1.mp4").as_uri())
    await pipeline.features_for(first)
    await pipeline.features_for(second)
    assert extractor.batches == [["clip0"], ["clip0"]]
    again = await pipeline.extract_all([first, second])  # both contents are cached now
    assert (again.encoded, again.already_cached) == (0, 2)


def test_progress_counts_every_video_once() -> None:
    summary = ExtractionSummary(videos=3, encoded=1, already_cached=1)
    summary.rejected["v"] = MediaRejected(RejectCode.MEDIA_EMPTY, "zero bytes")
    assert summary.done == 3


async def test_the_frames_sheet_is_stored_beside_the_features_when_asked(media: Path, tmp_path: Path) -> None:
    from rci.media.thumbnails import FrameSheet

    keeping, _ = pipeline_for(media, LocalObjectStore(tmp_path / "kept"), keep_frames=True)
    [one, two] = videos(media, "clip0", "clip1")
    await keeping.features_for(one)  # the worker's path
    await keeping.extract_all([two])  # the batch path (backfill, index rebuild)
    for video_id in ("clip0", "clip1"):
        sheet = await keeping.cache.frames(video_id, "enc-1")
        assert sheet is not None and FrameSheet(sheet).frames == 1, video_id  # a 1 s clip: 1 frame
    plain, _ = pipeline_for(media, LocalObjectStore(tmp_path / "plain"))  # training: no frames written
    await plain.features_for(one)
    assert await plain.cache.frames("clip0", "enc-1") is None and await plain.cached("clip0") is not None
