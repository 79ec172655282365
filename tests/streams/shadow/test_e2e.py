"""The shadow consumer end to end on the real broker: published events and score records in,
`rci.shadow` out, scored by a real (tiny, untrained) MatchLM on media decoded from disk.

Nothing is faked: `rci shadow` runs as a child process (SIGTERM, metrics endpoint) and, for the
sampling runs, in-process on two fresh consumer groups at once.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from rci.inference.matchlm.loader import load_matchlm, read_matchlm_config
from rci.inference.matchlm.processor import VideoInput
from rci.inference.matchlm.tiny import build_tiny_matchlm
from rci.inference.model_dir import matchlm_dir
from rci.media.decode import decode_media
from rci.media.policy import media_policy
from rci.services.ports import free_port
from rci.core.settings import Settings
from rci.streams.contracts import ScoreRecord, ShadowRecord
from rci.streams.kafka import ensure_topics, make_consumer, make_producer
from rci.streams.processes import ChildProcess
from rci.streams.readback import read_until
from rci.streams.shadow.service import serve_shadow
from rci.streams.shadow.logic import agreement, is_sampled
from tests.streams.worker_harness import MAX_FRAMES, encode, produce, published_event, write_media_library

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CLIPS = 4
THRESHOLD = 0.5


@pytest.fixture(scope="session")
def teacher_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("models")
    build_tiny_matchlm(matchlm_dir(model_dir))
    return model_dir


@pytest.fixture
def shadow_settings(rci_settings: Settings, teacher_model_dir: Path) -> Settings:
    return rci_settings.model_copy(
        update={"model_dir": teacher_model_dir, "media_max_frames": MAX_FRAMES, "batch_max_size": 8, "device": "cpu"}
    )


# --- scenario ---------------------------------------------------------------------------------------


def publish_scored_videos(settings: Settings, ids: list[str], no_candidate: set[str]) -> list[ScoreRecord]:
    """Publish every video (media on disk, `media_of`) and write one score per video: each names
    the video before it as its candidate, except the first and those in `no_candidate`."""
    media = write_media_library(settings.media_dir, CLIPS)
    assert [media_of(settings, ids, vid) for vid in ids[:CLIPS]] == media
    produce(settings, [encode(published_event(vid, media[i % CLIPS], i)) for i, vid in enumerate(ids)])
    scores = [
        ScoreRecord(
            video_id=vid, candidate_id=None if vid in no_candidate or i == 0 else ids[i - 1],
            retrieval_similarity=None if vid in no_candidate or i == 0 else 0.8, score=(i * 37 % 100) / 100,
            deboost=(i * 37 % 100) / 100 >= THRESHOLD, threshold=THRESHOLD, model_version="matchlite-e2e",
            modalities=["visual", "audio", "text"], published_at=published_event(vid, "", i)["published_at"],
            scored_at="2026-11-22T12:00:00Z", latency_ms=1500.0,
        )  # fmt: skip
        for i, vid in enumerate(ids)
    ]
    producer = make_producer(settings)
    for s in scores:
        producer.produce(settings.topic_scores, key=s.video_id.encode(), value=s.to_json_bytes())
    assert producer.flush(30) == 0
    return scores


def media_of(settings: Settings, ids: list[str], vid: str) -> Path:
    return settings.media_dir / f"clip{ids.index(vid) % CLIPS:03d}.mp4"  # worker_harness's file names


def read_shadow(settings: Settings, expected: int, timeout_s: float = 240.0) -> list[ShadowRecord]:
    records = read_until(settings, [settings.topic_shadow], done=lambda got: len(got) >= expected, timeout_s=timeout_s)
    out = []
    for _topic, key, value in records:
        record = ShadowRecord.model_validate_json(value)
        assert key == record.video_id.encode()
        out.append(record)
    return out


def records_in(settings: Settings, topic: str) -> int:
    """Exact record count of a topic (sum of watermarks): catches duplicates without waiting."""
    consumer = make_consumer(settings, f"count-{uuid.uuid4().hex[:8]}")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(h - lo for lo, h in (consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                                         for p in partitions))  # fmt: skip
    finally:
        consumer.close()


def fully_committed(settings: Settings, group: str) -> bool:
    """The group committed every record of the scores topic (without joining the group)."""
    consumer = make_consumer(settings, group)
    try:
        topic = settings.topic_scores
        tps = [TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions]
        for tp in consumer.committed(tps, timeout=10):
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > 0 and tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.5)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


# --- tests --------------------------------------------------------------------------------------------


def test_rci_shadow_rescores_every_pair_at_rate_one(shadow_settings: Settings, tmp_path: Path):
    port = free_port()
    settings = shadow_settings.model_copy(update={"shadow_sample_rate": 1.0, "metrics_port": port})
    ids = [f"clip{i:02d}" for i in range(8)]
    scores = publish_scored_videos(settings, ids, no_candidate={"clip04"})
    paired = {s.video_id: s for s in scores if s.candidate_id is not None}
    assert len(paired) == 6

    shadow = ChildProcess("shadow", settings, tmp_path / "shadow.log")
    try:
        records = read_shadow(settings, expected=len(paired))
        wait_until(lambda: fully_committed(settings, settings.shadow_group), 60, "the shadow's commits")
        metrics = scrape(port)
        ready = urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5).status  # 503 would raise
    finally:
        code = shadow.stop()
    assert code == 0, shadow.log_tail()

    # exactly one record per scored pair, nothing for the records without a candidate
    assert sorted(r.video_id for r in records) == sorted(paired)
    assert records_in(settings, settings.topic_shadow) == len(paired)
    _config, meta = read_matchlm_config(matchlm_dir(settings.resolved_model_dir))
    for record in records:
        scored = paired[record.video_id]
        assert record.candidate_id == scored.candidate_id
        assert record.student_score == scored.score
        assert record.student_model_version == scored.model_version
        assert record.teacher_model_version == meta["model_version"]
        assert 0.0 <= record.teacher_score <= 1.0
        assert record.agree == agreement(scored.score, record.teacher_score, scored.threshold)

    # the teacher's score is MatchLM's on the decoded pair (checked in this process for one pair)
    first = min(records, key=lambda r: r.video_id)
    assert record_matches_teacher(settings, first, ids)

    # the endpoint exports what the records say, and the shadow said it serves
    assert ready == 200 and metrics[("rci_shadow_ready", ())] == 1
    pairs = sum(v for (name, _), v in metrics.items() if name == "rci_shadow_pairs_total")
    assert pairs == len(paired)
    assert metrics[("rci_shadow_skipped_total", (("reason", "no_candidate"),))] == 2  # clip00 and clip04
    assert metrics[("rci_shadow_agreement_rate", (("student_model_version", "matchlite-e2e"),))] == pytest.approx(
        sum(r.agree for r in records) / len(records)
    )
    assert metrics[("rci_shadow_score_count", (("model", "teacher"),))] == len(paired)


def record_matches_teacher(settings: Settings, record: ShadowRecord, ids: list[str]) -> bool:
    teacher = load_matchlm(matchlm_dir(settings.resolved_model_dir))
    policy = media_policy(settings)

    def video(vid: str) -> VideoInput:
        title = published_event(vid, "", 0)["title"]
        return VideoInput.from_decoded(decode_media(media_of(settings, ids, vid), policy), title=title)

    expected = teacher.score_pair(video(record.video_id), video(record.candidate_id)).score
    return record.teacher_score == pytest.approx(expected, abs=1e-4)


async def test_sampling_picks_the_same_videos_on_every_run(shadow_settings: Settings):
    ids = [f"vid{i:03d}" for i in range(40)]
    scores = publish_scored_videos(shadow_settings, ids, no_candidate=set())
    expected = {s.video_id for s in scores if s.candidate_id is not None and is_sampled(s.video_id, 0.1)}
    assert 0 < len(expected) < len(scores) // 2  # a real sample: neither empty nor most of the records

    runs = []
    for run in ("a", "b"):
        suffix = uuid.uuid4().hex[:6]
        runs.append(shadow_settings.model_copy(update={
            "shadow_sample_rate": 0.1,
            "shadow_group": f"{shadow_settings.shadow_group}-{run}-{suffix}",
            "topic_shadow": f"{shadow_settings.topic_shadow}.{run}",
        }))  # fmt: skip
        ensure_topics(runs[-1], topics=(runs[-1].topic_shadow,))
    await asyncio.gather(*(run_until_committed(settings) for settings in runs))

    chosen = []
    for settings in runs:
        records = read_shadow(settings, expected=len(expected), timeout_s=60)
        assert records_in(settings, settings.topic_shadow) == len(expected)
        chosen.append({r.video_id for r in records})
    assert chosen[0] == chosen[1] == expected


async def run_until_committed(settings: Settings, timeout_s: float = 300.0) -> None:
    """Serve in this process until the group has committed the whole scores topic, then stop."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve_shadow(settings, stop))
    deadline = time.monotonic() + timeout_s
    try:
        while not await asyncio.to_thread(fully_committed, settings, settings.shadow_group):
            if task.done():
                task.result()  # raises what stopped it
                raise AssertionError("the shadow consumer stopped on its own")
            assert time.monotonic() < deadline, f"{settings.shadow_group} did not commit everything in time"
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await task


