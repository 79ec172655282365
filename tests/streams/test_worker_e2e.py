"""End to end on the real broker and Milvus Lite: `rci worker` processes, video.published in,
rci.scores and the DLQ out."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from itertools import cycle
from pathlib import Path
from urllib.parse import urlparse

import pytest

from rci.cli.demo import publication_waves, reproduction_truth
from rci.core.errors import RejectCode
from rci.core.settings import Settings
from rci.streams.contracts import PublishedEvent
from rci.streams.processes import ChildProcess
from rci.training.metrics import roc_auc
from tests.streams.worker_harness import (
    produce,
    published_event,
    read_outputs,
)
from rci.training.corpus.generate import make_corpus
from rci.training.corpus.manifest import CorpusManifest


def record_of(event: PublishedEvent) -> tuple[bytes, bytes]:
    return event.video_id.encode(), event.to_json_bytes()

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def malformed_records(settings: Settings, media: list[Path], tmp_path: Path) -> list[tuple[bytes | None, bytes, RejectCode]]:
    """20 bad inputs, each with the DLQ code it must get."""
    outside = tmp_path / "outside" / "x.mp4"
    outside.parent.mkdir()
    outside.write_bytes(media[0].read_bytes())
    empty = settings.media_dir / "empty.mp4"
    empty.write_bytes(b"")
    truncated = settings.media_dir / "truncated.mp4"
    truncated.write_bytes(media[1].read_bytes()[:300])
    text_file = settings.media_dir / "notes.mp4"
    text_file.write_text("not a video at all\n" * 50)

    def ev(i: int, **extra: object) -> bytes:
        return json.dumps(published_event(f"bad{i}", media[0], 30 + i, **extra)).encode()

    good_key = lambda i: f"bad{i}".encode()  # noqa: E731
    return [
        (b"bad0", b"{not json", RejectCode.INVALID_JSON),
        (b"bad1", b"\xff\xfe\x00", RejectCode.INVALID_JSON),
        (b"bad2", b"[1, 2, 3]", RejectCode.INVALID_JSON),
        (good_key(3), json.dumps({"schema_version": 1, "video_id": "bad3"}).encode(), RejectCode.SCHEMA_VIOLATION),
        (b"bad 4", ev(4, video_id="bad 4"), RejectCode.SCHEMA_VIOLATION),
        (good_key(5), ev(5, title="x" * 1001), RejectCode.SCHEMA_VIOLATION),
        (good_key(6), ev(6, published_at="yesterday"), RejectCode.SCHEMA_VIOLATION),
        (good_key(7), ev(7, media_uri="http://example.com/a.mp4"), RejectCode.SCHEMA_VIOLATION),
        (good_key(8), ev(8, schema_version=2), RejectCode.UNSUPPORTED_SCHEMA_VERSION),
        (b"someone-else", ev(9), RejectCode.INVALID_KEY),
        (good_key(10), ev(10, media_uri=outside.as_uri()), RejectCode.MEDIA_NOT_ALLOWED),
        (good_key(11), ev(11, media_uri="file:///etc/passwd"), RejectCode.MEDIA_NOT_ALLOWED),
        (good_key(12), ev(12, media_uri="file://" + (settings.media_dir / ".." / "x.mp4").as_posix()), RejectCode.MEDIA_NOT_ALLOWED),
        (good_key(13), ev(13, media_uri=(settings.media_dir / "missing.mp4").as_uri()), RejectCode.MEDIA_NOT_FOUND),
        (good_key(14), ev(14, media_uri=empty.as_uri()), RejectCode.MEDIA_EMPTY),
        (good_key(15), ev(15, media_uri=truncated.as_uri()), RejectCode.MEDIA_UNDECODABLE),
        (good_key(16), ev(16, media_uri=text_file.as_uri()), RejectCode.MEDIA_UNDECODABLE),
        (good_key(17), ev(17, media_uri="s3://media-bucket/a.mp4"), RejectCode.MEDIA_SCHEME_NOT_ALLOWED),
        (None, ev(18), RejectCode.INVALID_KEY),
        (good_key(19), ev(19, creator_id="c" * 129), RejectCode.SCHEMA_VIOLATION),
    ]


def reposts_of(sample: CorpusManifest, count: int) -> list[PublishedEvent]:
    """`count` later re-posts of the sample's videos by other accounts: the same file, title and
    sticker under a new video id, each a reproduction of the video it re-posts."""
    after = datetime(2026, 6, 1, tzinfo=UTC)
    return [
        original.model_copy(update={
            "video_id": f"repost{i:03d}",
            "creator_id": f"reposter{i % 7}",
            "published_at": (after + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
        for i, original in zip(range(count), cycle(sample.events))
    ]


def test_200_events_20_malformed_give_180_scores_and_20_dead_letters(trained_worker_settings: Settings, tmp_path: Path):
    settings = trained_worker_settings
    sample = make_corpus(settings.media_dir / "corpus", n_sources=8, seed=7, min_duration_s=4.0, max_duration_s=8.0)
    originals, derived = publication_waves(sample)
    reposts = reposts_of(sample, 180 - len(sample.events))
    valid = [*originals, *derived, *reposts]
    truth = reproduction_truth(sample) | {r.video_id: r.media_uri for r in reposts}
    media = [Path(urlparse(e.media_uri).path) for e in originals[:2]]
    bad = malformed_records(settings, media, tmp_path)
    later = [*derived, *reposts]
    records_after_originals = [*map(record_of, later[:60]), *((k, v) for k, v, _ in bad), *map(record_of, later[60:])]

    worker = ChildProcess("worker", settings, tmp_path / "worker.log")
    try:
        # the originals go live first and are indexed before anything that copies them (src/rci/cli/demo.py)
        produce(settings, [record_of(e) for e in originals])
        read_outputs(settings, expected_total=len(originals), timeout_s=600)
        produce(settings, records_after_originals)
        out = read_outputs(settings, expected_total=200, timeout_s=900)
        time.sleep(5)  # anything beyond the 200 expected would show up in a second read
        out = read_outputs(settings, expected_total=10_000, timeout_s=8)
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()

    assert len(out.scores) == 180 and len(out.dead_letters) == 20, worker.log_tail()
    assert set(out.scored_ids) == {e.video_id for e in valid}
    assert max(out.scored_ids.values()) == 1  # a steady run scores each event once
    expected = {(k, v): code for k, v, code in bad}
    for key, letter in out.dead_letters:
        assert letter.error == expected[(key, letter.original_bytes())], letter
        assert letter.topic == settings.topic_published
    for score in out.scores:
        assert 0.0 <= score.score <= 1.0
        assert score.modalities[0] == "visual"
        assert score.deboost == (score.score >= score.threshold)
    assert all(s.candidate_id is not None for s in out.scores if s.video_id in truth and truth[s.video_id])

    # reproduced videos score above originals: the sample's edited copies and the re-posts
    labels = {s.video_id: int(truth[s.video_id] is not None) for s in out.scores}
    auc = roc_auc([s.score for s in out.scores], [labels[s.video_id] for s in out.scores])
    in_sample = [s for s in out.scores if not s.video_id.startswith("repost")]
    sample_auc = roc_auc([s.score for s in in_sample], [labels[s.video_id] for s in in_sample])
    print(f"AUC {auc:.3f} over the 180 scored; {sample_auc:.3f} over the {len(in_sample)} sample videos alone")
    assert auc > 0.9, (auc, sample_auc)