async def test_a_feature_teacher_rescores_from_the_features_the_worker_stored(rci_settings: Settings, tmp_path: Path):
    """MatchLMF installed: each pair is scored from the feature store (the real object store), under the
    teacher's encoder version; a video the worker never encoded is skipped, nothing is decoded."""
    import torch

    from rci.features.cache import FeatureCache
    from rci.inference.matchlmf.loader import load_matchlmf_teacher, save_matchlmf
    from rci.inference.matchlmf.model import MatchLMF
    from rci.inference.model_dir import matchlmf_checkpoint
    from rci.storage.objects import make_object_store
    from tests.inference.matchlmf.matchlmf_inputs import CONFIG, make_video

    torch.manual_seed(0)
    save_matchlmf(matchlmf_checkpoint(tmp_path), MatchLMF(CONFIG), {"threshold": THRESHOLD, "encoder_version": "enc-e2e"})
    settings = rci_settings.model_copy(update={"model_dir": tmp_path, "device": "cpu", "batch_max_size": 8, "shadow_sample_rate": 1.0,
                                               "shadow_group": f"{rci_settings.shadow_group}-f-{uuid.uuid4().hex[:6]}"})
    ids = [f"fvid{i:03d}" for i in range(6)]
    scores = publish_scored_videos(settings, ids, no_candidate=set())
    stored = {vid: make_video(vid, i, frames=3, audio_s=2.0) for i, vid in enumerate(ids) if vid != ids[3]}
    cache = FeatureCache(make_object_store(settings))
    for vid, features in stored.items():  # as the worker stores them: under the encoders' version and the media
        await cache.put(replace(features, encoder_version="enc-e2e"), media_of(settings, ids, vid).as_uri())

    await run_until_committed(settings)

    records = read_shadow(settings, expected=3, timeout_s=60)
    teacher = load_matchlmf_teacher(matchlmf_checkpoint(tmp_path))
    # pairs (i, i-1): the ones touching ids[3] (as query or as candidate) have no features
    expected = {s.video_id: s.candidate_id for s in scores if s.candidate_id and ids[3] not in (s.video_id, s.candidate_id)}
    assert {r.video_id: r.candidate_id for r in records} == expected
    for record in records:
        direct = teacher.score_pairs([(stored[record.video_id], stored[record.candidate_id])])[0].score
        assert record.teacher_score == pytest.approx(direct, abs=1e-5)
        assert record.teacher_model_version == teacher.model_version
    assert records_in(settings, settings.topic_shadow) == len(expected)
